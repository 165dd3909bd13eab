"""Inversion of an image into a generator: optimise w or w+ (and the camera), then optional pivotal tuning (PTI).

Stage 1 (projection): ws starts at the mean latent; Adam with a cosine-ramped learning rate; during the first
quarter, Gaussian noise of decreasing scale is added to ws (StyleGAN projection's latent noise ramp, the part of
its noise regularisation that applies here: the generators run with noise_mode 'const', so there are no noise
maps to optimise or regularise). Loss: MSE on [-1, 1] pixels + ``lambda_perceptual`` x a perceptual distance
(:mod:`lenerf.inversion.perceptual`). Yaw and pitch are optimised with ws when ``optimize_camera``.
Stage 2 (PTI, optional, generators with weights only): ws and camera fixed, a copy of the generator is tuned with
the same loss; what is kept is the per-image difference of its parameters (the shared generator never changes).

Everything is differentiable through the shared renderer; the preview preset keeps a step under a second on a CPU.
"""
from __future__ import annotations

import copy
import json
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..errors import CheckpointError, InputError
from ..generator import Generator, Preset, get_preset

FORMAT = "lenerf-inversion"


@dataclass
class InversionConfig:
    steps: int = 500
    lr: float = 0.1
    w_plus: bool = True
    optimize_camera: bool = True
    lr_camera: float = 0.01
    lambda_perceptual: float = 0.1
    noise_ramp: float = 0.25  # fraction of the steps with latent noise
    initial_noise: float = 0.05  # x the latents' std
    pti_steps: int = 0
    pti_lr: float = 3e-4
    early_stop_patience: int = 150  # stop when the loss has not improved by 0.1% for this many steps
    time_budget_s: float | None = None
    preset: str | Preset = "preview"
    seed: int = 0

    def as_dict(self) -> dict:
        return {**self.__dict__, "preset": getattr(self.preset, "name", self.preset)}

    def validate(self) -> "InversionConfig":
        if not 1 <= self.steps <= 10_000 or not 0 <= self.pti_steps <= 10_000:
            raise InputError("steps must be in [1, 10000] and pti_steps in [0, 10000]")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InputError("the time budget must be positive")
        return self


@dataclass
class Inversion:
    """ws [1, num_ws, w_dim]; camera [1, 25]; yaw/pitch in radians; pti_delta: parameter name -> difference."""

    ws: Tensor
    camera: Tensor
    yaw: float
    pitch: float
    pti_delta: dict[str, Tensor] | None = None
    meta: dict = field(default_factory=dict)

    def generator(self, G: Generator) -> Generator:
        """G itself, or a tuned copy of it when this inversion carries a PTI delta."""
        return apply_delta(G, self.pti_delta) if self.pti_delta else G

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"ws": self.ws.detach().cpu().contiguous(), "camera": self.camera.detach().cpu().contiguous()},
                  out / "latent.safetensors")
        if self.pti_delta:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.pti_delta.items()},
                      out / "pti_delta.safetensors")
        meta = {"format": FORMAT, "format_version": 1, "yaw": self.yaw, "pitch": self.pitch,
                "pti": bool(self.pti_delta), **self.meta}
        (out / "inversion.json").write_text(json.dumps(meta, indent=1))
        return out

    @classmethod
    def load(cls, folder: str | Path, device=None) -> "Inversion":
        from safetensors.torch import load_file
        d = Path(folder)
        if not (d / "inversion.json").is_file() or not (d / "latent.safetensors").is_file():
            raise CheckpointError(f"{d} is not an inversion package (needs inversion.json and latent.safetensors)")
        meta = json.loads((d / "inversion.json").read_text())
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{d}/inversion.json is not a {FORMAT} file")
        t = load_file(d / "latent.safetensors", device=str(device or "cpu"))
        delta = load_file(d / "pti_delta.safetensors", device=str(device or "cpu")) \
            if (d / "pti_delta.safetensors").is_file() else None
        return cls(t["ws"], t["camera"], float(meta["yaw"]), float(meta["pitch"]), delta, meta)


def apply_delta(G: Generator, delta: dict[str, Tensor]) -> Generator:
    """A copy of G with ``delta`` added to its parameters (names must exist and shapes match)."""
    Gt = copy.deepcopy(G)
    params = dict(Gt.named_parameters())
    with torch.no_grad():
        for k, v in delta.items():
            if k not in params or params[k].shape != v.shape:
                raise CheckpointError(f"PTI delta does not fit this generator (parameter {k})")
            params[k].add_(v.to(params[k]))
    return Gt.eval().requires_grad_(False)


def mean_latent(G: Generator, n: int = 512, seed: int = 0) -> tuple[Tensor, float]:
    """Mean ws [1, num_ws, w_dim] and the scalar std of w over ``n`` random z (frontal conditioning)."""
    dev = next(G.parameters(), torch.empty(0)).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    with torch.no_grad():
        ws = G.mapping(z, G.camera(0.0, 0.0).to(dev).expand(n, -1), truncation_psi=1.0)
    return ws.mean(0, keepdim=True), float(ws[:, 0].std(0).mean())


def _render(G: Generator, ws: Tensor, yaw: Tensor, pitch: Tensor, preset: Preset, size: int) -> Tensor:
    c = G.camera(yaw, pitch).to(ws.device)
    gen = torch.Generator(device=ws.device).manual_seed(0)
    img = G.render_field(G.field(ws), ws, c, preset=preset, generator=gen)["image"]
    return img if img.shape[-1] == size else F.interpolate(img, size=(size, size), mode="bilinear",
                                                           align_corners=False, antialias=True)


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    mse = F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def invert(G: Generator, target: Tensor, cfg: InversionConfig = InversionConfig(), yaw: float = 0.0,
           pitch: float = 0.0, perceptual=None, progress: bool = True,
           callback: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
           step_guard: Callable[[], AbstractContextManager] | None = None) -> Inversion:
    """Invert ``target`` [1, 3, H, W] in [-1, 1] (square). ``yaw``/``pitch``: the camera estimate to start from.
    ``perceptual``: a :class:`~lenerf.inversion.perceptual.Perceptual` (default: :func:`load_perceptual`);
    ``step_guard()`` wraps every optimisation step (the app shares the device this way)."""
    from .perceptual import load_perceptual
    cfg.validate()
    if target.ndim != 4 or target.shape[:2] != (1, 3) or target.shape[2] != target.shape[3]:
        raise InputError(f"target must be one square RGB image [1, 3, H, H], got {list(target.shape)}")
    dev = next(G.parameters(), torch.empty(0)).device
    target = target.to(dev).clamp(-1, 1)
    preset = get_preset(cfg.preset)
    size = preset.output_resolution or G.img_resolution
    target_s = F.interpolate(target, size=(size, size), mode="bilinear", align_corners=False, antialias=True) \
        if target.shape[-1] != size else target
    perceptual = perceptual or load_perceptual(device=str(dev))
    G.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    w_avg, w_std = mean_latent(G)
    w = (w_avg if cfg.w_plus else w_avg[:, :1]).clone().requires_grad_(True)
    cam = torch.tensor([float(yaw), float(pitch)], device=dev, requires_grad=cfg.optimize_camera)
    groups = [{"params": [w], "lr": cfg.lr}] + ([{"params": [cam], "lr": cfg.lr_camera}] if cfg.optimize_camera else [])
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
    feats_t = perceptual.features(target_s)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    t0, best, best_step, history = time.time(), float("inf"), 0, []
    best_state = (w.detach().clone(), cam.detach().clone())
    bar = tqdm(total=cfg.steps, desc="invert", unit="step", disable=not progress)
    stop_reason = "steps"

    def loss_of(img):
        pix = F.mse_loss(img, target_s)
        per = perceptual.distance(perceptual.features(img), feats_t)
        return pix + cfg.lambda_perceptual * per, pix, per

    for step in range(cfg.steps):
        t = step / cfg.steps
        lr_scale = 0.5 - 0.5 * math.cos(min(1.0, (1 - t) / 0.25) * math.pi)  # StyleGAN projector's ramps
        lr_scale *= min(1.0, (step + 1) / (0.05 * cfg.steps))
        for g, base in zip(opt.param_groups, [cfg.lr, cfg.lr_camera]):
            g["lr"] = base * lr_scale
        noise_scale = w_std * cfg.initial_noise * max(0.0, 1 - t / cfg.noise_ramp) ** 2 if cfg.noise_ramp else 0.0
        wn = w + torch.randn(w.shape, generator=gen).to(dev) * noise_scale
        ws = wn.expand(-1, G.num_ws, -1) if not cfg.w_plus else wn
        with step_guard() if step_guard is not None else nullcontext():
            img = _render(G, ws, cam[0], cam[1], preset, size)
            loss, pix, per = loss_of(img)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            cam[0].clamp_(-0.8, 0.8)
            cam[1].clamp_(-0.5, 0.5)
        lv = loss.item()
        history.append({"step": step + 1, "loss": round(lv, 6), "pixel": round(pix.item(), 6)})
        if lv < best * (1 - 1e-3):
            best, best_step = lv, step
            best_state = (w.detach().clone(), cam.detach().clone())
        bar.update(1)
        bar.set_postfix(loss=f"{lv:.4f}", psnr=f"{10 * math.log10(4 / max(pix.item(), 1e-12)):.1f}")
        if callback:
            callback({"stage": "projection", "step": step + 1, "steps": cfg.steps, "loss": lv})
        if should_stop is not None and should_stop():
            stop_reason = "cancelled"
            break
        if step - best_step > cfg.early_stop_patience and t > cfg.noise_ramp:
            stop_reason = "early stop"
            break
        if cfg.time_budget_s and time.time() - t0 > cfg.time_budget_s:
            stop_reason = "time budget"
            break
    bar.close()
    w_best, cam_best = best_state
    ws = (w_best if cfg.w_plus else w_best.expand(-1, G.num_ws, -1)).detach()
    yaw_f, pitch_f = float(cam_best[0]), float(cam_best[1])
    proj_s = time.time() - t0
    delta = None
    if cfg.pti_steps > 0 and stop_reason != "cancelled":
        with step_guard() if step_guard is not None else nullcontext():
            delta = _pivotal_tuning(G, ws, yaw_f, pitch_f, target_s, cfg, preset, size, loss_of, progress, callback,
                                    should_stop)
    Gf = apply_delta(G, delta) if delta else G
    with torch.no_grad():
        final = _render(Gf, ws, torch.tensor(yaw_f), torch.tensor(pitch_f), preset, size)
    meta = {"config": cfg.as_dict(), "perceptual": perceptual.name, "steps_run": len(history),
            "stop": stop_reason, "projection_s": round(proj_s, 1), "total_s": round(time.time() - t0, 1),
            "psnr_input_view": round(psnr(final, target_s), 2), "resolution": size}
    return Inversion(ws, G.camera(yaw_f, pitch_f).to(dev), yaw_f, pitch_f, delta, meta)


def _pivotal_tuning(G, ws, yaw, pitch, target, cfg, preset, size, loss_of, progress, callback, should_stop):
    params = dict(G.named_parameters())
    if not params:
        raise InputError("this generator has no weights to tune (pivotal tuning needs EG3D); use pti_steps=0")
    Gt = copy.deepcopy(G).train(False).requires_grad_(True)
    opt = torch.optim.Adam(Gt.parameters(), lr=cfg.pti_lr)
    yaw_t, pitch_t = torch.tensor(yaw), torch.tensor(pitch)
    for step in tqdm(range(cfg.pti_steps), desc="pivotal tuning", unit="step", disable=not progress):
        loss = loss_of(_render(Gt, ws, yaw_t, pitch_t, preset, size))[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback:
            callback({"stage": "pti", "step": step + 1, "steps": cfg.pti_steps, "loss": loss.item()})
        if should_stop is not None and should_stop():
            break
    tuned = dict(Gt.named_parameters())
    return {k: (tuned[k].detach() - p.detach()) for k, p in params.items() if not torch.equal(tuned[k], p)}


def image_to_tensor(image, size: int | None = None) -> Tensor:
    """PIL image / HxWx3 uint8 array -> [1, 3, H, W] in [-1, 1] (optionally resized to size x size)."""
    from PIL import Image
    if isinstance(image, Image.Image):
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.LANCZOS)
        image = np.asarray(image.convert("RGB"))
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(127.5).sub(1)
    return t.unsqueeze(0)
