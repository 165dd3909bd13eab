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


def encode_with_last_attention(visual, pixels: Tensor, leaf: bool = True) -> tuple[Tensor, Tensor]:
    """Image features [B, D] of an open_clip ``VisionTransformer`` and the attention probabilities of its last
    block [B, heads, n, n]. ``leaf=True`` detaches the probabilities into a leaf (relevance maps differentiate
    w.r.t. them); ``leaf=False`` keeps them in the graph (training regularisers)."""
    v = visual
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
    q, k, val = (t.reshape(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, val))
    probs = torch.softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5, dim=-1)
    if leaf:
        probs = probs.detach().requires_grad_(True)  # [B, heads, n, n], the leaf we differentiate w.r.t.
    out = (probs @ val).transpose(1, 2).reshape(b, n, d)
    x = x + last.ls_1(attn.out_proj(out))
    x = x + last.ls_2(last.mlp(last.ln_2(x)))
    pooled, _ = v._pool(x)
    if v.proj is not None:
        pooled = pooled @ v.proj
    return pooled, probs


def relevance_maps(clip: ClipModel, images: Tensor, prompts: list[str] | list[list[str]], size: int | None = None,
                   per_image: bool = True, negative: list[str] | None = None, select: str = "mean",
                   templates: list[str] | None = None) -> Tensor:
    """Relevance of a prompt in each image, in [0, 1]: [N, 1, size, size] (no gradient).

    Args:
        images: [N, 3, H, W] in [-1, 1].
        prompts: one list of prompts for all images (their maps are averaged), or one list per image.
        size: output resolution (default: the image width).
        per_image: min-max normalise each map on its own (recommended) instead of over the batch (official).
        negative: prompts whose averaged map is subtracted before normalising again.
        select: ``"mean"`` averages the maps of the prompts (official); ``"best"`` uses, per image, only the prompt
            CLIP finds most similar to it (e.g. the eye colour CLIP sees among "brown/blue/green eyes").
        templates: phrasings of each (selected) prompt whose maps are averaged, e.g. ``["{}", "a face with {}"]``
            (method.md §6.3: several prompts are averaged).
    """
    size = size or images.shape[-1]
    n = images.shape[0]
    per = prompts if prompts and isinstance(prompts[0], (list, tuple)) else [list(prompts)] * n
    if select == "best" and max(len(p) for p in per) > 1:
        per = _best_prompts(clip, images, per)
    elif select != "mean":
        raise ValueError(f"select must be 'mean' or 'best', got {select!r}")
    if templates:
        per = [[t.format(p) for p in ps for t in templates] for ps in per]

    def one(prompt_sets) -> Tensor:
        k = max(len(p) for p in prompt_sets)
        maps = []
        for j in range(k):
            texts = [p[j % len(p)] for p in prompt_sets]
            maps.append(_raw_map(clip, images, texts, size))
        return torch.stack(maps).mean(0)

    r = _normalize(one(per), per_image)
    if negative:
        r = _normalize(r - _normalize(one([list(negative)] * n), per_image), per_image)
    return r


@torch.no_grad()
def _best_prompts(clip: ClipModel, images: Tensor, per: list[list[str]]) -> list[list[str]]:
    img = F.normalize(clip.encode_image(images.detach()), dim=-1)
    out = []
    for i, prompts in enumerate(per):
        txt = F.normalize(clip.encode_text(list(prompts)), dim=-1)
        out.append([prompts[int((txt @ img[i]).argmax())]])
    return out


def _raw_map(clip: ClipModel, images: Tensor, texts: list[str], size: int) -> Tensor:
    with torch.enable_grad():
        pixels = clip.preprocess(images.detach())
        img, probs = encode_with_last_attention(clip.model.visual, pixels)
        with torch.no_grad():
            txt = F.normalize(clip.model.encode_text(clip.tokenize(texts)), dim=-1)
        logits = clip.model.logit_scale.exp() * (F.normalize(img, dim=-1) * txt).sum(-1)
        grad, = torch.autograd.grad(logits.sum(), probs)
    cam = (grad * probs).clamp_min(0).mean(1)  # [B, n, n]
    rel = torch.eye(cam.shape[-1], device=cam.device) + cam
    row = rel[:, 0, 1:]
    g = int(round(row.shape[-1] ** 0.5))
    return F.interpolate(row.reshape(-1, 1, g, g), size=(size, size), mode="bilinear", align_corners=False).detach()


def _normalize(r: Tensor, per_image: bool) -> Tensor:
    if per_image:
        lo = r.amin(dim=(1, 2, 3), keepdim=True)
        hi = r.amax(dim=(1, 2, 3), keepdim=True)
    else:
        lo, hi = r.min(), r.max()
    return (r - lo) / (hi - lo + 1e-6)
