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
