"""High-level rendering API shared by the CLI and the app: latents from seeds, views, turntables."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .cameras import turntable
from .errors import InputError
from .generator import Generator, Preset
from .media import depth_to_uint8, mask_overlay, over_background, side_by_side, to_uint8


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
    image: np.ndarray  # HxWx3 uint8, empty rays shown as G.display_background (raw["image"]: the render itself)
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
    return _view(G, out)


def _view(G: Generator, out: dict[str, Tensor]) -> View:
    image = over_background(out["image"], out["image_opacity"], G.display_background)
    return View(to_uint8(image), depth_to_uint8(out["image_depth"], out["image_opacity"]), out)


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
            views.append(_view(G, out))
            if progress:
                progress(k + 1, frames)
    return views


@dataclass
class EditView:
    """One camera of a local edit, as uint8 HxWx3 images: source, edited, and the source with the volume-rendered
    3D attention mask as a heat overlay; ``mask`` is that mask as float32 [R, R] in [0, 1]."""

    source: np.ndarray
    edited: np.ndarray
    overlay: np.ndarray
    mask: np.ndarray

    def strip(self) -> np.ndarray:
        """source | edited | mask overlay, side by side."""
        return side_by_side(self.source, self.edited, self.overlay)


def _edit_view(editor, ws: Tensor, c: Tensor, preset, seed: int, strengths) -> EditView:
    with torch.no_grad():
        r = editor.render(ws, c.to(ws.device), preset=preset, strengths=strengths,
                          generator=torch.Generator(device=ws.device).manual_seed(seed))
    bg = editor.G.display_background
    src = to_uint8(over_background(r.source, r.opacity, bg))
    return EditView(src, to_uint8(over_background(r.edited, r.edited_opacity, bg)), mask_overlay(src, r.mask[0, 0]),
                    r.mask[0, 0].float().cpu().numpy())


def render_edit(editor, ws: Tensor, yaw: float = 0.0, pitch: float = 0.0, preset: str | Preset = "preview",
                strengths: list[float] | None = None, seed: int = 0) -> EditView:
    """Source, edited and mask views of ``ws`` [1, num_ws, w_dim] under a :class:`~lenerf.editing.LocalEditor`."""
    G = editor.G
    return _edit_view(editor, ws, G.camera(yaw, pitch), preset, seed, strengths)


def render_edit_turntable(editor, ws: Tensor, frames: int = 48, preset: str | Preset = "preview",
                          strengths: list[float] | None = None,
                          progress: Callable[[int, int], None] | None = None, seed: int = 0,
                          guard: Callable[[], AbstractContextManager] | None = None) -> list[EditView]:
    """:func:`render_edit` along the turntable path of :func:`render_turntable` (frame k uses seed + k); each
    frame is rendered inside ``guard()`` when given (the app shares one device between users this way)."""
    if not 1 <= frames <= 1000:
        raise InputError(f"frames must be between 1 and 1000, got {frames}")
    G = editor.G
    cams = turntable(frames, radius=G.camera_radius, lookat=G.camera_pivot, fov_deg=G.fov_deg)
    views = []
    for k in range(frames):
        with guard() if guard is not None else nullcontext():
            views.append(_edit_view(editor, ws, cams[k:k + 1], preset, seed + k, strengths))
        if progress:
            progress(k + 1, frames)
    return views
