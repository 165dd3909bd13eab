"""2D relevance maps of a text prompt in an image (method.md §6): gradient-weighted attention of the last block.

Works for any open_clip VisionTransformer made of standard ``ResidualAttentionBlock`` s (MiniCLIP, ViT-B/32).
open_clip computes attention without weights, so the last block is re-run by hand from its input with the
attention probabilities kept as a leaf of the autograd graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import ClipModel


def encode_with_last_attention(visual, pixels: Tensor, leaf: bool = True,
                               cls_only: bool = False) -> tuple[Tensor, Tensor]:
    """Image features [B, D] of an open_clip ``VisionTransformer`` and the attention probabilities of its last
    block [B, heads, n, n]. ``leaf=True`` detaches the probabilities into a leaf (relevance maps differentiate
    w.r.t. them); ``leaf=False`` keeps them in the graph (training regularisers). ``cls_only``: the last block
    is run for the CLS query alone and the probabilities are its row, [B, heads, 1, n] (exact when the model
    pools the CLS token, see :func:`pools_cls_token`; the features then cost 1/n of the last block's queries)."""
    v = visual
    if cls_only and not pools_cls_token(v):
        raise ValueError("cls_only needs a model that pools the CLS token")
    x = v._embeds(pixels)
    blocks = v.transformer.resblocks
    if not getattr(v.transformer, "batch_first", True):
        raise NotImplementedError("relevance maps need a batch-first open_clip transformer")
    for blk in blocks[:-1]:
        x = blk(x)
    last = blocks[-1]
    h = last.ln_1(x)
    attn = last.attn
    b, n, d = h.shape
    heads = attn.num_heads
    q, k, val = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if cls_only:  # only the CLS token reaches the pooled features: keep its query (and residual) alone
        q, x = q[:, :1], x[:, :1]
    q, k, val = (t.reshape(b, -1, heads, d // heads).transpose(1, 2) for t in (q, k, val))
    probs = torch.softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5, dim=-1)
    if leaf:
        probs = probs.detach().requires_grad_(True)  # [B, heads, n, n], the leaf we differentiate w.r.t.
    out = (probs @ val).transpose(1, 2).reshape(b, -1, d)
    x = x + last.ls_1(attn.out_proj(out))
    x = x + last.ls_2(last.mlp(last.ln_2(x)))
    pooled, _ = v._pool(x)
    if v.proj is not None:
        pooled = pooled @ v.proj
    return pooled, probs


def pools_cls_token(visual) -> bool:
    """Whether an open_clip ``VisionTransformer``'s image features come from the CLS token alone."""
    return getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", "tok") == "tok"


#: neighbourhood of :func:`refine_maps`: the 8 neighbours at each of these distances (pixels of the map)
REFINE_DILATIONS = (1, 2, 4, 8)
#: colour scale of :func:`refine_maps`: mean absolute difference over RGB in [-1, 1] at which a neighbour's weight
#: falls by e relative to a neighbour of the same colour
REFINE_SIGMA = 0.05


def relevance_maps(clip: ClipModel, images: Tensor, prompts: list[str] | list[list[str]], size: int | None = None,
                   per_image: bool = True, negative: list[str] | None = None, select: str = "mean",
                   templates: list[str] | None = None, shift_px: int = 0, shifts: int = 5,
                   refine: int = 0, refine_sigma: float = REFINE_SIGMA) -> Tensor:
    """Relevance of a prompt in each image, in [0, 1]: [N, 1, size, size] (no gradient).

    Args:
        images: [N, 3, H, W] in [-1, 1].
        prompts: one list of prompts for all images (their maps are averaged), or one list per image.
        size: output resolution (default: the image width).
        per_image: min-max normalise each map on its own (recommended) instead of over the batch (official).
        negative: prompts whose averaged map is subtracted before normalising again.
        select: ``"mean"`` averages the maps of the prompts (official); ``"best"`` uses, per image, only the prompt
            CLIP finds most similar to it (e.g. the eye colour CLIP sees among "brown/blue/green eyes");
            ``"contrast"``: the best prompt's map minus the mean map of the image's other prompts, clamped at 0
            before normalising (what lights for "red hair" but not for "black hair": the colour, not the edges
            and backdrop every hair prompt lights; docs/synthetic-world.md).
        templates: phrasings of each (selected) prompt whose maps are averaged, e.g. ``["{}", "a face with {}"]``
            (method.md §6.3: several prompts are averaged).
        shift_px: average every map over copies of the image translated by +-shift_px pixels (edges replicated;
            each map is shifted back before averaging). A ViT's map is only as fine as its patch grid; shifts of a
            fraction of a patch give the average a finer, better-placed edge (test-time translation).
        shifts: how many translations with shift_px > 0: 5 (centre and the four diagonals) or 9 (3 x 3 grid).
        refine: iterations of image-guided refinement (:func:`refine_maps`) of the final map; 0 (default, official)
            leaves the map as CLIP's patch grid gives it. Not in method.md: an addition (docs/synthetic-world.md).
        refine_sigma: the refinement's colour scale (:data:`REFINE_SIGMA`).
    """
    size = size or images.shape[-1]
    n = images.shape[0]
    per = prompts if prompts and isinstance(prompts[0], (list, tuple)) else [list(prompts)] * n
    if select not in ("mean", "best", "contrast"):
        raise ValueError(f"select must be 'mean', 'best' or 'contrast', got {select!r}")
    rest: list[list[str]] = []
    if select != "mean" and max(len(p) for p in per) > 1:
        best = _best_prompts(clip, images, per)
        rest = [[q for q in ps if q != b[0]] for ps, b in zip(per, best)] if select == "contrast" else []
        per = best
    if templates:
        per = [[t.format(p) for p in ps for t in templates] for ps in per]
        rest = [[t.format(p) for p in ps for t in templates] for ps in rest]

    # one text set per map (one text per image): the mask prompts' k phrasings, the contrasted prompts' phrasings,
    # then every negative prompt; all maps come from one pass of the images through CLIP
    pos = [[p[j % len(p)] for p in per] for j in range(max(len(p) for p in per))]
    if any(rest) and not all(rest):
        raise ValueError("select='contrast' needs at least two prompts for every image")
    con = [[p[j % len(p)] for p in rest] for j in range(max(len(p) for p in rest))] if any(rest) else []
    neg = [[q] * n for q in negative or []]
    maps = _shifted_maps(clip, images, pos + con + neg, size, _offsets(shift_px, shifts))
    r = maps[:len(pos)].mean(0)
    if con:
        r = (r - maps[len(pos):len(pos) + len(con)].mean(0)).clamp_min(0)
    r = _normalize(r, per_image)
    if neg:
        r = _normalize(r - _normalize(maps[len(pos) + len(con):].mean(0), per_image), per_image)
    if refine:
        r = _normalize(refine_maps(images, r, refine, sigma=refine_sigma), per_image)
    return r


def refine_maps(images: Tensor, maps: Tensor, iterations: int = 10, dilations: tuple[int, ...] = REFINE_DILATIONS,
                sigma: float = REFINE_SIGMA) -> Tensor:
    """Image-guided refinement of relevance maps, after pixel-adaptive mask refinement (PAMR; Araslanov and Roth,
    "Single-stage semantic segmentation from image labels", CVPR 2020).

    Each iteration replaces every pixel's value by a weighted mean of its 8 neighbours at each distance in
    ``dilations``; a neighbour's weight is softmax over the neighbours of -|colour difference| / ``sigma``. Relevance
    thus spreads through a region of one colour and stops at its colour edges: a ViT's map, as coarse as its patch
    grid and often lit on a few patches of a part, fills the part and takes its outline from the image.

    Args:
        images: [N, 3, H, W] in [-1, 1] (resized to the maps' size when it differs).
        maps: [N, 1, R, R], any range.
        iterations: >= 0 refinement steps (0 returns ``maps``).
    Returns: [N, 1, R, R]; each step is a convex combination, so values stay within the maps' range.
    """
    if iterations < 0 or not sigma > 0:
        raise ValueError(f"iterations must be >= 0 and sigma > 0, got {iterations} and {sigma}")
    if not iterations:
        return maps
    img = images_at(images, maps)
    offsets = [(a * d, b * d) for d in dilations for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
    pad = max(dilations)
    h, w = maps.shape[-2:]

    def neighbours(x: Tensor) -> Tensor:  # [N, C, H, W] -> [N, C, K, H, W], edges replicated
        p = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        return torch.stack([p[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w] for dy, dx in offsets], 2)

    diff = (neighbours(img) - img.unsqueeze(2)).abs().mean(1, keepdim=True)  # [N, 1, K, H, W]
    weights = torch.softmax(-diff / sigma, dim=2)
    r = maps.detach()
    for _ in range(iterations):
        r = (neighbours(r) * weights).sum(2)
    return r


def images_at(images: Tensor, maps: Tensor) -> Tensor:
    """``images`` [N, C, H, W] (detached, in the maps' dtype) at the size of ``maps`` [N, 1, R, R]: area-averaged
    when larger, bilinear when smaller, unchanged when equal."""
    img = images.detach().to(maps.dtype)
    size = maps.shape[-2:]
    if img.shape[-2:] != size:
        img = F.interpolate(img, size=size, mode="area" if img.shape[-1] > size[-1] else "bilinear")
    return img


def otsu_thresholds(maps: Tensor, bins: int = 64) -> Tensor:
    """Per-map threshold that best splits each map's values into two classes (Otsu's method: the largest
    between-class variance of a ``bins``-bin histogram on [0, 1]). maps [N, 1, H, W] in [0, 1] -> thresholds [N]
    (upper edges of the low class's last bin). A map whose values are all equal gets 1.0 (nothing above it).

    Unlike a quantile, it needs no prior on the part's area: a nose covering 2% of a render and hair covering 25%
    both come out at their own size when the map separates them from the rest (docs/synthetic-world.md)."""
    flat = maps.detach().flatten(1).clamp(0, 1)
    idx = (flat * bins).long().clamp_max(bins - 1)
    hist = torch.zeros(flat.shape[0], bins, dtype=flat.dtype, device=flat.device).scatter_add_(
        1, idx, torch.ones_like(flat))
    p = hist / flat.shape[1]
    centres = (torch.arange(bins, dtype=flat.dtype, device=flat.device) + 0.5) / bins
    w0, mu0 = p.cumsum(1), (p * centres).cumsum(1)  # weight and first moment of the class below each cut
    between = (mu0[:, -1:] * w0 - mu0).pow(2) / (w0 * (1 - w0)).clamp_min(1e-12)
    between = torch.where((w0 > 0) & (w0 < 1 - 1e-6), between, torch.full_like(between, -1.0))
    cut = between.argmax(1)
    return torch.where(between.amax(1) >= 0, (cut + 1).to(flat.dtype) / bins, torch.ones_like(cut, dtype=flat.dtype))


@torch.no_grad()
def _best_prompts(clip: ClipModel, images: Tensor, per: list[list[str]]) -> list[list[str]]:
    img = F.normalize(clip.encode_image(images.detach()), dim=-1)
    out = []
    for i, prompts in enumerate(per):
        txt = F.normalize(clip.text_features(list(prompts)), dim=-1)
        out.append([prompts[int((txt @ img[i]).argmax())]])
    return out


def _offsets(shift_px: int, shifts: int) -> list[tuple[int, int]]:
    if shift_px < 0:
        raise ValueError(f"shift_px must be >= 0, got {shift_px}")
    if not shift_px:
        return [(0, 0)]
    d = shift_px
    if shifts == 5:
        return [(0, 0), (d, d), (-d, -d), (d, -d), (-d, d)]
    if shifts == 9:
        return [(a, b) for a in (-d, 0, d) for b in (-d, 0, d)]
    raise ValueError(f"shifts must be 5 or 9, got {shifts}")


def _shifted_maps(clip: ClipModel, images: Tensor, text_sets: list[list[str]], size: int,
                  offsets: list[tuple[int, int]]) -> Tensor:
    """Raw maps [K, N, 1, size, size] of K text sets (one text per image each), averaged over the translated
    copies of the images (one batch of len(offsets) x N images through CLIP)."""
    if offsets == [(0, 0)]:
        return _raw_maps(clip, images, text_sets, size)
    n, _, h, w = images.shape
    s, t = max(max(abs(a), abs(b)) for a, b in offsets), len(offsets)
    padded = F.pad(images, (s, s, s, s), mode="replicate")
    # copy k shows the image moved by (-dy, -dx): its pixel (i, j) is the image's (i + dy, j + dx)
    crops = torch.cat([padded[..., s + dy:s + dy + h, s + dx:s + dx + w] for dy, dx in offsets])
    maps = _raw_maps(clip, crops, [list(texts) * t for texts in text_sets], w)  # [K, T*N, 1, h, w]
    maps = F.pad(maps.flatten(0, 1), (s, s, s, s), mode="replicate").reshape(len(text_sets), t, n, 1, h + 2 * s,
                                                                            w + 2 * s)
    back = torch.stack([maps[:, k, ..., s - dy:s - dy + h, s - dx:s - dx + w] for k, (dy, dx) in enumerate(offsets)],
                       1).mean(1)
    return back if size == w else F.interpolate(back.flatten(0, 1), size=(size, size), mode="bilinear",
                                                align_corners=False).reshape(len(text_sets), n, 1, size, size)


def _raw_maps(clip: ClipModel, images: Tensor, text_sets: list[list[str]], size: int) -> Tensor:
    """Gradient-weighted last-block attention of the CLS token, [K, N, 1, size, size], for K text sets of one
    text per image. The image goes through CLIP once; each text set costs one backward through the last block."""
    texts = sorted({t for ts in text_sets for t in ts})
    txt = F.normalize(clip.text_features(texts), dim=-1)
    row = {t: i for i, t in enumerate(texts)}
    maps = []
    with torch.enable_grad():
        pixels = clip.preprocess(images.detach())
        visual = clip.model.visual
        img, probs = encode_with_last_attention(visual, pixels, cls_only=pools_cls_token(visual))
        img = F.normalize(img, dim=-1)
        for j, ts in enumerate(text_sets):
            t = txt[torch.tensor([row[x] for x in ts], device=txt.device)]
            logits = clip.model.logit_scale.exp() * (img * t).sum(-1)
            grad, = torch.autograd.grad(logits.sum(), probs, retain_graph=j < len(text_sets) - 1)
            # relevance = identity + gradient-weighted attention, averaged over heads; its CLS row, patches only
            cam = (grad[:, :, 0] * probs[:, :, 0]).clamp_min(0).mean(1)  # [B, n]
            g = int(round((cam.shape[-1] - 1) ** 0.5))
            maps.append(F.interpolate(cam[:, 1:].reshape(-1, 1, g, g), size=(size, size), mode="bilinear",
                                      align_corners=False).detach())
    return torch.stack(maps)


def _normalize(r: Tensor, per_image: bool) -> Tensor:
    if per_image:
        lo = r.amin(dim=(1, 2, 3), keepdim=True)
        hi = r.amax(dim=(1, 2, 3), keepdim=True)
    else:
        lo, hi = r.min(), r.max()
    return (r - lo) / (hi - lo + 1e-6)
