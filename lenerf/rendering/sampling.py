"""Where along each ray the field is evaluated (eg3d.md §8).

All functions take pre-drawn uniforms so that a renderer can draw them once per image (reproducing the
official RNG protocol exactly on CPU) and still process the rays in chunks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def stratified_depths(start: Tensor | float, end: Tensor | float, num: int, jitter: Tensor,
                      disparity: bool = False) -> Tensor:
    """Evenly spaced depths plus a jitter of up to one spacing (the last sample can pass ``end``).

    Args:
        start, end: floats, or per-ray tensors [N, M, 1].
        num: D samples per ray.
        jitter: uniforms in [0, 1), [N, M, D, 1].
    Returns:
        depths [N, M, D, 1].
    """
    steps = torch.linspace(0.0, 1.0, num, device=jitter.device, dtype=jitter.dtype).reshape(1, 1, num, 1)
    if disparity:  # uniform in inverse depth
        s = steps + jitter / (num - 1)
        start_t = torch.as_tensor(start, dtype=jitter.dtype, device=jitter.device)
        end_t = torch.as_tensor(end, dtype=jitter.dtype, device=jitter.device)
        if start_t.ndim:
            start_t, end_t = start_t.unsqueeze(-2), end_t.unsqueeze(-2)
        return 1.0 / (1.0 / start_t * (1 - s) + 1.0 / end_t * s)
    if isinstance(start, Tensor):
        start, end = start.unsqueeze(-2), end.unsqueeze(-2)  # [N, M, 1, 1]
        delta = (end - start) / (num - 1)
        return start + steps * (end - start) + jitter * delta
    delta = (end - start) / (num - 1)
    base = torch.linspace(start, end, num, device=jitter.device, dtype=jitter.dtype).reshape(1, 1, num, 1)
    return base + jitter * delta


def importance_depths(depths: Tensor, weights: Tensor, u: Tensor, eps: float = 1e-5) -> Tensor:
    """Inverse-CDF samples from the smoothed coarse weights (no gradient).

    Args:
        depths: sorted coarse depths [N, M, D, 1].
        weights: ray-marcher weights of the coarse pass [N, M, D-1, 1].
        u: uniforms [N*M, Di].
    Returns:
        importance depths [N, M, Di, 1], unsorted.
    """
    n, m, d, _ = depths.shape
    with torch.no_grad():
        z = depths.reshape(n * m, d)
        w = weights.reshape(n * m, 1, d - 1)
        w = F.max_pool1d(w, 2, 1, padding=1)  # D values (ends copied: padding is -inf)
        w = F.avg_pool1d(w, 2, 1).reshape(n * m, d - 1) + 0.01
        bins = 0.5 * (z[:, :-1] + z[:, 1:])  # D-1 midpoints
        pdf = w[:, 1:-1] + eps  # D-3 values
        pdf = pdf / pdf.sum(-1, keepdim=True)
        cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # D-2 knots
        u = u.contiguous()
        idx = torch.searchsorted(cdf, u, right=True)
        below = (idx - 1).clamp_min(0)
        above = idx.clamp_max(cdf.shape[-1] - 1)
        cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
        bin_lo, bin_hi = bins.gather(1, below), bins.gather(1, above)
        denom = cdf_hi - cdf_lo
        denom = torch.where(denom < eps, torch.ones_like(denom), denom)
        samples = bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)
    return samples.reshape(n, m, -1, 1)
