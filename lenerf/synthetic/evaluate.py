"""Held-out evaluation of MiniCLIP: zero-shot attribute accuracy, text->image retrieval, relevance-map IoU, and how
it reads hair lengths, eye sizes and colours off the palette (where each colour text peaks)."""
from __future__ import annotations

import itertools
from pathlib import Path

import torch

from ..clip.models import ClipModel
from ..clip.relevance import otsu_thresholds, relevance_maps
from ..metrics import mean_mask_baseline, relevance_iou
from .data import ATTR_KEYS, EVAL_SEED_BASE, cached_dataset, clip_training_data, to_float
from .world import ATTRIBUTES, PARTS

ZERO_SHOT_TEMPLATES = {"skin": "a face with {} skin", "eyes": "a face with {} eyes", "hair": "a face with {} hair",
                       "hair_length": "a face with {} hair", "lips": "a face with {} lips",
                       "nose": "a face with a {} nose"}
#: thresholds tried for the relevance maps (the mean-mask baseline is given its best threshold too); above 0.5 for
#: the negative-prompt maps, whose subtraction and renormalisation lifts the background; 0.02 and 0.05 for the hair,
#: whose map lights the hair's edges and leaves its interior just above zero (until session 19 the grid began at 0.1,
#: and the hair's tuned threshold sat at that lower end)
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: relevance prompt per part, filled with the image's own attribute ("mouth" is the lips)
RELEVANCE_PROMPTS = {"eyes": ("eyes", "{} eyes"), "hair": ("hair", "{} hair"), "mouth": ("lips", "{} lips"),
                     "nose": ("nose", "{} nose")}
#: phrasings whose maps are averaged (method.md §6.3); "a face with ..." is how MiniCLIP's captions read
RELEVANCE_TEMPLATES = ("{}", "a face with {}")
#: negative prompts (method.md §6.3) of the variant ``relevance_iou_negative_skin``: the skin phrases, whose map is
#: subtracted (the shipped hair edits use them: the hair map otherwise reaches the forehead)
NEGATIVE_SKIN = ("light skin", "tan skin", "dark skin")
#: eval-clip also scores maps averaged over a 3 x 3 grid of translations by half a MiniCLIP patch (4 px patches,
#: 64 px renders): the sub-patch shift the pseudo-labels of the shipped edits use
RELEVANCE_SHIFT_PX = 2
#: image-guided refinement (``refine_maps``) of the variants ``relevance_iou_refined`` and
#: ``relevance_iou_contrast_shifted_refined``: 20 iterations at colour scale 0.03, the best mean IoU on the *training*
#: renders over 18 settings (5/10/20 iterations x scale 0.03/0.05/0.1 x neighbourhoods to 4 or 8 px; every part,
#: both selects, MiniCLIP and MiniCLIP-length; docs/synthetic-world.md)
RELEVANCE_REFINE, RELEVANCE_REFINE_SIGMA = 20, 0.03


def full_caption(names: dict[str, str]) -> str:
    return (f"a face with {names['skin']} skin, {names['eyes']} eyes, {names['hair_length']} {names['hair']} hair, "
            f"{names['lips']} lips and a {names['nose']} nose")


def names_of(row) -> dict[str, str]:
    return {k: ATTRIBUTES[k][int(row[i])] for i, k in enumerate(ATTR_KEYS)}


@torch.no_grad()
def embed_images(clip: ClipModel, images_u8: torch.Tensor, batch: int = 128) -> torch.Tensor:
    return torch.cat([clip.encode_image(to_float(images_u8[a:a + batch]), normalize=True)
                      for a in range(0, len(images_u8), batch)])


def zero_shot_accuracy(clip: ClipModel, img_emb: torch.Tensor, attrs: torch.Tensor) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for i, k in enumerate(ATTR_KEYS):
            txt = clip.encode_text([ZERO_SHOT_TEMPLATES[k].format(c) for c in ATTRIBUTES[k]], normalize=True)
            pred = (img_emb @ txt.T).argmax(1)
            out[k] = (pred == attrs[:, i]).float().mean().item()
    return out


def retrieval_top1(clip: ClipModel, img_emb: torch.Tensor, attrs: torch.Tensor, group: int = 32) -> float:
    hits, total = 0, 0
    with torch.no_grad():
        for a in range(0, len(attrs) - group + 1, group):
            rows = attrs[a:a + group]
            txt = clip.encode_text([full_caption(names_of(r)) for r in rows], normalize=True)
            best = (txt @ img_emb[a:a + group].T).argmax(1)
            hits += (rows[best] == rows).all(1).sum().item()
            total += group
    return hits / max(total, 1)


def _part_maps(clip: ClipModel, images: torch.Tensor, attrs: torch.Tensor, part: str, tpl: str,
               batch: int, negative: list[str] | None = None, shift_px: int = 0,
               select: str = "own", refine: int = 0) -> torch.Tensor:
    """``select="own"``: the prompt of each image's own attribute; ``"contrast"``: every attribute's prompt, the
    one CLIP matches best minus the others (``relevance_maps(select="contrast")``, as the edit trainer runs it)."""
    col = ATTR_KEYS.index(part)
    if select == "own":
        prompts = lambda rows: [[tpl.format(ATTRIBUTES[part][int(r[col])])] for r in rows]  # noqa: E731
    else:
        prompts = lambda rows: [tpl.format(v) for v in ATTRIBUTES[part]]  # noqa: E731
    return torch.cat([relevance_maps(clip, to_float(images[a:a + batch]), prompts(attrs[a:a + batch]),
                                     select="mean" if select == "own" else select,
                                     templates=list(RELEVANCE_TEMPLATES), negative=negative, shift_px=shift_px,
                                     shifts=9, refine=refine, refine_sigma=RELEVANCE_REFINE_SIGMA)
                      for a in range(0, len(images), batch)])


def relevance_scores(clip: ClipModel, data: dict, train: dict, batch: int = 64, calibration: int = 320,
                     negative: list[str] | None = None, shift_px: int = 0, select: str = "own",
                     refine: int = 0) -> dict:
    """Relevance-map IoU per part on the held-out ``data``: at threshold 0.5 (the sign of the pseudo-label 2R - 1),
    at the threshold that is best on ``calibration`` training renders (an honest tuned threshold), at each map's
    own Otsu threshold (``otsu_thresholds``: no threshold to tune, session 25) and at the held-out oracle
    threshold; with the mean-ground-truth-mask baseline (at its oracle threshold). ``negative``: prompts whose
    averaged map is subtracted (method.md §6.3); ``shift_px``: maps averaged over a 3 x 3 grid of image translations
    by that many pixels (``relevance_maps``); ``select``: "own" (the image's own attribute) or "contrast"
    (``_part_maps``); ``refine``: iterations of image-guided refinement (``refine_maps``)."""
    images, labels, attrs = data["images"], data["labels"].long(), data["attrs"]
    train_labels = train["labels"].long()
    out = {}
    for name, (part, tpl) in RELEVANCE_PROMPTS.items():
        label = PARTS.index(part) + 1
        gt = labels == label
        maps = _part_maps(clip, images, attrs, part, tpl, batch, negative, shift_px, select, refine)
        at = {t: relevance_iou(maps, gt, t).mean().item() for t in THRESHOLDS}
        cal = _part_maps(clip, train["images"][:calibration], train["attrs"][:calibration], part, tpl, batch,
                         negative, shift_px, select, refine)
        cal_gt = train_labels[:calibration] == label
        train_t = max(THRESHOLDS, key=lambda t: relevance_iou(cal, cal_gt, t).mean().item())
        best_t = max(at, key=at.get)
        base, thr = mean_mask_baseline(train_labels == label, gt)
        otsu = relevance_iou(maps, gt, otsu_thresholds(maps).view(-1, 1, 1)).mean().item()
        out[name] = {"iou": round(at[0.5], 4), "iou_train_threshold": round(at[train_t], 4),
                     "iou_otsu": round(otsu, 4),
                     "train_threshold": train_t, "iou_best_threshold": round(at[best_t], 4),
                     "best_threshold": best_t, "mean_mask_baseline_iou": round(base, 4),
                     "baseline_threshold": round(thr, 2), "prompt": tpl,
                     "templates": list(RELEVANCE_TEMPLATES), "negative": list(negative or []),
                     "shift_px": shift_px, "select": select, "refine": refine,
                     **({"refine_sigma": RELEVANCE_REFINE_SIGMA} if refine else {})}
    return out


def evaluate_clip(clip: ClipModel, cfg: dict, work_dir: str | Path, progress: bool = True) -> dict:
    work_dir = Path(work_dir)
    data = cached_dataset(work_dir / f"eval_{cfg['eval_heads']}x{cfg['eval_views']}.safetensors",
                          n_heads=cfg["eval_heads"], views=cfg["eval_views"], seed_base=EVAL_SEED_BASE,
                          resolution=cfg["resolution"], camera_seed=10_000 + cfg["seed"], progress=progress)
    train = clip_training_data(cfg, work_dir, progress)
    emb = embed_images(clip, data["images"])
    return {"zero_shot_accuracy": {k: round(v, 4) for k, v in zero_shot_accuracy(clip, emb, data["attrs"]).items()},
            "text_to_image_top1_among_32": round(retrieval_top1(clip, emb, data["attrs"]), 4),
            "relevance_iou": relevance_scores(clip, data, train),
            "relevance_iou_negative_skin": relevance_scores(clip, data, train, negative=list(NEGATIVE_SKIN)),
            "relevance_iou_shifted": relevance_scores(clip, data, train, shift_px=RELEVANCE_SHIFT_PX),
            "relevance_iou_contrast": relevance_scores(clip, data, train, select="contrast"),
            "relevance_iou_contrast_shifted": relevance_scores(clip, data, train, shift_px=RELEVANCE_SHIFT_PX,
                                                               select="contrast"),
            "relevance_iou_refined": relevance_scores(clip, data, train, refine=RELEVANCE_REFINE),
            "relevance_iou_contrast_shifted_refined": relevance_scores(clip, data, train, shift_px=RELEVANCE_SHIFT_PX,
                                                                       select="contrast", refine=RELEVANCE_REFINE),
            "eval_images": len(data["images"])}


def _record_p_first(out: dict, key: str, clip: ClipModel, images: torch.Tensor, texts: list[str]) -> None:
    """Append the mean / min / max over ``images`` of sigmoid(logit scale x (cos(image, texts[0]) - cos(image,
    texts[1]))) to ``out[key + "_mean" | "_min" | "_max"]``."""
    m = clip.model
    t = torch.nn.functional.normalize(clip.text_features(texts), dim=-1)
    e = torch.nn.functional.normalize(m.encode_image(clip.preprocess(images)), dim=-1)
    d = m.logit_scale.exp() * (e @ t.T)
    p = torch.sigmoid(d[:, 0] - d[:, 1])
    for f in ("mean", "min", "max"):
        out[f"{key}_{f}"].append(round(getattr(p, f)().item(), 4))


#: hair-length codes at which ``length_response`` reads a model
LENGTH_STEPS = (0.0, 0.03, 0.06, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)


@torch.no_grad()
def length_response(clip: ClipModel, heads: int = 8, lengths=LENGTH_STEPS, resolution: int = 64) -> dict:
    """How a model reads hair length: the first ``heads`` short-haired held-out heads (seeds from EVAL_SEED_BASE
    + 70000), three views each (yaw/pitch (-0.3, 0.1), (0.3, -0.1), (0, 0)), rendered with the hair-length code set
    to each of ``lengths``; p(long) = sigmoid(logit scale x (cos(image, "a face with long hair") - cos(image, "a face
    with short hair"))) -> {"lengths", "p_long_mean", "p_long_min", "p_long_max"} (one value per length). A model an
    edit can follow from short hair rises from h = 0; one trained on the world's lengths only is a step."""
    from .data import latents
    from .world import SyntheticHeads
    G = SyntheticHeads().to(clip.mean.device)
    seeds = range(EVAL_SEED_BASE + 70_000, EVAL_SEED_BASE + 70_000 + 40 * heads)
    ws = latents(G, seeds).to(clip.mean.device)
    short = torch.nonzero(G.attributes(ws)["hair_length"] == 0).squeeze(1)[:heads]
    ws = ws[short].repeat_interleave(3, 0)
    cams = torch.cat([G.camera(y, p) for y, p in [(-0.3, 0.1), (0.3, -0.1), (0.0, 0.0)]]).to(ws).repeat(len(short), 1)
    texts = ["a face with long hair", "a face with short hair"]
    out = {"lengths": list(lengths), "heads": len(short), "views": 3, "p_long_mean": [], "p_long_min": [],
           "p_long_max": []}
    for h in lengths:
        w = G.with_hair_length(ws, torch.full((len(ws),), float(h)))
        img = G.render_field(G.field(w), w, cams, resolution,  # the same ray samples at every length
                             generator=torch.Generator(device=ws.device).manual_seed(0))["image"].clamp(-1, 1)
        _record_p_first(out, "p_long", clip, img, texts)
    return out


#: eye radius scales at which ``eye_size_response`` reads a model (1 = the world's eyes; "big" above 1.35)
EYE_STEPS = (1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7)


@torch.no_grad()
def eye_size_response(clip: ClipModel, heads: int = 8, scales=EYE_STEPS, resolution: int = 64) -> dict:
    """How a model reads eye size: held-out heads (seeds from EVAL_SEED_BASE + 70000), three views each (as in
    ``length_response``), rendered with the eyes' radius scaled by each of ``scales``; p(big) = sigmoid(logit scale
    x (cos(image, "a face with big eyes") - cos(image, "a face with small eyes"))) -> {"scales", "p_big_mean",
    "p_big_min", "p_big_max"}. A deformation that grows the eyes can follow a model that rises from scale 1."""
    from .data import latents
    from .world import SyntheticHeads
    G = SyntheticHeads().to(clip.mean.device)
    ws = latents(G, range(EVAL_SEED_BASE + 70_000, EVAL_SEED_BASE + 70_000 + heads)).to(clip.mean.device)
    ws = ws.repeat_interleave(3, 0)
    cams = torch.cat([G.camera(y, p) for y, p in [(-0.3, 0.1), (0.3, -0.1), (0.0, 0.0)]]).to(ws).repeat(heads, 1)
    texts = ["a face with big eyes", "a face with small eyes"]
    out = {"scales": list(scales), "heads": heads, "views": 3, "p_big_mean": [], "p_big_min": [], "p_big_max": []}
    for s in scales:
        img = G.label_image(ws, cams, resolution, eye_scale=torch.full((len(ws),), float(s)))[1]["image"].clamp(-1, 1)
        _record_p_first(out, "p_big", clip, img, texts)
    return out


#: channel levels of the RGB grid on which ``colour_response`` reads a model (5^3 colours, plus each palette colour)
COLOUR_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def colour_response(clip: ClipModel, heads: int = 4, levels=COLOUR_LEVELS, resolution: int = 64,
                    parts: tuple[str, ...] | None = None) -> dict:
    """Where a model puts each colour class: held-out heads (seeds from EVAL_SEED_BASE + 70000), frontal view, with
    one part's colour set to every colour of a ``levels``^3 RGB grid and to each of the part's palette colours. Per
    class ("a face with red hair", ``ZERO_SHOT_TEMPLATES``), averaged over the heads: the grid colour of the highest
    cosine and its distance from the palette colour, the palette colour's rank by cosine among all the colours
    tried (1 = the peak), and the same for the zero-shot probability among the part's classes. A guide whose peak
    lies off the palette pulls an edit there (``hair_red``'s magenta-leaning red). ``parts``: default every colour
    part (``COLOR_PARTS``)."""
    from .data import latents
    from .world import COLOR_PARTS, PALETTES, SyntheticHeads
    dev = clip.mean.device
    G = SyntheticHeads().to(dev)
    ws = latents(G, range(EVAL_SEED_BASE + 70_000, EVAL_SEED_BASE + 70_000 + heads)).to(dev)
    cams = G.camera(torch.zeros(heads), torch.zeros(heads)).to(ws)
    grid = torch.tensor(list(itertools.product(levels, repeat=3)), dtype=torch.float32)
    out = {"heads": heads, "grid_levels": list(levels), "classes": {}}
    for part in parts or COLOR_PARTS:
        pal = torch.tensor(list(PALETTES[part].values()))
        colours = torch.cat([grid, pal])  # [C, 3]
        txt = clip.encode_text([ZERO_SHOT_TEMPLATES[part].format(c) for c in ATTRIBUTES[part]], normalize=True)
        cos = []
        for col in colours:
            w = G.with_colors(ws, {part: col.to(ws).expand(heads, 3)})
            img = G.render_field(G.field(w), w, cams, resolution,
                                 generator=torch.Generator(device=dev).manual_seed(0))["image"].clamp(-1, 1)
            cos.append(clip.encode_image(img, normalize=True) @ txt.T)  # [heads, K]
        cos = torch.stack(cos)  # [C, heads, K]
        p = (clip.model.logit_scale.exp() * cos).softmax(-1).mean(1)  # [C, K]
        cos = cos.mean(1)
        for k, name in enumerate(ATTRIBUTES[part]):
            own = len(grid) + k
            row = {}
            for key, score in (("cos", cos[:, k]), ("p", p[:, k])):
                peak = int(score.argmax())
                row[f"peak_by_{key}"] = [round(v, 3) for v in colours[peak].tolist()]
                row[f"peak_by_{key}_distance"] = round(float((colours[peak] - pal[k]).norm()), 3)
                row[f"palette_rank_by_{key}"] = int((score > score[own]).sum()) + 1
                row[f"palette_{key}"] = round(float(score[own]), 4)
                row[f"peak_{key}"] = round(float(score[peak]), 4)
            out["classes"][f"{name} {part}"] = row
    out["colours_tried"] = len(grid) + 1
    dist = torch.tensor([r["peak_by_cos_distance"] for r in out["classes"].values()])
    out["median_peak_by_cos_distance"] = round(float(dist.median()), 3)
    out["palette_is_cos_peak_or_next"] = sum(r["palette_rank_by_cos"] <= 2 for r in out["classes"].values())
    return out
