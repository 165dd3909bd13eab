"""Images and videos out: PNG frames, depth visualisation, mp4 (imageio + imageio-ffmpeg) with a GIF fallback."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

log = logging.getLogger(__name__)


def to_uint8(image: Tensor) -> np.ndarray:
    """[3, H, W] or [1, 3, H, W] in [-1, 1] -> HxWx3 uint8."""
    if image.ndim == 4:
        image = image[0]
    x = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def over_background(image: Tensor, opacity: Tensor, colour: tuple[float, float, float] | None) -> Tensor:
    """image [N, 3, H, W] in [-1, 1] composited over a flat ``colour`` (RGB in [0, 1]) by the render's opacity
    [N, 1, R, R] in [0, 1] (resized bilinearly to H x W; bilinear resizing is linear, so this equals filling the raw
    render before it was resized). ``colour`` None returns ``image`` unchanged."""
    if colour is None:
        return image
    if opacity.shape[-2:] != image.shape[-2:]:
        opacity = torch.nn.functional.interpolate(opacity.to(image.dtype), size=image.shape[-2:], mode="bilinear",
                                                  align_corners=False, antialias=opacity.shape[-1] > image.shape[-1])
    bg = torch.tensor(colour, device=image.device, dtype=image.dtype).reshape(1, 3, 1, 1)
    return image + 2 * (1 - opacity.clamp(0, 1)) * bg


def depth_to_uint8(depth: Tensor, opacity: Tensor | None = None) -> np.ndarray:
    """Depth [1, H, W] (or [1, 1, H, W]) -> HxWx3 uint8: near = bright, background (opacity < 0.5) black."""
    d = depth.detach().float().cpu().reshape(depth.shape[-2:])
    fg = torch.ones_like(d, dtype=torch.bool) if opacity is None else opacity.detach().cpu().reshape(d.shape) > 0.5
    fg = fg & torch.isfinite(d)
    out = torch.zeros_like(d)
    if fg.any():
        lo, hi = d[fg].min(), d[fg].max()
        out = torch.where(fg, 1 - (d - lo) / (hi - lo + 1e-8) * 0.85, out)
    g = (out * 255).round().to(torch.uint8).numpy()
    return np.stack([g, g, g], axis=-1)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 24) -> Path:
    """Write HxWx3 uint8 frames as H.264 mp4; if ffmpeg is unavailable, as a GIF next to it. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (ships its own ffmpeg binary)
        with imageio.get_writer(path.with_suffix(".mp4"), fps=fps, codec="libx264", quality=8,
                                macro_block_size=1, ffmpeg_log_level="error") as w:
            for f in frames:
                w.append_data(f)
        return path.with_suffix(".mp4")
    except Exception as e:  # no ffmpeg: fall back to GIF via Pillow
        log.warning("mp4 writing unavailable (%s); writing a GIF instead", e)
        gif = path.with_suffix(".gif")
        imgs = [Image.fromarray(f) for f in frames]
        imgs[0].save(gif, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
        return gif


def side_by_side(*images: np.ndarray) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    resized = [i if i.shape[0] == h else np.asarray(Image.fromarray(i).resize((i.shape[1] * h // i.shape[0], h)))
               for i in images]
    return np.concatenate(resized, axis=1)


def mask_overlay(image: np.ndarray, mask, alpha: float = 0.6) -> np.ndarray:
    """Heat overlay of a mask in [0, 1] ([h, w] tensor or array) on an HxWx3 uint8 image."""
    m = mask.detach().float().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask, dtype=np.float32)
    if m.shape != image.shape[:2]:
        m = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR)) / 255.0
    m = np.clip(m, 0, 1)[..., None]
    heat = np.concatenate([np.clip(2 * m, 0, 1), np.clip(2 * m - 1, 0, 1) * 0.8, np.zeros_like(m)], -1) * 255
    out = image.astype(np.float32) * (1 - alpha * m) + heat * alpha * m
    return out.round().clip(0, 255).astype(np.uint8)
