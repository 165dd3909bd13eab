"""Training an edit (method.md §8): ``python -m lenerf train --generator ID --mask-prompt ... --edit-prompt ...``.

Each iteration draws B identities x V views and renders the sources once (their samples and features are kept):

1. attention-field step: relevance maps of the mask prompt in the source (and, with ``enlarged_mask``, in the raw
   target) -> pseudo-label 2R - 1 -> mask MSE + binarisation + top/bottom-k + TV on the rendered 2D mask (with
   ``mask_target_rays`` also on the mask rendered along the raw target's rays, where new geometry is);
2. mapper (+ deformation) step: fused render at the source's samples with the (constant) mask -> CLIP loss
   against the source + latent L2.

Deviation from the official loop, on purpose: both steps use the same identities (one source render instead of
two per iteration); ray thresholds are applied at inference only (method.md §12). Checkpoints every
``save_every`` steps; ``resume`` continues from them bit for bit (each step derives its RNG from (seed, step)).
"""
from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..cameras import sample_cameras, wider_view
from ..clip.losses import CLIP_LOSSES, clip_loss, mask_losses
from ..clip.relevance import REFINE_SIGMA, images_at, otsu_thresholds, relevance_maps
from ..errors import InputError
from ..generator import Generator, Preset
from ..rendering import composite_mask, gather_samples, march, render, sample_rays, weighted_samples
from ..training_state import TrainingState
from .editor import EditModules


@dataclass
class EditConfig:
    mask_prompt: str
    edit_prompt: str
    generator: str = "synthetic"
    clip: str = "miniclip"
    clip_pretrained: str | None = None
    #: the CLIP of the mapper's loss when it is not ``clip`` (None: ``clip`` guides both). ``clip`` always gives the
    #: relevance maps (the 3D mask's pseudo-labels); a model whose maps are poor but which tells colours apart well
    #: can guide the mapper alone (the colour edits: "miniclip-color", hair_red "miniclip-palette"; docs/editing.md)
    edit_clip: str | None = None
    extra_edit_prompts: list[str] = field(default_factory=list)
    source_prompts: list[str] = field(default_factory=lambda: ["a face"])
    #: the CLIP direction starts from the mean of source_prompts ("mean", official) or from each source image's
    #: closest source prompt ("best")
    source_prompt_select: str = "mean"
    negative_mask_prompts: list[str] = field(default_factory=list)
    #: several (expanded) mask prompts: "mean" of their relevance maps (official), the "best"-matching one per image,
    #: or "contrast": the best one's map minus the mean of the others' maps, clamped at 0 (``relevance_maps``)
    mask_prompt_select: str = "mean"
    #: phrasings of the (selected) mask prompt whose relevance maps are averaged, e.g. ["{}", "a face with {}"]
    mask_prompt_templates: list[str] = field(default_factory=list)
    steps: int = 400
    batch: int = 2
    views: int = 2
    lr: float = 3e-3
    seed: int = 304
    strength: float = 1.0
    mapper_groups: list[str] = field(default_factory=lambda: ["fine"])
    afn_kind: str = "mlp"
    afn_hidden: int = 64
    use_xyz: bool = True
    #: sin/cos positional encoding of xyz for the attention field (0 = raw xyz, official)
    afn_xyz_frequencies: int = 0
    deformation: bool = False
    #: sin/cos positional encoding of x for the deformation network (0 = raw x, official; see DeformationField)
    dn_xyz_frequencies: int = 0
    #: a deformation mirror-symmetric about x = 0 (DeformationField.symmetric; faces are; False = official)
    dn_symmetric: bool = False
    #: > 0: every offset component of the deformation is bounded by this many world units (DeformationField.max_offset;
    #: 0 = unbounded, official)
    dn_max_offset: float = 0.0
    #: with dn_max_offset: the bound is on the offset's length, a ball instead of a box (DeformationField.bound_length)
    dn_bound_length: bool = False
    #: the deformation carries the part with its mask: F = (1 - m') F_s(x) + m' F_t(x'), x' = x + T(x), m' =
    #: A(desc_s(x'), x') (editor.DeformedBlend), instead of method.md Eq. 7's F = (1 - m) F_s(x') + m F_t(x). The
    #: attention field finds the part on the source; what changes is where the deformation carries it (the grown
    #: part, whose edge is the part's own edge); the rest of the head is the source's exactly
    deform_target: bool = False
    texture_only: bool = True
    enlarged_mask: bool = False
    #: with enlarged_mask, for geometry edits: also supervise the mask rendered along the raw target's rays (its
    #: samples and weights). New geometry appears where the source is empty, and the source's weights carry no
    #: supervision there, so without it the mask is unconstrained where e.g. long hair grows (a deviation from the
    #: official loop, which renders the mask with the source weights only). Each render's mask is then fit to its
    #: own image's relevance map (instead of the elementwise max of both): the source's rays would otherwise learn
    #: the target's new hair on the backdrop behind it
    mask_target_rays: bool = False
    #: with mask_target_rays: the quantile for the target image's pseudo-labels (default: relevance_quantile); an
    #: edit that grows the part (long hair) needs a larger share of the target image
    relevance_quantile_target: float | None = None
    use_mask: bool = True  # False: the global-edit ablation (no attention field, plain target render)
    #: CLIP loss of the mapper step: "dir_nce" (paper), "dir_diff", "default" or "zero_shot" (clip/losses.py)
    loss: str = "dir_nce"
    augmentations: int = 4
    lambda_clip: float = 0.1
    lambda_ws: float = 2e-4
    lambda_mask: float = 0.5
    lambda_bin: float = 0.3
    lambda_minmax: float = 0.1
    lambda_tv: float = 1.0
    lambda_deform: float = 1e-4
    #: weight of a sparsity term on the deformation (not in the official code; 0 = off): the expected L1 length of
    #: the offsets T(x) along each ray of the source render (world units), averaged over rays. The official
    #: regulariser weighs the offsets by a softmax of the mask, i.e. inside the part; a deformation that grows the
    #: part must move points there, and what spoils the rest of the head is the small offsets everywhere else
    #: (session 23: ~0.006 world units over the whole face shifted every edge by half a pixel)
    lambda_offset: float = 0.0
    #: weight of an image-space term of the mapper step (not in the official code; 0 = off): the mean |edited -
    #: source| over the pixels outside the step's pseudo-labels (source and, for geometry edits, target), so the
    #: mapper is not paid for changes the mask lets through beside the part (hair_long's wider head)
    lambda_outside: float = 0.0
    #: with lambda_outside: the pseudo-labels are dilated by this many pixels first, so a ring around the part may
    #: change freely (an edit that grows the part, e.g. a deformation enlarging the eyes; 0 = off)
    outside_dilate_px: int = 0
    #: weight of the same term on the raw target's render (texture-only edits; 0 = off): a tight mask hides what the
    #: mapper changes beside the part, but a later edit composes on the raw target (docs/editing.md)
    lambda_outside_target: float = 0.0
    topk: int = 80
    botk: int = 100
    #: pseudo-label normalisation: None = min-max per image (official); q in (0, 1) = divide by the per-image
    #: q-quantile and clip, so that the top (1 - q) of the pixels count as fully relevant (for peaky maps)
    relevance_quantile: float | None = None
    #: with relevance_quantile: binary pseudo-labels (the top 1 - q of each map = the part, the rest not)
    relevance_binarize: bool = False
    #: binary pseudo-labels at each map's own Otsu threshold (``otsu_thresholds``) instead of a quantile: the part
    #: is what its map separates from the rest, at whatever area (no prior on the part's size; the app's default for
    #: parts without a recipe). Excludes relevance_quantile
    relevance_otsu: bool = False
    #: colour-grown pseudo-labels (0 = off; with relevance_quantile and relevance_binarize): within each map's top
    #: 1 - relevance_quantile, the Otsu cut of its values there is a seed (the part's most relevant pixels) and the
    #: pixels whose render colour (RGB in [0, 1]) lies within this distance of the seed's mean colour join it. One
    #: share of each map cannot fit a part whose area varies (a cap vs long hair); its colour tells where it goes on
    relevance_grow: float = 0.0
    #: with relevance_grow, only the pixels of that colour connected to the seed (8-neighbours) join it: a red nose's
    #: labels stay off red hair and red lips, the face's skin still reaches the neck (docs/editing.md, "Connected
    #: growth")
    relevance_grow_connected: bool = False
    #: average the relevance maps over copies of the render translated by +-this many pixels (0 = off): the maps
    #: are only as fine as CLIP's patch grid, shifts by a fraction of a patch sharpen the pseudo-labels' edges
    relevance_shift_px: int = 0
    #: number of translations with relevance_shift_px: 5 (centre + diagonals) or 9 (3 x 3 grid)
    relevance_shifts: int = 5
    #: iterations of image-guided refinement of the relevance maps (``refine_maps``; 0 = off, official): relevance
    #: spreads through the render's regions of one colour and stops at colour edges
    relevance_refine: int = 0
    #: the refinement's colour scale (mean |RGB difference| in [-1, 1] at which a neighbour's weight falls by e)
    relevance_refine_sigma: float = REFINE_SIGMA
    #: weigh positive and negative pseudo-label pixels equally in the mask MSE (small parts)
    balanced_mask_loss: bool = False
    #: with balanced_mask_loss, a positive pixel weighs at most this many negatives (None: N-/N+, fully balanced).
    #: Full balance gives a 3% part's label pixels 32x a negative's weight, so a point labelled in a tenth of its
    #: views already earns a high mask: labels that jitter by a pixel spread the mask (docs/editing.md, "Capped
    #: balance"; eyes_blue 4, lips_green 2)
    mask_pos_weight_max: float | None = None
    #: supervise the attention field on every k-th ray row and column (k x fewer field evaluations squared; the
    #: pseudo-labels are area-downsampled): relevance maps are far coarser than the render (1 = official). Pixel-sharp
    #: labels (relevance_grow on hair) want 1; small parts' top-few-percent labels spread the mask at 1 under full
    #: balance, not with mask_pos_weight_max (docs/editing.md, "Every ray supervised", "Capped balance")
    mask_stride: int = 1
    #: weight of a term that fits the mask to 1 inside the part (0 = off; geometry edits only): at the source's
    #: occupied samples behind the surface of each supervised ray whose pseudo-label calls it the part, up to
    #: inside_depth world units deep. The 2D mask loss reaches the mask only where the ray's weight is (the part's
    #: surface); with coordinates as input it stays off below it, and an edit that removes the part's surface then
    #: meets an unmasked inside (short hair's residue: docs/editing.md, "Short hair", "Inside the part")
    lambda_inside: float = 0.0
    #: with lambda_inside: how deep behind a ray's surface (its median-weight sample) the inside is supervised
    inside_depth: float = 0.3
    #: with lambda_inside: at most this many inside samples per image and step (drawn at random among them)
    inside_samples: int = 4096
    #: with lambda_inside: also fit the mask to 0 behind the surface of the rays whose pseudo-label is not the part,
    #: up to this many world units deep (0 = off)
    inside_negatives: float = 0.0
    #: attention-field-only steps before the edit steps (source render + relevance + mask update; no mapper, no
    #: CLIP edit loss): a mask learnt from many more heads and views than the mapper needs, at a fraction of the
    #: cost of a full step. The run then takes afn_warmup + steps (+ afn_cooldown) steps.
    afn_warmup: int = 0
    #: attention-field-only steps after the edit steps, against the trained mapper's target: where a geometry edit
    #: grows new shape (with mask_target_rays), the mask has seen that shape only during the edit steps before
    afn_cooldown: int = 0
    #: learning rate of the attention field (default: lr)
    lr_attention: float | None = None
    #: learning rate of the mapper and deformation (default: lr). The official lr (3e-3 with the mapper's lr
    #: multiplier 0.01) assumes 4k-20k steps; CPU budgets of a few hundred steps need a larger one
    lr_mapper: float | None = None
    #: learning rate of the deformation network (default: lr, the official 3e-3). Never lr_mapper: the mapper's
    #: large CPU-budget rate made the deformation run away (the first hair_long moved every point ~75 world units)
    lr_deformation: float | None = None
    resolution: int = 64
    #: the edit steps' renders see a view this many times wider (focal length / fov_scale; the mapping still sees the
    #: generator's camera, inference keeps it), so the CLIP loss sees what the generator's frame cuts off; the mask is
    #: then fit in the mask-only steps alone (afn_warmup, afn_cooldown), at the generator's view, whose relevance maps
    #: are better, and lambda_outside must be 0. The synthetic world's long hair ends below the frame: shortening it
    #: from there barely changes a render (docs/editing.md, "Short hair"). 1 = the generator's view everywhere
    fov_scale: float = 1.0
    depth_resolution: int | None = None
    depth_resolution_importance: int | None = None
    superresolution: bool = False
    truncation_psi: float = 1.0
    threshold: float | None = None
    #: inference: the mask is 1 where it exceeds the threshold (0.5 without one) and 0 elsewhere, instead of the soft
    #: mask cut below the threshold. For a geometry edit: a soft mask half-blends the target's new shape (long hair
    #: came out as see-through strands that the classifier read as short)
    binarize_mask: bool = False
    save_every: int = 100
    preview_every: int = 50
    #: ground truth for `lenerf eval` on the synthetic world, e.g. {"part": "eyes", "target": {"eyes": "blue"}}
    eval: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "EditConfig":
        data = json.loads(Path(path).read_text())
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def validate(self, max_steps: int = 100_000) -> "EditConfig":
        for name in ("mask_prompt", "edit_prompt"):
            text = getattr(self, name).strip()
            if not text:
                raise InputError(f"{name.replace('_', ' ')} must not be empty")
            if len(text) > 200:
                raise InputError(f"{name.replace('_', ' ')} is too long ({len(text)} > 200 characters)")
        if not 1 <= self.steps <= max_steps:
            raise InputError(f"steps must be between 1 and {max_steps}, got {self.steps}")
        for name in ("afn_warmup", "afn_cooldown"):
            if not 0 <= getattr(self, name) <= max_steps:
                raise InputError(f"{name} must be between 0 and {max_steps}, got {getattr(self, name)}")
        if self.mask_pos_weight_max is not None and not (self.balanced_mask_loss and self.mask_pos_weight_max >= 1):
            raise InputError("mask_pos_weight_max caps balanced_mask_loss's positive weight: set balanced_mask_loss "
                             f"and a value >= 1, got {self.mask_pos_weight_max}")
        if self.mask_stride < 1 or self.resolution % self.mask_stride:
            raise InputError(f"mask_stride must divide the resolution ({self.resolution}), got {self.mask_stride}")
        if self.mask_target_rays and not (self.enlarged_mask and self.use_mask):
            raise InputError("mask_target_rays needs enlarged_mask (the raw target render) and the attention field")
        if self.relevance_quantile_target is not None and not self.mask_target_rays:
            raise InputError("relevance_quantile_target applies to the target's rays: set mask_target_rays")
        if self.relevance_otsu and self.relevance_quantile is not None:
            raise InputError("relevance_otsu and relevance_quantile are two ways to cut the maps: set one")
        if self.relevance_grow < 0:
            raise InputError(f"relevance_grow must be >= 0 (0: off), got {self.relevance_grow}")
        if self.relevance_grow and not (self.relevance_quantile is not None and self.relevance_binarize):
            raise InputError("relevance_grow grows each map's Otsu cut within its top 1 - relevance_quantile: set "
                             "relevance_quantile and relevance_binarize")
        if self.relevance_grow_connected and not self.relevance_grow:
            raise InputError("relevance_grow_connected restricts relevance_grow's growth: set relevance_grow > 0")
        for name in ("relevance_quantile", "relevance_quantile_target"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise InputError(f"{name} must be in (0, 1), got {value}")
        if (self.afn_warmup or self.afn_cooldown) and not self.use_mask:
            raise InputError("afn_warmup and afn_cooldown need the attention field (use_mask)")
        if not 0 <= self.relevance_shift_px < self.resolution // 2 or self.relevance_shifts not in (5, 9):
            raise InputError(f"relevance_shift_px must be in [0, {self.resolution // 2}) and relevance_shifts 5 or 9, "
                             f"got {self.relevance_shift_px} and {self.relevance_shifts}")
        if self.relevance_refine < 0 or not self.relevance_refine_sigma > 0:
            raise InputError(f"relevance_refine must be >= 0 and relevance_refine_sigma > 0, got "
                             f"{self.relevance_refine} and {self.relevance_refine_sigma}")
        if not self.mapper_groups and not self.deformation:
            raise InputError("an edit needs mapper groups or the deformation network (mapper_groups is empty)")
        if self.deform_target and not (self.deformation and self.use_mask):
            raise InputError("deform_target needs the deformation network and the attention field (use_mask)")
        if self.deform_target and self.enlarged_mask:
            raise InputError("deform_target's mask is the part on the source (the deformation carries it): "
                             "enlarged_mask does not apply")
        if self.dn_bound_length and not self.dn_max_offset:
            raise InputError("dn_bound_length bounds the offset's length by dn_max_offset: set dn_max_offset > 0")
        if self.dn_symmetric and not self.deformation:
            raise InputError("dn_symmetric needs the deformation network")
        if self.dn_max_offset < 0 or (self.dn_max_offset and not self.deformation):
            raise InputError(f"dn_max_offset must be >= 0 and needs the deformation network, got "
                             f"{self.dn_max_offset} with deformation={self.deformation}")
        if self.lambda_offset < 0 or (self.lambda_offset and not self.deformation):
            raise InputError(f"lambda_offset must be >= 0 and needs the deformation network, got "
                             f"{self.lambda_offset} with deformation={self.deformation}")
        if self.dn_xyz_frequencies < 0 or (self.dn_xyz_frequencies and not self.deformation):
            raise InputError(f"dn_xyz_frequencies must be >= 0 and needs the deformation network, got "
                             f"{self.dn_xyz_frequencies} with deformation={self.deformation}")
        if self.lambda_inside < 0 or (self.lambda_inside and (self.texture_only or not self.use_mask)):
            raise InputError("lambda_inside must be >= 0 and needs the mask (use_mask) and a geometry edit "
                             "(texture_only false): a texture edit renders the mask at the surface only")
        if self.inside_negatives < 0 or (self.inside_negatives and not self.lambda_inside):
            raise InputError(f"inside_negatives must be >= 0 and is a side of the inside term (lambda_inside > 0), "
                             f"got {self.inside_negatives}")
        if not self.inside_depth > 0 or self.inside_samples < 1:
            raise InputError(f"inside_depth must be > 0 and inside_samples >= 1, got {self.inside_depth} and "
                             f"{self.inside_samples}")
        if not 0.5 <= self.fov_scale <= 3:
            raise InputError(f"fov_scale must be between 0.5 and 3, got {self.fov_scale}")
        if self.fov_scale != 1 and self.lambda_outside:
            raise InputError("fov_scale needs lambda_outside 0: the wide view's edit steps have no pseudo-labels")
        for name in ("lr", "lr_attention", "lr_mapper", "lr_deformation"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{name} must be > 0, got {value}")
        if self.loss not in CLIP_LOSSES:
            raise InputError(f"loss must be one of {', '.join(CLIP_LOSSES)}, got {self.loss!r}")
        if self.lambda_outside < 0 or (self.lambda_outside and not self.use_mask):
            raise InputError("lambda_outside must be >= 0 and needs the mask (use_mask)")
        if self.lambda_outside_target < 0 or (self.lambda_outside_target and not (self.use_mask and self.texture_only
                                                                                   and not self.deformation)):
            raise InputError("lambda_outside_target must be >= 0 and needs the mask (use_mask) and a texture-only "
                             "edit without deformation")
        if self.outside_dilate_px < 0:
            raise InputError(f"outside_dilate_px must be >= 0, got {self.outside_dilate_px}")
        if self.mask_prompt_select not in ("mean", "best", "contrast"):
            raise InputError("mask_prompt_select must be 'mean', 'best' or 'contrast', "
                             f"got {self.mask_prompt_select!r}")
        if self.source_prompt_select not in ("mean", "best"):
            raise InputError(f"source_prompt_select must be 'mean' or 'best', got {self.source_prompt_select!r}")
        if self.batch < 1 or self.views < 1:
            raise InputError("batch and views must be >= 1")
        if self.save_every < 1 or self.preview_every < 0:
            raise InputError(f"save_every must be >= 1 and preview_every >= 0 (0: no previews), got "
                             f"{self.save_every} and {self.preview_every}")
        return self


def _descriptor_dim(G: Generator) -> int:
    with torch.no_grad():
        z = torch.zeros(1, G.z_dim, device=_dev(G))
        ws = G.mapping(z, G.camera(0, 0).to(_dev(G)))
        f = G.field(ws)
        return f.descriptor(f.features(torch.zeros(1, 1, 3, device=_dev(G)))).shape[-1]


def _dev(G) -> torch.device:
    return next(iter(G.buffers()), next(iter(G.parameters()), torch.empty(0))).device


#: settings that do not change the trained modules (logging, inference, evaluation): a state saved with other values
#: may be resumed; any other difference is an error (the state would continue another edit)
RESUMABLE_ACROSS = ("save_every", "preview_every", "eval", "threshold", "binarize_mask")


def train_edit(G: Generator, cfg: EditConfig, out_dir: str | Path, clip=None, resume: bool = True,
               progress: bool = True, callback: Callable[[dict], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               step_guard: Callable[[], AbstractContextManager] | None = None) -> Path:
    """Train an edit and write its package to ``out_dir``. ``callback`` receives a dict per step (step, losses,
    coverage, eta, and every ``preview_every`` steps a preview image); ``should_stop()`` cancels cleanly (the
    last checkpoint is kept, no package is written); each step runs inside ``step_guard()`` when given, and an
    edit step enters it again before the mapper's half and before that half's backward pass (the app uses it to let
    interactive requests use the device between two steps and within one: a preview waited for a whole `eyes_big`
    edit step, docs/speed.md)."""
    from ..clip import load_clip
    from .package import save_edit
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = _dev(G)
    G.requires_grad_(False)  # the generator is frozen: no gradients accumulate in it
    clip = clip or load_clip(cfg.clip, cfg.clip_pretrained, device=str(dev))
    # guides the mapper; the same model as ``clip`` is not loaded twice
    edit_clip = load_clip(cfg.edit_clip, device=str(dev)) if cfg.edit_clip not in (None, cfg.clip) else clip

    def relevance(images: torch.Tensor) -> torch.Tensor:
        return mask_relevance(clip, G, cfg, images)

    edit_prompts = [cfg.edit_prompt] + list(cfg.extra_edit_prompts)
    module_config = {"num_ws": G.num_ws, "w_dim": G.w_dim, "descriptor_dim": _descriptor_dim(G),
                     "mapper_groups": list(cfg.mapper_groups), "afn_kind": cfg.afn_kind, "afn_hidden": cfg.afn_hidden,
                     "use_xyz": cfg.use_xyz, "deformation": cfg.deformation,
                     "afn_xyz_frequencies": cfg.afn_xyz_frequencies}
    if cfg.dn_xyz_frequencies:  # only when set: packages written before the option load and hash the same
        module_config["dn_xyz_frequencies"] = cfg.dn_xyz_frequencies
    if cfg.dn_symmetric:
        module_config["dn_symmetric"] = True
    if cfg.dn_max_offset:
        module_config["dn_max_offset"] = cfg.dn_max_offset
    if cfg.dn_bound_length:
        module_config["dn_bound_length"] = True
    torch.manual_seed(cfg.seed)
    modules = EditModules(**module_config).to(dev)
    opt_a = torch.optim.Adam(modules.attention.parameters(), lr=cfg.lr_attention or cfg.lr, betas=(0.95, 0.999))
    groups = [{"params": list(modules.mapper.parameters()), "lr": cfg.lr_mapper or cfg.lr}]
    if modules.deformation is not None:  # its own rate (the mapper's CPU-budget rate is far too large for it)
        groups.append({"params": list(modules.deformation.parameters()), "lr": cfg.lr_deformation or cfg.lr})
    opt_m = torch.optim.Adam(groups, betas=(0.95, 0.999))
    opts = {"attention": opt_a, "mapper": opt_m}
    step, elapsed_before = 0, 0.0
    saved_cfg = asdict(cfg)
    if resume and (out / "train_state.json").is_file():
        defaults = asdict(EditConfig(cfg.mask_prompt, cfg.edit_prompt))  # settings added since a state was saved
        step, meta = TrainingState.load(out, modules, opts, saved_cfg, RESUMABLE_ACROSS, defaults)
        elapsed_before = float(meta.get("elapsed_s", 0.0))
    log_path = out / "train_log.jsonl"  # one line per step of this package's run (a resumed run appends)
    if step == 0:
        log_path.unlink(missing_ok=True)
    preset = Preset("train", cfg.resolution, cfg.depth_resolution, cfg.depth_resolution_importance,
                    cfg.superresolution, cfg.resolution)
    settings = G.render_settings.replace(depth_resolution=preset.depth_resolution,
                                         depth_resolution_importance=preset.depth_resolution_importance)

    def let_waiting_run() -> None:
        """Inside an edit step: what ``step_guard`` lets go first (the app's waiting requests) runs now."""
        if step_guard is not None:
            with step_guard():
                pass

    t0, start_step = time.time(), step
    total = cfg.afn_warmup + cfg.steps + cfg.afn_cooldown  # mask warm-up, edit steps, mask cool-down
    bar = tqdm(total=total, initial=step, desc=f"train '{cfg.edit_prompt}'", unit="step", disable=not progress)
    history = []
    while step < total:
        cooldown = step >= cfg.afn_warmup + cfg.steps
        warmup = step < cfg.afn_warmup or cooldown  # a mask-only step
        if should_stop is not None and should_stop():
            TrainingState.save(out, modules, opts, step,
                               {"elapsed_s": elapsed_before + time.time() - t0, "config": saved_cfg})
            _append_log(log_path, history)
            bar.close()
            raise KeyboardInterrupt("training cancelled")
        with step_guard() if step_guard is not None else nullcontext():  # e.g. let app requests go first
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            n = cfg.batch * cfg.views
            z = torch.randn(cfg.batch, G.z_dim, generator=gen).repeat_interleave(cfg.views, 0).to(dev)
            cams = sample_cameras(n, generator=gen, radius=G.camera_radius, lookat=G.camera_pivot,
                                  fov_deg=G.fov_deg).to(dev)
            with torch.no_grad():
                ws = G.mapping(z, cams, truncation_psi=cfg.truncation_psi)
                src_field = G.field(ws)
                # the edit steps see the wider view (the mapping above keeps the generator's camera); the mask is
                # fit in the mask-only steps, at the generator's view (relevance maps of the wide one are poor)
                view = wider_view(cams, 1.0 if warmup else cfg.fov_scale)
                origins, dirs = sample_rays(view[:, :16].reshape(-1, 4, 4), view[:, 16:25].reshape(-1, 3, 3),
                                            cfg.resolution)
                src = render(src_field, origins, dirs, settings,
                             generator=torch.Generator(device=dev).manual_seed(step), capture_features=True)
                res = cfg.resolution
                src_img = G.images(src.colors, ws, preset, res)[0]
                pts = origins.unsqueeze(-2) + src.sample_depths * dirs.unsqueeze(-2)  # [N, M, S, 3]
                s_count = pts.shape[2]
                desc_s = src_field.descriptor(src.sample_features.reshape(n, -1, src.sample_features.shape[-1]))
                wt0 = ws + cfg.strength * modules.mapper(ws)
                tgt_field = G.field(wt0) if cfg.afn_kind == "attention" or cfg.enlarged_mask else None
                ft0 = tgt_field.features(pts.reshape(n, -1, 3)) if cfg.afn_kind == "attention" else None
            logs = {}
            # 1) attention field ------------------------------------------------------------------------------
            if cfg.use_mask and not (warmup or cfg.fov_scale == 1):  # the mask as it is, at this view's samples
                with torch.no_grad():
                    desc_t = tgt_field.descriptor(ft0) if cfg.afn_kind == "attention" else None
                    m = _edit_mask(modules.attention, desc_s, pts.reshape(n, -1, 3), ws, wt0, desc_t,
                                   src.sample_weights, cfg.texture_only)
                logs["coverage"] = (composite_mask(m, src.sample_weights) > 0.5).float().mean().item()
            elif cfg.use_mask:
                with torch.no_grad():
                    rel, rel_t = relevance(src_img), None
                    if cfg.enlarged_mask:  # the raw target rendered with its own samples (it may have new geometry)
                        tgt = render(tgt_field, origins, dirs, settings,
                                     generator=torch.Generator(device=dev).manual_seed(step + 1),
                                     capture_features=cfg.mask_target_rays and cfg.afn_kind == "attention",
                                     return_samples=cfg.mask_target_rays)
                        tgt_img = G.images(tgt.colors, wt0, preset, res)[0]
                        if cfg.mask_target_rays:  # each render's mask is fit to its own image's map
                            q_t = cfg.relevance_quantile_target or cfg.relevance_quantile
                            rel_t = _pseudo_labels(relevance(tgt_img), q_t, cfg.relevance_binarize,
                                                   cfg.relevance_otsu and q_t is None, tgt_img, cfg.relevance_grow,
                                                   cfg.relevance_grow_connected)
                        else:
                            rel = torch.maximum(rel, relevance(tgt_img))
                rel = pseudo_labels(cfg, rel, src_img)
                allowed = rel if rel_t is None else torch.maximum(rel, rel_t)  # [N, 1, R, R]: the part, by CLIP
                desc_t = tgt_field.descriptor(ft0) if cfg.afn_kind == "attention" else None
                x_all = pts.reshape(n, -1, 3)
                # the mask is supervised on every mask_stride-th ray row and column (the relevance maps are much
                # coarser than the render), at the samples that carry ray weight
                ms = cfg.mask_stride
                rays = _strided_rays(res, ms, dev)
                per_ray = lambda t: None if t is None else (  # noqa: E731
                    t.reshape(n, res * res, s_count, -1)[:, rays].reshape(n, -1, t.shape[-1]))
                w_sub = src.sample_weights[:, rays]
                m_sub = _mask_at(modules.attention, per_ray(desc_s), per_ray(x_all), ws, wt0, per_ray(desc_t), w_sub)
                m2d = (2 * composite_mask(m_sub, w_sub) - 1).permute(0, 2, 1).reshape(n, 1, res // ms, res // ms)
                if ms > 1:
                    rel = F.interpolate(rel, size=(res // ms, res // ms), mode="area")
                    if rel_t is not None:
                        rel_t = F.interpolate(rel_t, size=(res // ms, res // ms), mode="area")
                label = 2 * rel - 1
                if cfg.mask_target_rays:  # the mask along the raw target's rays, fit to the target's own map
                    wt_sub = tgt.sample_weights[:, rays]
                    xt = (origins[:, rays].unsqueeze(-2) + tgt.sample_depths[:, rays] * dirs[:, rays].unsqueeze(-2))
                    ft_sub = None if tgt.sample_features is None else tgt.sample_features[:, rays]
                    mt = _mask_at_target(modules.attention, src_field, tgt_field, xt, ft_sub, ws, wt0, wt_sub)
                    m2d_t = (2 * composite_mask(mt, wt_sub) - 1).permute(0, 2, 1).reshape(n, 1, res // ms, res // ms)
                    m2d, label = torch.cat([m2d, m2d_t]), torch.cat([label, 2 * rel_t - 1])
                ml = mask_losses(m2d, label, cfg.topk, cfg.botk, gen, balanced=cfg.balanced_mask_loss,
                                 pos_weight_max=cfg.mask_pos_weight_max)
                loss_a = (cfg.lambda_mask * ml["mask"] + cfg.lambda_bin * ml["bin"] + cfg.lambda_minmax * ml["minmax"]
                          + cfg.lambda_tv * ml["tv"])
                if cfg.lambda_inside:  # the mask inside the part, behind the surface the 2D loss sees
                    with torch.no_grad():  # the source's density at the supervised rays' samples
                        sigma = src_field.decode(per_ray(src.sample_features))[1].reshape(n, -1, s_count, 1)
                    ml["inside"] = _inside_loss(modules.attention, per_ray(desc_s), per_ray(x_all), ws, wt0,
                                                per_ray(desc_t), w_sub, src.sample_depths[:, rays], sigma,
                                                label[:n].flatten(1) > 0, cfg, gen)
                    loss_a = loss_a + cfg.lambda_inside * ml["inside"]
                opt_a.zero_grad(set_to_none=True)
                loss_a.backward()
                opt_a.step()
                if not warmup and not cfg.deform_target:  # the mask at every sample the edit step renders
                    with torch.no_grad():
                        m = _edit_mask(modules.attention, desc_s, x_all, ws, wt0, desc_t, src.sample_weights,
                                       cfg.texture_only, m_sub if ms == 1 else None)
                logs.update({f"afn_{k}": v.item() for k, v in ml.items()})
                logs["coverage"] = (m2d[:n] > 0).float().mean().item()
            else:  # the global-edit ablation: the target everywhere
                m = torch.ones(n, pts.shape[1], s_count, 1, device=dev)
            # 2) mapper (+ deformation); skipped in the attention-field warm-up -------------------------------
            if warmup:
                edited = src_img
                logs.update({"clip": 0.0, "ws_l2": 0.0, "deform": 0.0})
            else:
                let_waiting_run()
                delta = modules.mapper(ws)
                wt = ws + cfg.strength * delta
                no_mapper = not modules.mapper.groups  # the target is the source (e.g. a deformation alone)
                tgt_field = src_field if no_mapper else G.field(wt)  # EG3D: no second tri-plane synthesis
                x = pts.reshape(n, -1, 3)
                l_def = l_offset = torch.zeros((), device=dev)
                fs = src.sample_features.reshape(n, -1, src.sample_features.shape[-1])
                raw_colors = None
                if cfg.texture_only and modules.deformation is None:
                    colors, sigma, raw_colors = _texture_step_colors(src_field, tgt_field, fs, x, m.reshape(n, -1, 1),
                                                                     src.sample_weights, cfg.lambda_outside_target > 0)
                else:
                    # the source's: captured by its render (deform_target reads the target at x' below)
                    ft = fs if no_mapper or cfg.deform_target else tgt_field.features(x)
                    if modules.deformation is not None:
                        x_def = modules.deformation(x, ws, wt)
                        if cfg.deform_target:  # the target and the mask are read at the deformed points
                            fsd = src_field.features(x_def)
                            ft = fsd if no_mapper else tgt_field.features(x_def)
                            desc_d = tgt_field.descriptor(ft) if cfg.afn_kind == "attention" else None
                            # its gradient moves the deformation; the attention field is not stepped here, so its
                            # weights' gradients are not computed
                            modules.attention.requires_grad_(False)
                            try:
                                m = modules.attention(src_field.descriptor(fsd), x_def, ws, wt, desc_d)
                            finally:
                                modules.attention.requires_grad_(True)
                        else:  # method.md Eq. 7: the source, outside the mask
                            fs = src_field.features(x_def)
                        w = torch.softmax(m.detach().reshape(n, -1), dim=-1)
                        l_def = (w * (x_def - x).pow(2).mean(-1)).sum(-1).mean()
                        if cfg.lambda_offset:  # interval weights [N, M, S-1] at each interval's first sample
                            w_pts = F.pad(src.sample_weights, (0, 0, 0, 1)).reshape(n, -1)
                            l_offset = (w_pts * (x_def - x).abs().sum(-1)).sum(-1).mean() / pts.shape[1]
                    fused = torch.lerp(fs, ft, m.reshape(n, -1, 1))
                    colors, sigma = src_field.decode(fused)
                    if cfg.texture_only:
                        sigma = src_field.decode(fs)[1]
                comp, _, _, _ = march(colors.reshape(n, -1, s_count, colors.shape[-1]),
                                      sigma.reshape(n, -1, s_count, 1), src.sample_depths)
                edited = G.images(comp * 2 - 1, ws, preset, res)[0]
                l_clip = clip_loss(edit_clip, edited, src_img, edit_prompts, cfg.source_prompts, cfg.loss,
                                   cfg.augmentations, gen, cfg.source_prompt_select)
                l_ws = delta.norm(dim=-1).mean()
                l_out = l_out_t = torch.zeros((), device=dev)
                if cfg.lambda_outside or cfg.lambda_outside_target:
                    inside = F.interpolate(allowed, size=edited.shape[-2:], mode="area")
                    if cfg.outside_dilate_px:
                        k = cfg.outside_dilate_px
                        inside = F.max_pool2d(inside, 2 * k + 1, stride=1, padding=k)
                    outside = 1 - inside
                    if cfg.lambda_outside:
                        l_out = ((edited - src_img).abs().mean(1, keepdim=True) * outside).mean()
                    if raw_colors is not None:  # the raw target, at the source's density (texture-only)
                        raw = march(raw_colors.reshape(n, -1, s_count, raw_colors.shape[-1]),
                                    sigma.reshape(n, -1, s_count, 1), src.sample_depths)[0]
                        raw_img = G.images(raw * 2 - 1, wt, preset, res)[0]
                        l_out_t = ((raw_img - src_img).abs().mean(1, keepdim=True) * outside).mean()
                loss_m = (cfg.lambda_clip * l_clip + cfg.lambda_ws * l_ws + cfg.lambda_deform * l_def
                          + cfg.lambda_outside * l_out + cfg.lambda_outside_target * l_out_t
                          + cfg.lambda_offset * l_offset)
                let_waiting_run()  # before the backward pass, the longest part of a deformation step
                opt_m.zero_grad(set_to_none=True)
                loss_m.backward()
                opt_m.step()
                logs.update({"clip": l_clip.item(), "ws_l2": l_ws.item(), "deform": l_def.item(),
                             **({"outside": l_out.item()} if cfg.lambda_outside else {}),
                             **({"outside_target": l_out_t.item()} if cfg.lambda_outside_target else {}),
                             **({"offset": l_offset.item()} if cfg.lambda_offset else {})})
            step += 1
            elapsed = elapsed_before + time.time() - t0
            eta = (time.time() - t0) / max(1, step - start_step) * (total - step)
            history.append({"step": step, **{k: round(v, 5) for k, v in logs.items()}})
            bar.update(1)
            bar.set_postfix(clip=f"{logs['clip']:.3f}", mask=f"{logs.get('afn_mask', 0):.3f}",
                            cov=f"{logs.get('coverage', 0):.2f}")
            phase = "mask cool-down" if cooldown else "mask warm-up" if warmup else "edit"
            info = {"step": step, "steps": total, "phase": phase, "eta_s": eta, "elapsed_s": elapsed, **logs}
            if cfg.preview_every and (step % cfg.preview_every == 0 or step == total):
                info["preview"] = _preview(src_img, edited, m2d if cfg.use_mask else None)
                from ..media import save_png
                save_png(info["preview"], out / "previews" / f"step{step:05d}.png")
            if callback is not None:
                callback(info)
            if step % cfg.save_every == 0 or step == total:
                TrainingState.save(out, modules, opts, step, {"elapsed_s": elapsed, "config": saved_cfg})
                _append_log(log_path, history)  # the log reaches as far as the checkpoint
                history.clear()
    bar.close()
    elapsed = elapsed_before + time.time() - t0
    modules.eval()
    meta = {"name": cfg.edit_prompt, "mask_prompt": cfg.mask_prompt, "edit_prompt": cfg.edit_prompt,
            "generator": cfg.generator, "clip": cfg.clip, "config": saved_cfg, "module_config": module_config,
            "strength": cfg.strength, "texture_only": cfg.texture_only, "threshold": cfg.threshold,
            "train_time_s": round(elapsed, 1), "steps": cfg.steps, "eval": cfg.eval,
            "machine": f"{torch.get_num_threads()} torch threads on {dev}", "metrics": {}}
    _append_log(log_path, history)
    return save_edit(out, modules, meta)


def _append_log(path: Path, history: list[dict]) -> None:
    if not history:
        return
    with open(path, "a") as f:
        for h in history:
            f.write(json.dumps(h) + "\n")


def _texture_step_colors(src_field, tgt_field, fs: Tensor, x: Tensor, m: Tensor, weights: Tensor,
                         raw: bool = False):
    """Colours and density of a texture-only edit step, [N, P, C] and [N, P, 1] (P = M*S samples), and with
    ``raw`` the raw target's colours there ([N, P, C], the source's where no ray weight is; else None).

    The mask ``m`` [N, P, 1] is 0 at every sample that carries no ray weight (``_mask_at``), where the fused
    features are the source's; so the target field - evaluated with gradients, the most expensive part of the
    step - is evaluated only at the samples that carry weight (``weights`` [N, M, S-1, 1]) and the rest keep the
    source's colours. The same values as fusing at every sample, at a fraction of the cost."""
    idx = weighted_samples(weights)  # [N, K]: the samples _mask_at evaluated the mask at
    with torch.no_grad():
        colors, sigma = src_field.decode(fs)
    fs_k, ft_k = gather_samples(fs, idx), tgt_field.features(gather_samples(x, idx))
    colors_k = src_field.decode(torch.lerp(fs_k, ft_k, gather_samples(m, idx)))[0]
    at = idx.unsqueeze(-1).expand(-1, -1, colors.shape[-1])
    raw_colors = colors.scatter(1, at, src_field.decode(ft_k)[0]) if raw else None
    return colors.scatter(1, at, colors_k), sigma, raw_colors


def mask_relevance(clip, G: Generator, cfg: EditConfig, images: Tensor) -> Tensor:
    """The relevance maps of ``cfg``'s mask prompt in renders ``images`` [N, 3, H, W] in [-1, 1] -> [N, 1, R, R] in
    [0, 1] (R = cfg.resolution): the maps the trainer turns into its pseudo-labels (:func:`pseudo_labels`)."""
    return relevance_maps(clip, images, G.expand_prompt(cfg.mask_prompt), size=cfg.resolution,
                          negative=cfg.negative_mask_prompts or None, select=cfg.mask_prompt_select,
                          templates=cfg.mask_prompt_templates or None, shift_px=cfg.relevance_shift_px,
                          shifts=cfg.relevance_shifts, refine=cfg.relevance_refine,
                          refine_sigma=cfg.relevance_refine_sigma)


def pseudo_labels(cfg: EditConfig, rel: Tensor, images: Tensor) -> Tensor:
    """``cfg``'s pseudo-labels [N, 1, R, R] from relevance maps ``rel`` of the renders ``images`` (the source's)."""
    return _pseudo_labels(rel, cfg.relevance_quantile, cfg.relevance_binarize, cfg.relevance_otsu, images,
                          cfg.relevance_grow, cfg.relevance_grow_connected)


def _pseudo_labels(rel: Tensor, quantile: float | None, binarize: bool, otsu: bool = False,
                   images: Tensor | None = None, grow: float = 0.0, connected: bool = False) -> Tensor:
    """Relevance maps [N, 1, R, R] in [0, 1] -> pseudo-labels R (the mask is fit to 2R - 1): with ``otsu`` 1 where
    a map reaches its Otsu threshold, else 0; unchanged without a quantile; else each map divided by its
    ``quantile`` and clipped, or with ``binarize`` 1 on its top 1 - q, or with ``grow`` > 0 too (and ``images``
    [N, 3, H, W] in [-1, 1], the renders the maps were made from) the colour-grown labels of :func:`grow_labels`
    (``connected``: grown through neighbours only)."""
    if otsu:
        return (rel >= otsu_thresholds(rel).view(-1, 1, 1, 1)).to(rel.dtype)
    if quantile is None:
        return rel
    q = torch.quantile(rel.flatten(1), quantile, dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    if binarize and grow > 0:
        if images is None:
            raise ValueError("colour-grown pseudo-labels need the rendered images")
        return grow_labels(rel, (rel >= q).to(rel.dtype), images, grow, connected)
    return (rel >= q).to(rel.dtype) if binarize else (rel / q).clamp(0, 1)


def grow_labels(rel: Tensor, wide: Tensor, images: Tensor, distance: float, connected: bool = False) -> Tensor:
    """Colour-grown pseudo-labels [N, 1, R, R] in {0, 1}, within ``wide`` (a loose cut, e.g. the top 50%): the seed
    (where the map is most relevant: the Otsu cut of its values inside ``wide``) plus the pixels of ``wide`` whose
    colour in ``images`` lies within ``distance`` (Euclidean, RGB in [0, 1]) of the seed's mean colour. (An Otsu
    cut of the whole map covered most of the view on a fifth of the hair renders, where the map's backdrop is
    mid-level: docs/editing.md.) With ``connected`` only those pixels joined to the seed through such pixels (8-
    neighbours; a geodesic dilation, at most R * R / 2 rounds of a 3x3 max-pool, stopping when nothing changes).

    rel: relevance maps [N, 1, R, R]; wide: {0, 1} [N, 1, R, R]; images: [N, 3, H, W] in [-1, 1] (area-resized
    to R when larger, bilinear when smaller). Measured on 96 training renders of the synthetic world (hair,
    ``python -m lenerf eval labels``): median IoU with the true hair 0.93 on short and on long hair at distance 0.2
    and the top 50%, where the top 40% alone gives 0.55 / 0.86 and the Otsu cut alone 0.91 / 0.52 (docs/editing.md)."""
    inside = wide > 0
    lowest = torch.where(inside, rel, torch.full_like(rel, float("inf"))).amin((1, 2, 3), keepdim=True)
    lowest = torch.where(torch.isfinite(lowest), lowest, torch.zeros_like(lowest))  # an empty wide cut: no labels
    seed = ((rel >= otsu_thresholds(torch.where(inside, rel, lowest)).view(-1, 1, 1, 1)) & inside).to(rel.dtype)
    rgb = (images_at(images, rel) + 1) / 2  # the affine map commutes with the (linear) resize
    mean = (rgb * seed).sum((2, 3), keepdim=True) / seed.sum((2, 3), keepdim=True).clamp_min(1)
    near = ((rgb - mean).norm(dim=1, keepdim=True) < distance).to(rel.dtype)
    grown = torch.maximum(seed, wide * near)
    if not connected:
        return grown
    reached = seed
    for _ in range(rel.shape[-2] * rel.shape[-1] // 2 + 1):  # a path through every other pixel is the longest
        step = torch.minimum(F.max_pool2d(reached, 3, 1, 1), grown)
        if torch.equal(step, reached):
            break
        reached = step
    return reached


#: a sample is inside matter where the source's density (softplus(sigma - 1), per world unit) reaches this
INSIDE_DENSITY = 10.0


def inside_samples(weights: Tensor, depths: Tensor, sigma: Tensor, positive: Tensor, depth: float, count: int,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Samples inside the part behind the surface: of rays [N, M] (``weights`` [N, M, S-1, 1] of their intervals,
    sorted ``depths`` [N, M, S, 1], density logits ``sigma`` [N, M, S, 1]), those whose ``positive`` [N, M] is True
    and whose weights reach 0.5, the samples deeper than the ray's median-weight depth by at most ``depth`` where
    the density reaches :data:`INSIDE_DENSITY`. Returns indices [N, K] into the M*S samples (K = ``count``, or fewer
    when an image has fewer samples in all) and a float ``valid`` [N, K] (1 where the index is such a sample; the
    rest fill the count). Up to ``count`` are drawn at random (``generator``, a CPU generator) where there are more."""
    n, m, s, _ = depths.shape
    cum = weights[..., 0].cumsum(-1)  # [N, M, S-1]
    reached = cum >= 0.5
    first = reached.to(torch.int8).argmax(-1, keepdim=True)  # the first interval where half the weight is reached
    surface = torch.gather(depths[..., 0], -1, first)  # [N, M, 1]
    z = depths[..., 0]
    inside = ((z > surface) & (z <= surface + depth) & (F.softplus(sigma[..., 0] - 1) >= INSIDE_DENSITY)
              & (positive & reached[..., -1]).unsqueeze(-1)).reshape(n, m * s)
    key = inside.to(torch.float32) + torch.rand(n, m * s, generator=generator).to(inside.device)
    idx = key.topk(min(count, m * s), dim=1).indices
    return idx, torch.gather(inside, 1, idx).to(sigma.dtype)


def _inside_loss(attention, desc_s: Tensor, x: Tensor, ws: Tensor, wt: Tensor, desc_t: Tensor | None,
                 weights: Tensor, depths: Tensor, sigma: Tensor, part: Tensor, cfg: EditConfig,
                 generator: torch.Generator) -> Tensor:
    """``cfg.lambda_inside``'s term (a scalar in [0, 1]): the mean of 1 - mask at :func:`inside_samples` of the rays
    whose ``part`` [N, M] is True (their pseudo-label), and with ``cfg.inside_negatives`` the mean of the mask behind
    the other rays' surfaces, averaged. Rays [N, M]: desc_*/x [N, M*S, D], ``weights`` [N, M, S-1, 1], sorted
    ``depths`` and density logits ``sigma`` [N, M, S, 1] of the source's render."""
    sides = (True, False) if cfg.inside_negatives else (True,)
    loss = 0.0
    for side in sides:  # behind the part's surface -> 1, behind the rest's -> 0
        idx, valid = inside_samples(weights, depths, sigma, part == side,
                                    cfg.inside_depth if side else cfg.inside_negatives, cfg.inside_samples, generator)
        m = attention(gather_samples(desc_s, idx), gather_samples(x, idx), ws, wt, gather_samples(desc_t, idx))[..., 0]
        err = 1 - m if side else m
        loss = loss + (err * valid).sum() / valid.sum().clamp_min(1) / len(sides)
    return loss


def _strided_rays(res: int, stride: int, device) -> Tensor:
    """Indices of the rays on every ``stride``-th row and column of a res x res image (row-major)."""
    k = torch.arange(0, res, stride, device=device)
    return (k[:, None] * res + k[None, :]).flatten()


def _edit_mask(attention, desc_s: Tensor, x: Tensor, ws: Tensor, wt: Tensor, desc_t: Tensor | None,
               weights: Tensor, texture_only: bool, supervised: Tensor | None = None) -> Tensor:
    """The mask [N, M, S, 1] at every sample an edit step renders (rays [N, M], ``weights`` [N, M, S-1, 1]): for a
    geometry edit everywhere (new geometry can appear where the source is empty), for a texture edit at the samples
    that carry weight (``supervised``: the mask step's own there, when it covered every ray)."""
    if not texture_only:
        return attention(desc_s, x, ws, wt, desc_t).reshape(weights.shape[0], weights.shape[1], -1, 1)
    if supervised is not None:
        return supervised.detach()
    return _mask_at(attention, desc_s, x, ws, wt, desc_t, weights)


def _mask_at(attention, desc_s: Tensor, x: Tensor, ws: Tensor, wt: Tensor, desc_t: Tensor | None,
             weights: Tensor) -> Tensor:
    """The attention field at the samples of rays [N, M, S] that carry weight (``weights`` [N, M, S-1, 1]), 0
    elsewhere -> [N, M, S, 1]. desc_*/x: [N, M*S, D]."""
    n, m_rays, s1, _ = weights.shape
    idx = weighted_samples(weights)
    m_sel = attention(gather_samples(desc_s, idx), gather_samples(x, idx), ws, wt, gather_samples(desc_t, idx))
    m = torch.zeros(n, m_rays * (s1 + 1), 1, device=x.device, dtype=m_sel.dtype).scatter(1, idx.unsqueeze(-1), m_sel)
    return m.reshape(n, m_rays, s1 + 1, 1)


def _mask_at_target(attention, src_field, tgt_field, x: Tensor, ft: Tensor | None, ws: Tensor, wt: Tensor,
                    weights: Tensor) -> Tensor:
    """The attention field at the samples x [N, M, S, 3] of the raw target's rays that carry weight (``weights``
    [N, M, S-1, 1]), 0 elsewhere -> [N, M, S, 1]. Its inputs are read there as at the source's samples: the source
    field's descriptors (and, for the "attention" kind, the target's, from its captured features ft [N, M, S, F])."""
    n, m_rays, s, _ = x.shape
    idx = weighted_samples(weights)
    def sel(t: Tensor) -> Tensor:
        return gather_samples(t.reshape(n, m_rays * s, -1), idx)

    xs = sel(x)
    with torch.no_grad():
        desc_s = src_field.descriptor(src_field.features(xs))
        desc_t = tgt_field.descriptor(sel(ft)) if attention.kind == "attention" else None
    m_sel = attention(desc_s, xs, ws, wt, desc_t)
    m = torch.zeros(n, m_rays * s, 1, device=x.device, dtype=m_sel.dtype).scatter(1, idx.unsqueeze(-1), m_sel)
    return m.reshape(n, m_rays, s, 1)


def _preview(src: Tensor, edited: Tensor, m2d: Tensor | None) -> np.ndarray:
    from ..media import to_uint8
    tiles = [to_uint8(src[0]), to_uint8(edited[0])]
    if m2d is not None:
        g = ((m2d[0, 0].detach().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        g = np.stack([g] * 3, -1)
        if g.shape[0] != tiles[0].shape[0]:
            from PIL import Image
            g = np.asarray(Image.fromarray(g).resize(tiles[0].shape[:2][::-1]))
        tiles.append(g)
    return np.concatenate(tiles, 1)


__all__ = ["EditConfig", "train_edit"]
