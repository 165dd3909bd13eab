"""EG3D (Chan et al., CVPR'22) on the :class:`~lenerf.generator.Generator` interface, in plain PyTorch.

State-dict names are the official ones (``backbone.*``, ``superresolution.*``, ``decoder.net.*``,
``dataset_label_std``), so official weights load one to one. Unlike the official module, nothing is stateful:
``neural_rendering_resolution`` passed to a call affects that call only.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from ..errors import CheckpointError
from ..fields import Field
from ..generator import Generator, check_camera
from ..rendering import RenderSettings
from .layers import FullyConnectedLayer
from .networks import StyleGAN2Backbone
from .superresolution import SuperResolution

#: tri-plane projection of a point (x, y, z): plane 0 reads (x, y), plane 1 (x, z), plane 2 (z, x) (eg3d.md §6)
PLANE_AXES = ((0, 1), (0, 2), (2, 0))


class OSGDecoder(nn.Module):
    """Mean tri-plane feature [.., 32] -> raw output [.., 33]: sigma logit + 32 pre-sigmoid channels."""

    def __init__(self, n_features: int = 32, hidden_dim: int = 64, output_dim: int = 32, lr_multiplier: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(FullyConnectedLayer(n_features, hidden_dim, lr_multiplier=lr_multiplier),
                                 nn.Softplus(),
                                 FullyConnectedLayer(hidden_dim, 1 + output_dim, lr_multiplier=lr_multiplier))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features [..., 32] -> (colors [..., 32] in (-0.001, 1.001), raw sigma [..., 1])."""
        x = self.net(features)
        return torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001, x[..., :1]


class TriPlaneField(Field):
    """Tri-planes [N, 3*C, H, W] + decoder. ``features(points)`` bilinearly samples each plane (zero padding
    outside the box of side ``box_warp``, align_corners False) and averages the three: [N, P, C].

    Sampling is one ``embedding_bag`` over a channels-last copy of the planes (12 weighted rows per point), which
    is several times faster than ``grid_sample`` on channels-first planes and keeps gradients for the planes and
    the point coordinates.
    """

    def __init__(self, planes: Tensor, decoder: OSGDecoder, box_warp: float):
        n, c3, h, w = planes.shape
        self.n, self.c, self.h, self.w = n, c3 // 3, h, w
        self.decoder, self.box_warp = decoder, box_warp
        self.planes = planes
        self.table = planes.reshape(n, 3, self.c, h, w).permute(0, 1, 3, 4, 2).reshape(n * 3 * h * w, self.c)
        self.feature_dim = self.c
        self.color_dim = decoder.net[2].out_features - 1

    def features(self, points: Tensor) -> Tensor:
        n, p, _ = points.shape
        x = points * (2.0 / self.box_warp)
        u = torch.stack([x[..., a] for a, _ in PLANE_AXES], dim=1)  # [N, 3, P] width coordinate
        v = torch.stack([x[..., b] for _, b in PLANE_AXES], dim=1)  # [N, 3, P] height coordinate
        ix = ((u + 1) * self.w - 1) * 0.5
        iy = ((v + 1) * self.h - 1) * 0.5
        x0, y0 = ix.detach().floor(), iy.detach().floor()
        fx, fy = ix - x0, iy - y0
        xs = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1)  # [N, 3, P, 4] corners
        ys = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1)
        wts = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)
        inside = (xs >= 0) & (xs <= self.w - 1) & (ys >= 0) & (ys <= self.h - 1)
        wts = wts * inside.to(wts.dtype) * (1.0 / 3.0)  # zero padding; mean over the 3 planes
        base = (torch.arange(n * 3, device=points.device) * (self.h * self.w)).reshape(n, 3, 1, 1)
        idx = base + ys.clamp(0, self.h - 1).long() * self.w + xs.clamp(0, self.w - 1).long()
        idx = idx.permute(0, 2, 1, 3).reshape(n * p, 12)
        wts = wts.permute(0, 2, 1, 3).reshape(n * p, 12).to(self.table.dtype)
        out = F.embedding_bag(idx, self.table, per_sample_weights=wts, mode="sum")
        return out.reshape(n, p, self.c)

    def decode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.decoder(features)

    def descriptor(self, features: Tensor) -> Tensor:
        """The 65-d per-sample vector LENeRF's attention field reads: mean plane features (32) | raw decoder
        output (sigma logit + 32 pre-sigmoid channels)."""
        return torch.cat([features, self.decoder.net(features)], -1)


def _default_rendering_kwargs() -> dict:
    return {"image_resolution": 512, "disparity_space_sampling": False, "clamp_mode": "softplus",
            "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
            "c_gen_conditioning_zero": False, "gpc_reg_prob": 0.5, "c_scale": 1.0,
            "superresolution_noise_mode": "none", "density_reg": 0.25, "density_reg_p_dist": 0.004,
            "reg_type": "l1", "decoder_lr_mul": 1.0, "sr_antialias": True, "depth_resolution": 48,
            "depth_resolution_importance": 48, "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1,
            "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2]}


class EG3D(Generator, PyTorchModelHubMixin, library_name="lenerf", tags=["eg3d", "3d-gan", "lenerf"]):
    """EG3D ``TriPlaneGenerator``. Constructor arguments are the official ``init_kwargs`` (eg3d.md §1) plus
    ``neural_rendering_resolution`` (the official module attribute, here a constant default).

    >>> G = EG3D.from_pretrained("path/or/hub-repo")          # config.json + model.safetensors
    >>> G = EG3D.from_official_pickle("ffhqrebalanced512-128.pkl")   # executes nothing from the file
    >>> out = G(z, c, truncation_psi=0.7, truncation_cutoff=14)      # image, image_raw, image_depth
    """

    def __init__(self, z_dim: int = 512, w_dim: int = 512, c_dim: int = 25, img_resolution: int = 512,
                 img_channels: int = 3, mapping_kwargs: dict | None = None, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
                 sr_num_fp16_res: int = 4, sr_kwargs: dict | None = None, rendering_kwargs: dict | None = None,
                 neural_rendering_resolution: int = 128, fused_modconv_default: str | None = None):
        super().__init__()
        rk = dict(_default_rendering_kwargs() if rendering_kwargs is None else rendering_kwargs)
        if rk.get("clamp_mode", "softplus") != "softplus":
            raise CheckpointError(f"clamp_mode {rk['clamp_mode']!r} is not supported (only 'softplus')")
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.rendering_kwargs = rk
        self.neural_rendering_resolution = int(neural_rendering_resolution)
        self.backbone = StyleGAN2Backbone(z_dim, c_dim, w_dim, 256, 32 * 3,
                                          mapping_kwargs=dict(mapping_kwargs or {"num_layers": 2}),
                                          channel_base=channel_base, channel_max=channel_max,
                                          conv_clamp=conv_clamp)
        self.num_ws = self.backbone.num_ws
        self.superresolution = SuperResolution(rk["superresolution_module"], 32, img_resolution, sr_num_fp16_res,
                                               rk.get("sr_antialias", True))
        self.decoder = OSGDecoder(32, 64, 32, rk.get("decoder_lr_mul", 1))
        self.register_buffer("dataset_label_std", torch.zeros(c_dim))  # present in official files; unused
        self.render_settings = RenderSettings(
            ray_start=rk["ray_start"], ray_end=rk["ray_end"], depth_resolution=int(rk["depth_resolution"]),
            depth_resolution_importance=int(rk.get("depth_resolution_importance", 0)),
            white_back=bool(rk.get("white_back", False)),
            disparity_space_sampling=bool(rk.get("disparity_space_sampling", False)),
            box_warp=float(rk["box_warp"]))
        self.camera_radius = float(rk.get("avg_camera_radius", 2.7))
        self.camera_pivot = tuple(float(v) for v in rk.get("avg_camera_pivot", [0, 0, 0.2]))
        self.requires_grad_(False)
        self.eval()

    # interface ------------------------------------------------------------------------------------------------
    def mapping(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **_unused) -> Tensor:
        self.check_z(z)
        c = check_camera(c, self.c_dim)
        if self.rendering_kwargs.get("c_gen_conditioning_zero", False):
            c = torch.zeros_like(c)
        c = c * self.rendering_kwargs.get("c_scale", 0)  # official default 0 (eg3d.md §14.2)
        return self.backbone.mapping(z, c, truncation_psi, truncation_cutoff)

    def planes(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> Tensor:
        """ws [N, 14, w_dim] -> tri-planes [N, 96, 256, 256]."""
        return self.backbone.synthesis(self.check_ws(ws), noise_mode, generator)

    def field(self, ws: Tensor, noise_mode: str = "const", generator: torch.Generator | None = None) -> TriPlaneField:
        return TriPlaneField(self.planes(ws, noise_mode, generator), self.decoder, self.render_settings.box_warp)

    def superresolve(self, rgb: Tensor, features: Tensor, ws: Tensor) -> Tensor:
        return self.superresolution(rgb, features, ws,
                                    noise_mode=self.rendering_kwargs.get("superresolution_noise_mode", "none"))

    # checkpoints --------------------------------------------------------------------------------------------
    @classmethod
    def from_official_pickle(cls, path: str | Path, **overrides) -> "EG3D":
        """Load ``G_ema`` from an official NVlabs pickle without executing anything from it."""
        from .official import read_official_pickle
        ckpt = read_official_pickle(path)
        kwargs = copy.deepcopy(ckpt.init_kwargs)
        if ckpt.rendering_kwargs is not None:  # the dict the forward pass actually uses
            kwargs["rendering_kwargs"] = copy.deepcopy(ckpt.rendering_kwargs)
        if ckpt.neural_rendering_resolution is not None:
            kwargs["neural_rendering_resolution"] = int(ckpt.neural_rendering_resolution)
        kwargs.update(overrides)
        model = cls.from_init_kwargs(kwargs)
        model.load_official_state_dict(ckpt.state_dict)
        return model

    @classmethod
    def from_init_kwargs(cls, init_kwargs: dict) -> "EG3D":
        known = {"z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
                 "channel_max", "num_fp16_res", "conv_clamp", "sr_num_fp16_res", "sr_kwargs", "rendering_kwargs",
                 "neural_rendering_resolution", "fused_modconv_default"}
        unknown = set(init_kwargs) - known
        if unknown:
            raise CheckpointError(f"unexpected EG3D constructor arguments: {sorted(unknown)}")
        kw = {k: _plain(v) for k, v in init_kwargs.items()}
        for key in ("z_dim", "w_dim", "c_dim", "img_resolution"):
            if key not in kw:
                raise CheckpointError(f"EG3D init_kwargs lack {key!r}; is this an EG3D TriPlaneGenerator?")
        return cls(**kw)

    def load_official_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Strict load with a readable error listing missing/unexpected/mis-shaped keys."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            raise CheckpointError("checkpoint does not match the EG3D architecture of its own init_kwargs:"
                                  + (f"\n  missing: {missing[:8]}{' ...' if len(missing) > 8 else ''}"
                                     if missing else "")
                                  + (f"\n  unexpected: {unexpected[:8]}" if unexpected else "")
                                  + (f"\n  shape mismatch: {shapes[:8]}" if shapes else ""))
        self.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None, strict: bool = True,
                        **kwargs) -> "EG3D":
        """Load a converted checkpoint (``config.json`` + ``model.safetensors``) from a folder or a Hub repo id."""
        return super().from_pretrained(pretrained_model_name_or_path, revision=revision, strict=strict, **kwargs)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _plain(v):
    """EasyDict/OrderedDict/numpy scalars from a pickle -> JSON-friendly Python values."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
