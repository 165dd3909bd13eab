"""StyleGAN2 building blocks in plain PyTorch (eg3d.md §3-5).

Parameter and buffer names, shapes and registration order follow the official modules so that an official
``state_dict`` loads one to one. Runtime gains (equalised learning rate) are applied in ``forward``; stored
values are the official raw values.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


def fir_filter(taps=(1, 3, 3, 1)) -> Tensor:
    """The 2-D separable FIR filter ``outer(taps, taps)`` normalised to sum 1 ([4, 4] for 4 taps)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _depthwise(f: Tensor, channels: int, x: Tensor, gain: float) -> Tensor:
    return (f * gain).to(x.dtype).flip([0, 1])[None, None].expand(channels, 1, *f.shape)


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """x2 upsampling with the FIR filter ``f`` [4, 4] (official upfirdn2d up=2, pad (2,1,2,1), gain 4).

    Zero insertion followed by the filter equals a depthwise transposed convolution with stride 2, padding 1.
    """
    c = x.shape[1]
    return F.conv_transpose2d(x, _depthwise(f, c, x, 4.0), stride=2, padding=1, groups=c)


def fir2d(x: Tensor, f: Tensor, pad: int, gain: float) -> Tensor:
    """Depthwise FIR filter with symmetric zero padding ``pad`` (official upfirdn2d with up = down = 1)."""
    c = x.shape[1]
    return F.conv2d(x, _depthwise(f, c, x, gain), padding=pad, groups=c)


class FullyConnectedLayer(nn.Module):
    """y = act(x W^T * lr/sqrt(in) + b * lr) [* sqrt 2 for lrelu]. Official names: ``weight``, ``bias``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, w, b)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * SQRT2
        elif self.activation != "linear":
            raise ValueError(f"unsupported activation {self.activation!r}")
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def fc_stack_inference(layers, x: Tensor, carry: float = 1.0) -> Tensor:
    """A stack of :class:`FullyConnectedLayer` for inference, same values as calling them in turn on ``carry * x``:
    the weight gains and each lrelu's sqrt(2) are folded into the next matrix and the activation runs in place (one
    pass over the activations per layer instead of four). Also differentiable (each in-place activation acts on a
    fresh linear output, which autograd allows): the deformation network trains through it."""
    for layer in layers:
        w = layer.weight * (layer.weight_gain * carry)
        b = layer.bias * layer.bias_gain if layer.bias is not None else None
        x = F.linear(x, w, b)
        if layer.activation == "lrelu":
            x = F.leaky_relu_(x, 0.2)
            carry = SQRT2
        elif layer.activation == "linear":
            carry = 1.0
        else:
            raise ValueError(f"unsupported activation {layer.activation!r}")
    return x * carry if carry != 1.0 else x


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, gain: float = 1.0) -> Tensor:
    """StyleGAN2 modulated convolution (eg3d.md §5), optionally upsampling x2, output times ``gain``.

    x [N, I, H, W], weight [O, I, k, k], styles [N, I] -> [N, O, H*up, W*up]. For a batch of one the styles and
    demodulation are folded into the kernel (one plain convolution); otherwise activations are scaled before
    and after a shared-weight convolution. Both are the official math (they agree to float rounding).
    """
    n = x.shape[0]
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    scale = torch.full((n, weight.shape[0]), gain, dtype=x.dtype, device=x.device)
    if demodulate:
        scale = scale * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if n == 1:
        kernel = w[0] * scale[0].reshape(-1, 1, 1, 1)
    else:
        x = x * styles.reshape(n, -1, 1, 1)
        kernel = weight
    if up == 1:
        y = F.conv2d(x, kernel, padding=padding)
    else:  # transposed conv (kernel not flipped) to (2H+1)^2, then the FIR filter with pad 1, gain 4
        assert up == 2 and padding == 1 and weight.shape[-1] == 3
        y = F.conv_transpose2d(x, kernel.transpose(0, 1), stride=2)
        y = fir2d(y, resample_filter, pad=1, gain=4.0)
    if n > 1 and (demodulate or gain != 1.0):
        y = y * scale.reshape(n, -1, 1, 1)
    return y


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu (official ``SynthesisLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, kernel_size: int = 3):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.conv_clamp, self.padding = conv_clamp, kernel_size // 2
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.register_buffer("resample_filter", fir_filter())
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "const", generator=None) -> Tensor:
        styles = self.affine(w)
        # lrelu(v) * sqrt2 == lrelu(v * sqrt2): the gain is folded into the conv and the additive terms
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, gain=SQRT2)
        add = self.bias.reshape(1, -1, 1, 1) * SQRT2
        if noise_mode == "const":
            add = add + (self.noise_const * (self.noise_strength * SQRT2))
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype, generator=generator)
            add = add + noise * (self.noise_strength * SQRT2)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        x = F.leaky_relu(x + add, 0.2)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation + bias (official ``ToRGBLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.reshape(1, -1, 1, 1)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' generator: [const | conv0 (x2 up)], conv1, torgb; the image skip path is
    upsampled with the FIR filter (``up=False``: the no-upsampling block of the small SR modules)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None, up: bool = True):
        super().__init__()
        self.in_channels, self.resolution, self.up = in_channels, resolution, up
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        self.register_buffer("resample_filter", fir_filter())
        self.num_conv = 1 if in_channels == 0 else 2
        if in_channels != 0:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2 if up else 1,
                                        conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "const",
                generator=None) -> tuple[Tensor, Tensor]:
        """ws [N, num_conv + 1, w_dim]; x [N, in, r, r] (None for the first block); img skip [N, C, r, r]."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, generator)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)
            x = self.conv1(x, ws[:, 1], noise_mode, generator)
        if img is not None and self.up:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, ws[:, self.num_conv])
        return x, (y if img is None else img + y)
