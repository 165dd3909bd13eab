"""Alpha compositing along rays (EG3D's mid-point ray marcher, eg3d.md §8)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def march(colors: Tensor, sigma: Tensor, depths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Composite samples that are sorted by depth along dim -2.

    Args:
        colors: [N, M, S, C] per-sample channels; sigma: [N, M, S, 1] raw density logits; depths: [N, M, S, 1].
    Returns:
        composite [N, M, C] (in the samples' range, not yet mapped to [-1, 1]), unclamped expected depth
        [N, M, 1] (NaN where the ray is empty), weights [N, M, S-1, 1] of the S-1 intervals and their
        mid-point depths [N, M, S-1, 1].
    """
    deltas = depths[..., 1:, :] - depths[..., :-1, :]
    colors_mid = (colors[..., :-1, :] + colors[..., 1:, :]) * 0.5
    sigma_mid = (sigma[..., :-1, :] + sigma[..., 1:, :]) * 0.5
    depths_mid = (depths[..., :-1, :] + depths[..., 1:, :]) * 0.5
    alpha = 1 - torch.exp(-F.softplus(sigma_mid - 1) * deltas)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1, :]), 1 - alpha + 1e-10], -2), -2)
    weights = alpha * trans[..., :-1, :]
    composite = (weights * colors_mid).sum(-2)
    depth = (weights * depths_mid).sum(-2) / weights.sum(-2)
    return composite, depth, weights, depths_mid


def composite_mask(mask: Tensor, weights: Tensor) -> Tensor:
    """Volume-render a per-sample scalar (e.g. a 3D attention mask in [0, 1]) with given weights.

    mask [N, M, S, 1] at the samples, weights [N, M, S-1, 1] from :func:`march` -> [N, M, 1].
    """
    return (weights * (mask[..., :-1, :] + mask[..., 1:, :]) * 0.5).sum(-2)


def gather_samples(t: Tensor | None, idx: Tensor) -> Tensor | None:
    """Per-sample values t [N, P, C] at sample indices idx [N, K] (e.g. :func:`weighted_samples`) -> [N, K, C];
    None stays None."""
    return None if t is None else torch.gather(t, 1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def weighted_samples(weights: Tensor, eps: float = 1e-4, pad_neighbours: bool = True) -> Tensor:
    """Indices [N, K] of the samples whose value in ``weights`` [N, M, S', 1] exceeds ``eps``; with
    ``pad_neighbours`` (interval weights [N, M, S-1, 1]) the samples at both ends of such an interval. K is the
    largest count over the batch; images with fewer repeat one of their indices, which is harmless for gathers
    and scatters of the same values."""
    w = weights[..., 0] > eps
    if pad_neighbours:
        used = torch.zeros(w.shape[0], w.shape[1], w.shape[2] + 1, dtype=torch.bool, device=w.device)
        used[..., :-1] |= w
        used[..., 1:] |= w
    else:
        used = w
    used = used.reshape(used.shape[0], -1)
    k = max(1, int(used.sum(1).max()))
    order = torch.argsort(used.to(torch.int8), dim=1, descending=True, stable=True)[:, :k]
    first = order[:, :1].expand_as(order)
    return torch.where(torch.gather(used, 1, order), order, first)
