"""EG3D's superresolution modules (eg3d.md §9): a StyleGAN2-style upsampler conditioned on ws[:, -1]."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import SynthesisBlock, fir_filter

# class -> (input resolution, (block0 channels, block0 upsamples), block1 channels, output scale,
#           resize only when the input is smaller, has a top-level resample_filter)
_SPECS = {
    "SuperresolutionHybrid8XDC": (128, (256, True), 128, 4, False, False),
    "SuperresolutionHybrid8X": (128, (128, True), 64, 4, False, True),
    "SuperresolutionHybrid4X": (128, (128, False), 64, 2, True, True),
    "SuperresolutionHybrid2X": (64, (128, False), 64, 2, False, True),
}
SUPPORTED = tuple(f"training.superresolution.{k}" for k in _SPECS)


class SuperResolution(nn.Module):
    """rgb [N, 3, R, R] + features [N, 32, R, R] + ws [N, num_ws, 512] -> image [N, 3, out, out]."""

    def __init__(self, class_name: str, channels: int, img_resolution: int, sr_num_fp16_res: int = 0,
                 sr_antialias: bool = True, **_ignored):
        super().__init__()
        name = class_name.rsplit(".", 1)[-1]
        if name not in _SPECS:
            raise ValueError(f"unsupported superresolution module {class_name!r}; supported: {', '.join(SUPPORTED)}")
        self.class_name = name
        in_res, (c0, up0), c1, scale, only_smaller, top_filter = _SPECS[name]
        if img_resolution != in_res * scale:
            raise ValueError(f"{name} produces {in_res * scale}x{in_res * scale} images, not {img_resolution}")
        self.input_resolution, self.sr_antialias, self.only_if_smaller = in_res, sr_antialias, only_smaller
        clamp = 256 if sr_num_fp16_res > 0 else None
        if top_filter:
            self.register_buffer("resample_filter", fir_filter())
        res0 = in_res * 2 if up0 else in_res
        self.block0 = SynthesisBlock(channels, c0, 512, res0, 3, conv_clamp=clamp, up=up0)
        self.block1 = SynthesisBlock(c0, c1, 512, res0 * 2, 3, conv_clamp=clamp)

    def forward(self, rgb: Tensor, x: Tensor, ws: Tensor, noise_mode: str = "none") -> Tensor:
        w = ws[:, -1:].expand(-1, 3, -1)
        r = x.shape[-1]
        if (r < self.input_resolution) if self.only_if_smaller else (r != self.input_resolution):
            size = (self.input_resolution, self.input_resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
        x, rgb = self.block0(x, rgb, w, noise_mode)
        x, rgb = self.block1(x, rgb, w, noise_mode)
        return rgb
