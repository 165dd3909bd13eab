"""CLIP guidance (method.md §7.1) and the attention-field objectives (§7.3); same code for any open_clip model."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import ClipModel

CLIP_LOSSES = ("dir_nce", "dir_diff", "default", "zero_shot")


def augment(x01: Tensor, size: int, gen: torch.Generator | None = None) -> Tensor:
    """One random draw per batch: RandomResizedCrop(size, scale 0.8-0.95) then RandomPerspective(0.5, p 0.8,
    fill 1), differentiable. x01 [N, 3, H, W] in [0, 1]."""
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as TF
    h, w = x01.shape[-2:]
    state = torch.get_rng_state()
    if gen is not None:
        torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)))
    try:
        top, left, ch, cw = v2.RandomResizedCrop.get_params(x01, scale=[0.8, 0.95], ratio=[3 / 4, 4 / 3]) \
            if hasattr(v2.RandomResizedCrop, "get_params") else _crop_params(h, w)
        x = TF.resized_crop(x01, top, left, ch, cw, [size, size], antialias=False)
        if torch.rand(1).item() < 0.8:
            half = size // 2
            d = int(0.5 * half)
            tl = [int(torch.randint(0, d + 1, (1,))), int(torch.randint(0, d + 1, (1,)))]
            tr = [size - 1 - int(torch.randint(0, d + 1, (1,))), int(torch.randint(0, d + 1, (1,)))]
            br = [size - 1 - int(torch.randint(0, d + 1, (1,))), size - 1 - int(torch.randint(0, d + 1, (1,)))]
            bl = [int(torch.randint(0, d + 1, (1,))), size - 1 - int(torch.randint(0, d + 1, (1,)))]
            start = [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]]
            # fill=1 done by hand: torchvision's fill path works in place and breaks autograd
            end = [tl, tr, br, bl]
            valid = TF.perspective(torch.ones_like(x[:, :1]), start, end)
            x = TF.perspective(x, start, end) + (1 - valid)
    finally:
        if gen is not None:
            torch.set_rng_state(state)
    return x


def _crop_params(h: int, w: int):  # pragma: no cover - fallback for torchvision without get_params
    s = 0.875
    ch, cw = int(h * s ** 0.5), int(w * s ** 0.5)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def normalize(clip: ClipModel, x01: Tensor) -> Tensor:
    return (x01 - clip.mean.view(1, 3, 1, 1)) / clip.std.view(1, 3, 1, 1)


def clip_loss(clip: ClipModel, edited: Tensor, source: Tensor, edit_prompts: list[str], source_prompts: list[str],
              kind: str = "dir_nce", augmentations: int = 4, gen: torch.Generator | None = None,
              source_select: str = "mean") -> Tensor:
    """CLIP loss of an edited image against its source, images [N, 3, H, W] in [-1, 1].

    kind: ``dir_nce`` (the paper's directional contrastive loss), ``dir_diff`` (plain directional), ``default``
    (1 - cos to the edit text) or ``zero_shot`` (not in the paper: the cross-entropy of CLIP's zero-shot
    classification of the edited image among the edit text and the source prompts, L2-normalised embeddings and
    the model's logit scale; it asks for an image CLIP reads as the target *rather than* any source value, where
    the directional losses reward any move along the text direction, also past the target into colours between
    the values CLIP was taught). Averaged over the plain pass and ``augmentations`` augmented passes of the edited
    image; the source is never augmented. Raw (unnormalised) embeddings as in the official code.
    source_select: the text direction starts from the mean of the source prompts (``"mean"``, official) or, per
    image, from the source prompt CLIP finds closest to that source image (``"best"``: "green eyes" -> "blue
    eyes" for a green-eyed head, "brown eyes" -> "blue eyes" for a brown-eyed one).
    """
    if source_select not in ("mean", "best"):
        raise ValueError(f"source_select must be 'mean' or 'best', got {source_select!r}")
    if kind not in CLIP_LOSSES:
        raise ValueError(f"unknown CLIP loss {kind!r}")
    m = clip.model
    with torch.no_grad():
        t = clip.text_features(edit_prompts).mean(0, keepdim=True)
        u = clip.text_features(source_prompts)  # [K, D]
        if kind.startswith("dir_"):  # only the directional losses look at the source image
            e_s = m.encode_image(clip.preprocess(source))
            if source_select == "best":  # [N, D]: each image's own source prompt
                u_dir = u[(F.normalize(e_s, dim=-1) @ F.normalize(u, dim=-1).T).argmax(1)]
            else:
                u_dir = u.mean(0, keepdim=True)
        elif kind == "zero_shot":  # the edit text (class 0) and the source prompts as classes
            texts = F.normalize(torch.cat([t, u]), dim=-1)
    x01 = (edited + 1) / 2
    total = 0.0
    for a in range(augmentations + 1):
        if a == 0:
            e = m.encode_image(clip.preprocess(edited))
        else:
            e = m.encode_image(normalize(clip, augment(x01, clip.image_size, gen)))
        if kind == "default":
            loss = (1 - F.cosine_similarity(e, t.expand_as(e), dim=-1)).mean()
        elif kind == "zero_shot":  # class 0 = the edit text, classes 1..K = the source prompts
            logits = m.logit_scale.exp() * F.normalize(e, dim=-1) @ texts.T
            loss = F.cross_entropy(logits, torch.zeros(e.shape[0], dtype=torch.long, device=e.device))
        else:
            q = e - e_s
            p1 = (t - u_dir).expand_as(q)
            p2 = t - e_s
            if kind == "dir_diff":
                loss = 2 - F.cosine_similarity(q, p1, dim=-1).mean() - F.cosine_similarity(q, p2, dim=-1).mean()
            elif kind == "dir_nce":
                negs = u.unsqueeze(0) - e_s.unsqueeze(1)  # [N, K, D]
                neg_logits = torch.einsum("nd,nkd->nk", q, negs)
                target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
                loss = (F.cross_entropy(torch.cat([(q * p1).sum(-1, keepdim=True), neg_logits], 1), target)
                        + F.cross_entropy(torch.cat([(q * p2).sum(-1, keepdim=True), neg_logits], 1), target))
        total = total + loss
    return total / (augmentations + 1)


def mask_losses(m2d: Tensor, target: Tensor, topk: int, botk: int, gen: torch.Generator | None = None,
                samples: int = 5000, balanced: bool = False, pos_weight_max: float | None = None) -> dict[str, Tensor]:
    """The attention-field terms on a rendered mask m2d [N, 1, R, R] in [-1, 1] and a pseudo-label target (same
    shape, 2R - 1): mask MSE, binarisation, top-k/bottom-k min-max (k given per 5000 sampled pixels, scaled to the
    number of pixels actually sampled) and the squared 2D total variation. With ``balanced`` the MSE weighs each
    positive pixel (target > 0) as N-/N+ negatives, at most ``pos_weight_max`` (the two classes' means averaged
    when it does not cap)."""
    n = m2d.shape[0]
    flat = m2d.reshape(n, -1)
    k = min(samples, flat.shape[1])
    idx = torch.randperm(flat.shape[1], generator=gen)[:k].to(flat.device)
    vals = flat[:, idx]
    kt = max(1, round(topk * k / samples))
    kb = max(1, round(botk * k / samples))
    top = vals.topk(kt, dim=1).values
    bot = (-vals).topk(kb, dim=1).values.neg()
    mm = (kt * (1.2 - top).pow(2).mean() + kb * (1 + bot).pow(2).mean()) / (kt + kb)
    tv = (m2d[..., 1:, :] - m2d[..., :-1, :]).pow(2).mean() + (m2d[..., :, 1:] - m2d[..., :, :-1]).pow(2).mean()
    if balanced:  # small parts: positives (target > 0) and negatives weigh the same, else the mask collapses to 0
        pos = (target > 0).float()
        se = (m2d - target).pow(2)
        n_pos, n_neg = pos.sum().clamp_min(1), (1 - pos).sum().clamp_min(1)
        if pos_weight_max is None:
            mse = 0.5 * ((se * pos).sum() / n_pos + (se * (1 - pos)).sum() / n_neg)
        else:  # the same with each positive weighing w = min(N- / N+, cap) negatives
            w = torch.clamp(n_neg / n_pos, max=pos_weight_max)
            mse = (w * (se * pos).sum() + (se * (1 - pos)).sum()) / (w * n_pos + n_neg)
    else:
        mse = F.mse_loss(m2d, target)
    return {"mask": mse, "bin": (1 - m2d.pow(2)).mean(), "minmax": mm, "tv": tv}
