"""Fields: what a generator produces for a latent and what the renderer queries.

A *field* is bound to a batch of N latents and answers two questions at arbitrary 3D points:

* ``features(points)``: points [N, P, 3] (world space) -> per-point features [N, P, F];
* ``decode(features)``: features [N, P, F] -> ``(colors [N, P, C], sigma [N, P, 1])``, where ``colors`` are
  the C composited channels (the first 3 are RGB in [0, 1]) and ``sigma`` is the *raw* density logit
  (the ray marcher applies ``softplus(sigma - 1)``).

Splitting the two lets the LENeRF editor blend the features of two fields through a 3D mask before a single
decoder runs (method.md §3), without knowing which generator made them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class Field:
    """Base class. Subclasses implement :meth:`features` and :meth:`decode`."""

    #: number of feature channels returned by :meth:`features`
    feature_dim: int
    #: number of colour/feature channels returned by :meth:`decode` (first 3 = RGB)
    color_dim: int

    def features(self, points: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def descriptor(self, features: Tensor) -> Tensor:
        """Per-point description [N, P, D] that an attention field reads (default: the features)."""
        return features

    def __call__(self, points: Tensor) -> tuple[Tensor, Tensor]:
        return self.decode(self.features(points))


class BlendedField(Field):
    """``(1 - m) * source + m * target`` in feature space, decoded by the source's decoder.

    ``mask_fn(points, source_features, target_features) -> m [N, P, 1]`` in [0, 1]. Both fields must share the
    feature space (same generator). With ``texture_only`` the density comes from the unblended source.
    """

    def __init__(self, source: Field, target: Field, mask_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
                 texture_only: bool = False):
        self.source, self.target, self.mask_fn = source, target, mask_fn
        self.texture_only = texture_only
        self.feature_dim, self.color_dim = source.feature_dim, source.color_dim

    def features(self, points: Tensor) -> Tensor:
        fs, ft = self.source.features(points), self.target.features(points)
        m = self.mask_fn(points, fs, ft)
        return torch.lerp(fs, ft, m.to(fs.dtype))

    def __call__(self, points: Tensor) -> tuple[Tensor, Tensor]:
        fs, ft = self.source.features(points), self.target.features(points)
        m = self.mask_fn(points, fs, ft)
        colors, sigma = self.source.decode(torch.lerp(fs, ft, m.to(fs.dtype)))
        if self.texture_only:
            sigma = self.source.decode(fs)[1]
        return colors, sigma
