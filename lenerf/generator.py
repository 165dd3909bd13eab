"""The generator interface every 3D generator implements (EG3D, the synthetic heads world).

    z [N, z_dim], c [N, c_dim] --mapping--> ws [N, num_ws, w_dim] --field--> Field
    Field + camera --renderer--> feature image [N, C, R, R] --superresolve (optional)--> image

Subclasses implement :meth:`mapping`, :meth:`field` and :meth:`superresolve`; rendering, the official-style
``forward``/``synthesis``/``sample_mixed`` calls and the quality presets live here, once.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import InputError
from .fields import Field
from .rendering import RenderSettings, render, sample_rays


@dataclass(frozen=True)
class Preset:
    """Quality/speed trade-off. ``None`` = the checkpoint's own value."""

    name: str
    neural_rendering_resolution: int | None = None
    depth_resolution: int | None = None
    depth_resolution_importance: int | None = None
    superresolution: bool = True
    #: output size when the superresolution stage is skipped (bilinear upsampling of the raw render)
    output_resolution: int | None = None


PRESETS = {
    # exactly what the checkpoint was trained with (what the golden tests check)
    "full": Preset("full"),
    # CPU interactivity: 64^2 rays, 24 + 24 samples, bilinear upsampling instead of the superresolution CNN
    "preview": Preset("preview", neural_rendering_resolution=64, depth_resolution=24,
                      depth_resolution_importance=24, superresolution=False, output_resolution=256),
}


def get_preset(preset: str | Preset | None) -> Preset:
    if preset is None:
        return PRESETS["full"]
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[preset]


def check_camera(c: Tensor, c_dim: int = 25, name: str = "c") -> Tensor:
    if not isinstance(c, Tensor):
        raise InputError(f"camera label {name} must be a tensor of shape [N, {c_dim}], got {type(c).__name__}")
    if c.ndim != 2 or c.shape[1] != c_dim:
        raise InputError(f"camera label {name} must have shape [N, {c_dim}] (16 cam2world values + 9 normalised "
                         f"intrinsics), got {list(c.shape)}")
    if not torch.isfinite(c).all():
        raise InputError(f"camera label {name} contains NaN or infinite values")
    return c


class Generator(nn.Module):
    """Base class of 3D-aware generators (see the module docstring for the data flow)."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    #: default rendering resolution R of the raw image (the official module attribute, here never mutated)
    neural_rendering_resolution: int
    render_settings: RenderSettings
    #: orbit radius and look-at point of the training cameras (EG3D FFHQ defaults)
    camera_radius: float = 2.7
    camera_pivot: tuple[float, float, float] = (0.0, 0.0, 0.2)
    #: field of view of the training cameras (degrees)
    fov_deg: float = 18.837
    #: truncation psi used when the user does not choose one
    default_truncation: float = 0.7
    #: RGB in [0, 1] that images made for people (the app, ``lenerf edit``/``render``) show where rays hit nothing
    #: (:func:`lenerf.media.over_background`); None leaves such pixels black, as EG3D renders them. Renders used
    #: for training and evaluation are never filled.
    display_background: tuple[float, float, float] | None = None

    # --- to implement -------------------------------------------------------------------------------------
    def mapping(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> Tensor:
        """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim]."""
        raise NotImplementedError

    def field(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> Field:
        """ws [N, num_ws, w_dim] -> a :class:`Field` bound to these N latents."""
        raise NotImplementedError

    def superresolve(self, rgb: Tensor, features: Tensor, ws: Tensor) -> Tensor | None:
        """rgb [N, 3, R, R], features [N, C, R, R] -> image [N, 3, img_res, img_res], or None (no SR stage)."""
        return None

    # --- provided -----------------------------------------------------------------------------------------
    def expand_prompt(self, prompt: str) -> list[str]:
        """Prompts whose relevance maps are averaged for a mask prompt (default: the prompt itself)."""
        return [prompt]

    def camera(self, yaw=0.0, pitch=0.0) -> Tensor:
        """Labels [N, c_dim] for yaw/pitch offsets (radians) from frontal, on this generator's camera orbit."""
        from .cameras import camera
        return camera(yaw, pitch, radius=self.camera_radius, lookat=self.camera_pivot, fov_deg=self.fov_deg)

    def check_ws(self, ws: Tensor) -> Tensor:
        if not isinstance(ws, Tensor) or ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            shape = list(ws.shape) if isinstance(ws, Tensor) else type(ws).__name__
            raise InputError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {shape}")
        return ws

    def check_z(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.z_dim:
            shape = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise InputError(f"z must have shape [N, {self.z_dim}], got {shape}")
        return z

    def render_field(self, field: Field, ws: Tensor, c: Tensor, neural_rendering_resolution: int | None = None,
                     preset: str | Preset | None = None, generator: torch.Generator | None = None,
                     chunk_points: int = 1 << 18) -> dict[str, Tensor]:
        """Render a field from cameras c [N, c_dim] (see :meth:`synthesis` for the outputs)."""
        p = get_preset(preset)
        c = check_camera(c, self.c_dim)
        res = int(neural_rendering_resolution or p.neural_rendering_resolution or self.neural_rendering_resolution)
        settings = self.render_settings.replace(depth_resolution=p.depth_resolution,
                                                depth_resolution_importance=p.depth_resolution_importance)
        origins, dirs = sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:25].reshape(-1, 3, 3), res)
        out = render(field, origins, dirs, settings, generator=generator, chunk_points=chunk_points)
        n = c.shape[0]
        image, feat = self.images(out.colors, ws, p, res)
        depth = out.depth.permute(0, 2, 1).reshape(n, 1, res, res)
        return {"image": image, "image_raw": feat[:, :3], "image_depth": depth, "image_features": feat,
                "image_opacity": out.weights_sum.permute(0, 2, 1).reshape(n, 1, res, res)}

    def images(self, colors: Tensor, ws: Tensor, preset: str | Preset | None, resolution: int) -> tuple[Tensor, Tensor]:
        """Composited ray colours [N, R*R, C] in [-1, 1] -> (output image [N, 3, H, W], feature image
        [N, C, R, R]): the superresolution stage when the preset uses it and the generator has one, else the raw
        RGB resized (bilinearly) to the preset's output resolution."""
        p = get_preset(preset)
        feat = colors.permute(0, 2, 1).reshape(colors.shape[0], -1, resolution, resolution)
        rgb = feat[:, :3]
        image = self.superresolve(rgb, feat, ws) if p.superresolution else None
        if image is None:
            size = p.output_resolution or self.img_resolution
            image = rgb if size == resolution else F.interpolate(rgb, size=(size, size), mode="bilinear",
                                                                 align_corners=False, antialias=size < resolution)
        return image, feat

    def synthesis(self, ws: Tensor, c: Tensor, neural_rendering_resolution: int | None = None,
                  noise_mode: str = "const", preset: str | Preset | None = None,
                  generator: torch.Generator | None = None, chunk_points: int = 1 << 18) -> dict[str, Tensor]:
        """Render latents ws [N, num_ws, w_dim] from cameras c [N, c_dim].

        Returns ``image`` [N, 3, H, W] (nominally [-1, 1]), ``image_raw`` [N, 3, R, R] in [-1, 1],
        ``image_depth`` [N, 1, R, R] (distance along unit rays), ``image_features`` [N, C, R, R] and
        ``image_opacity`` [N, 1, R, R] in [0, 1]. ``neural_rendering_resolution`` only affects this call.
        """
        self.check_ws(ws)
        return self.render_field(self.field(ws, noise_mode, generator), ws, c, neural_rendering_resolution,
                                 preset, generator, chunk_points)

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                neural_rendering_resolution: int | None = None, noise_mode: str = "const",
                **kwargs) -> dict[str, Tensor]:
        """``G(z, c, ...)`` as in the official code: mapping on c, then synthesis from the same camera c."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, c, neural_rendering_resolution, noise_mode, **kwargs)

    def sample_mixed(self, coordinates: Tensor, directions: Tensor | None, ws: Tensor, noise_mode: str = "const",
                     **_unused) -> dict[str, Tensor]:
        """Evaluate the field at points [N, P, 3] -> ``{'rgb': [N, P, C], 'sigma': [N, P, 1]}`` (raw sigma).
        Directions are ignored (view-independent fields)."""
        self.check_ws(ws)
        if coordinates.ndim != 3 or coordinates.shape[-1] != 3 or coordinates.shape[0] != ws.shape[0]:
            raise InputError(f"coordinates must have shape [N={ws.shape[0]}, P, 3], got {list(coordinates.shape)}")
        colors, sigma = self.field(ws, noise_mode)(coordinates)
        return {"rgb": colors, "sigma": sigma}

    def sample(self, coordinates: Tensor, directions: Tensor | None, z: Tensor, c: Tensor,
               truncation_psi: float = 1.0, truncation_cutoff: int | None = None, noise_mode: str = "const",
               **_unused) -> dict[str, Tensor]:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.sample_mixed(coordinates, directions, ws, noise_mode)
