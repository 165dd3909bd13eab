"""High-level rendering API shared by the CLI and the app: latents from seeds, views, turntables."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .cameras import turntable
from .errors import InputError
from .generator import Generator, Preset
from .media import depth_to_uint8, to_uint8


def latent_from_seed(G: Generator, seed: int, truncation_psi: float | None = None,
                     truncation_cutoff: int | None = None, device=None) -> Tensor:
    """ws [1, num_ws, w_dim] for an integer seed, conditioned on the frontal camera (as the official
    gen_samples.py does). z is drawn with ``numpy.random.RandomState(seed)`` like the official scripts."""
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 32:
        raise InputError(f"seed must be an integer in [0, 2^32), got {seed!r}")
    truncation_psi = G.default_truncation if truncation_psi is None else truncation_psi
    if not 0.0 <= float(truncation_psi) <= 1.5:
        raise InputError(f"truncation psi must be in [0, 1.5], got {truncation_psi}")
    device = device or next(G.parameters(), torch.empty(0)).device
    z = torch.from_numpy(np.random.RandomState(int(seed)).randn(1, G.z_dim)).float().to(device)
    with torch.no_grad():
        return G.mapping(z, G.camera(0.0, 0.0).to(device), truncation_psi=truncation_psi,
                         truncation_cutoff=truncation_cutoff)


@dataclass
class View:
    image: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # RxRx3 uint8 visualisation
    raw: dict[str, Tensor]


def render_view(G: Generator, ws: Tensor, yaw: float = 0.0, pitch: float = 0.0, preset: str | Preset = "preview",
                field=None, seed: int = 0) -> View:
    """Render one view; pass a cached ``field = G.field(ws)`` to skip the latent -> field step."""
    dev = ws.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        field = field if field is not None else G.field(ws)
        out = G.render_field(field, ws, G.camera(yaw, pitch).to(dev), preset=preset, generator=gen)
    return View(to_uint8(out["image"]), depth_to_uint8(out["image_depth"], out["image_opacity"]), out)


def render_turntable(G: Generator, ws: Tensor, frames: int = 48, preset: str | Preset = "preview",
                     progress: Callable[[int, int], None] | None = None, seed: int = 0) -> list[View]:
    """Views along the official video path (yaw 0.35 sin, pitch 0.25 cos); the field is computed once."""
    if not 1 <= frames <= 1000:
        raise InputError(f"frames must be between 1 and 1000, got {frames}")
    cams = turntable(frames, radius=G.camera_radius, lookat=G.camera_pivot, fov_deg=G.fov_deg)
    views = []
    with torch.no_grad():
        field = G.field(ws)
        for k in range(frames):
            gen = torch.Generator(device=ws.device).manual_seed(seed + k)
            out = G.render_field(field, ws, cams[k:k + 1].to(ws.device), preset=preset, generator=gen)
            views.append(View(to_uint8(out["image"]), depth_to_uint8(out["image_depth"], out["image_opacity"]), out))
            if progress:
                progress(k + 1, frames)
    return views
