"""Volume renderer: stratified + importance sampling and compositing of any :class:`~lenerf.fields.Field`.

Reproduces EG3D's ImportanceRenderer (eg3d.md §8) including its random-number protocol: per image batch it draws
``rand(N, M, D, 1)`` (stratified jitter) and then ``rand(N*M, Di)`` (importance uniforms) and nothing else, so on
CPU the official outputs are matched for the same seed. Rays are processed in chunks so that memory stays
bounded at any resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..fields import Field
from .marcher import march
from .rays import ray_box_limits
from .sampling import importance_depths, stratified_depths


@dataclass(frozen=True)
class RenderSettings:
    """How rays are sampled. ``ray_start``/``ray_end`` are distances along unit rays, or both ``'auto'`` to use
    the entry/exit of the cube of side ``box_warp``."""

    ray_start: float | str = 2.25
    ray_end: float | str = 3.3
    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    white_back: bool = False
    disparity_space_sampling: bool = False
    box_warp: float = 1.0

    @property
    def samples_per_ray(self) -> int:
        return self.depth_resolution + self.depth_resolution_importance

    def replace(self, **kw) -> "RenderSettings":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_colors(self, composite: Tensor, weights_sum: Tensor) -> Tensor:
        """A march's composite [..., C] (in the samples' range [0, 1]) and opacity [..., 1] -> colours in [-1, 1],
        on a white background when ``white_back``."""
        return ((composite + 1 - weights_sum) if self.white_back else composite) * 2 - 1


@dataclass
class RenderOutput:
    """colors [N, M, C] in [-1, 1] (first 3 = RGB), depth [N, M, 1] (distance along the ray), weights_sum
    [N, M, 1] (opacity in [0, 1]). With ``return_samples``: ``sample_depths`` [N, M, S, 1] sorted and
    ``sample_weights`` [N, M, S-1, 1] (interval weights of the final march)."""

    colors: Tensor
    depth: Tensor
    weights_sum: Tensor
    sample_depths: Tensor | None = None
    sample_weights: Tensor | None = None
    sample_features: Tensor | None = None


def eval_samples(field: Field, origins: Tensor, directions: Tensor, depths: Tensor, capture: bool = False):
    """The field at sample depths [N, M, S, 1] along rays [N, M, 3] -> (colours [N, M, S, C], density logits
    [N, M, S, 1], the features [N, M, S, F] when ``capture``, else None)."""
    n, m, s, _ = depths.shape
    points = (origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)).reshape(n, m * s, 3)
    if capture:
        f = field.features(points)
        colors, sigma = field.decode(f)
        return colors.reshape(n, m, s, -1), sigma.reshape(n, m, s, 1), f.reshape(n, m, s, -1)
    colors, sigma = field(points)
    return colors.reshape(n, m, s, -1), sigma.reshape(n, m, s, 1), None


def merge_samples(z: Tensor, z_more: Tensor, *pairs: tuple[Tensor | None, Tensor | None]) -> tuple:
    """The sorted union of two sets of sample depths [N, M, S, 1] and [N, M, S', 1], and for each (a, b) of
    ``pairs`` (per-sample tensors [N, M, S, C] and [N, M, S', C]; None stays None) the two joined in that order."""
    z, order = torch.sort(torch.cat([z, z_more], -2), dim=-2)
    return (z,) + tuple(None if a is None else torch.gather(torch.cat([a, b], -2), -2,
                                                           order.expand(-1, -1, -1, a.shape[-1])) for a, b in pairs)


def render(field: Field, origins: Tensor, directions: Tensor, settings: RenderSettings, *,
           depths: Tensor | None = None, generator: torch.Generator | None = None,
           chunk_points: int = 1 << 18, return_samples: bool = False, capture_features: bool = False) -> RenderOutput:
    """Render rays through a field.

    Args:
        field: any :class:`Field` bound to N latents.
        origins, directions: [N, M, 3] (unit directions), e.g. from :func:`~lenerf.rendering.rays.sample_rays`.
        settings: sampling settings.
        depths: optional pre-computed sorted sample depths [N, M, S, 1]; the field is evaluated there and no
            new samples are drawn (used to render a second field at another render's sample points).
        generator: RNG for the jitter/importance draws (default: the global generator of the rays' device).
        chunk_points: upper bound on points evaluated at once.
        return_samples: also return the sample depths and weights.
        capture_features: also return the field features at the (sorted) samples [N, M, S, F].
    """
    n, m, _ = origins.shape
    dev, dt = origins.device, origins.dtype
    d, di = settings.depth_resolution, settings.depth_resolution_importance
    start, end = settings.ray_start, settings.ray_end
    jitter = u = None
    if depths is None:
        if start == "auto" or end == "auto":
            start, end = ray_box_limits(origins, directions, settings.box_warp)
            valid = end > start
            if bool(valid.any()):
                start = torch.where(valid, start, start[valid].min())
                end = torch.where(valid, end, start[valid].max())  # sic: max valid *start* (eg3d.md §8)
        if isinstance(start, Tensor):  # the official per-ray linspace is a permuted [D, N, M, 1] tensor and
            # rand_like keeps its strides: the jitter is drawn in [D, N, M] memory order
            jitter = torch.rand(d, n, m, 1, device=dev, dtype=dt, generator=generator).permute(1, 2, 0, 3)
        else:
            jitter = torch.rand(n, m, d, 1, device=dev, dtype=dt, generator=generator)
        if di > 0:
            u = torch.rand(n * m, di, device=dev, dtype=dt, generator=generator).reshape(n, m, di)
    s_total = depths.shape[2] if depths is not None else d + di
    rays_per_chunk = max(1, chunk_points // (n * s_total))

    outs: list[tuple[Tensor, ...]] = []
    dmin = dmax = None
    for a in range(0, m, rays_per_chunk):
        b = min(m, a + rays_per_chunk)
        o, r = origins[:, a:b], directions[:, a:b]
        if depths is not None:
            z = depths[:, a:b]
            colors, sigma, feats = eval_samples(field, o, r, z, capture_features)
        else:
            st = start[:, a:b] if isinstance(start, Tensor) else start
            en = end[:, a:b] if isinstance(end, Tensor) else end
            z = stratified_depths(st, en, d, jitter[:, a:b], settings.disparity_space_sampling)
            colors, sigma, feats = eval_samples(field, o, r, z, capture_features)
            if di > 0:
                _, _, w, _ = march(colors, sigma, z)
                zf = importance_depths(z, w, u[:, a:b].reshape(-1, di))
                cf, sf, ff = eval_samples(field, o, r, zf, capture_features)
                z, colors, sigma, feats = merge_samples(z, zf, (colors, cf), (sigma, sf), (feats, ff))
        comp, depth, w, _ = march(colors, sigma, z)
        lo, hi = z.min().detach(), z.max().detach()
        dmin = lo if dmin is None else torch.minimum(dmin, lo)
        dmax = hi if dmax is None else torch.maximum(dmax, hi)
        wsum = w.sum(-2)
        outs.append((comp, depth, wsum, z, w, feats) if return_samples or capture_features else (comp, depth, wsum))

    comp, depth, wsum = (torch.cat([o[i] for o in outs], 1) for i in range(3))
    # empty rays -> +inf, then clamp to the global range of all sample depths (eg3d.md §14.4)
    depth = torch.nan_to_num(depth, nan=float("inf")).clamp(dmin, dmax)
    out = RenderOutput(settings.to_colors(comp, wsum), depth, wsum)
    if return_samples or capture_features:
        out.sample_depths = torch.cat([o[3] for o in outs], 1)
        out.sample_weights = torch.cat([o[4] for o in outs], 1)
    if capture_features:
        out.sample_features = torch.cat([o[5] for o in outs], 1)
    return out
