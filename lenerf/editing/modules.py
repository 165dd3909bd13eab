"""The three trained add-on modules of LENeRF (method.md §2, §4, §5).

* :class:`LatentResidualMapper` - ws -> residual; coarse/medium/fine sub-mappers shared inside each group.
* :class:`AttentionField` - per-sample (descriptor | xyz) [+ latents] -> 3D mask m in (0, 1).
* :class:`DeformationField` - (x, ws, wt) -> x' = x + T(x, ws, wt), read the source field at x'.

All fully-connected layers are StyleGAN2 equalised-learning-rate layers (official parametrisation and init).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..eg3d.layers import SQRT2, FullyConnectedLayer, fc_stack_inference, normalize_2nd_moment


def default_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """w-index ranges of the coarse/medium/fine groups (EG3D, 14 ws: 0-3, 4-7, 8-13)."""
    if num_ws == 14:
        return {"coarse": (0, 4), "medium": (4, 8), "fine": (8, 14)}
    a, b = max(1, num_ws * 2 // 7), max(2, num_ws * 4 // 7)
    return {"coarse": (0, a), "medium": (a, b), "fine": (b, num_ws)}


class SubMapper(nn.Module):
    """RMS-normalise, then 4 x (FC + lrelu*sqrt2) with lr multiplier 0.01; last layer weights x0.01 at init."""

    def __init__(self, w_dim: int, layers: int = 4):
        super().__init__()
        self.net = nn.Sequential(*[FullyConnectedLayer(w_dim, w_dim, activation="lrelu", lr_multiplier=0.01)
                                   for _ in range(layers)])
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)

    def forward(self, w: Tensor) -> Tensor:
        return self.net(normalize_2nd_moment(w, dim=-1))


class LatentResidualMapper(nn.Module):
    """ws [N, num_ws, w_dim] -> residual [N, num_ws, w_dim] (zero for disabled groups)."""

    def __init__(self, num_ws: int, w_dim: int, groups: tuple[str, ...] = ("coarse", "medium", "fine")):
        super().__init__()
        self.num_ws, self.w_dim = num_ws, w_dim
        self.ranges = default_groups(num_ws)
        self.groups = tuple(groups)
        for g in self.groups:
            if g not in self.ranges:
                raise ValueError(f"unknown mapper group {g!r}; choose from {list(self.ranges)}")
        self.mappers = nn.ModuleDict({g: SubMapper(w_dim) for g in self.groups})

    def forward(self, ws: Tensor) -> Tensor:
        out = torch.zeros_like(ws)
        for g, m in self.mappers.items():
            a, b = self.ranges[g]
            out = out.index_copy(1, torch.arange(a, b, device=ws.device), m(ws[:, a:b]))
        return out


class _LatentBranch(nn.Module):
    """FC(w -> h) lrelu, FC(h -> out) lrelu on each w vector, averaged over the layers -> [N, out]."""

    def __init__(self, w_dim: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(FullyConnectedLayer(w_dim, hidden, activation="lrelu"),
                                 FullyConnectedLayer(hidden, out, activation="lrelu"))

    def forward(self, ws: Tensor) -> Tensor:
        return self.net(ws).mean(1)


class AttentionField(nn.Module):
    """The Attention Field Network. ``kind``:

    * ``"mlp"`` (official ``default``): [descriptor | xyz] -> 4-layer MLP;
    * ``"ws_condition"``: also latent codes of ws and wt (official ``ws_condition``);
    * ``"attention"`` (paper Eq. 5): a source token and a target token (target features at the *same* points),
      each fused with its latent token, one-head self-attention over the two, then a linear layer.

    Inputs are RMS-normalised over (descriptor | xyz). Output m = sigmoid(-logit) in (0, 1) (the official sign
    convention, kept so that official weights would load); ``bias_init`` shifts the initial mask.
    ``xyz_frequencies`` K > 0 appends sin/cos(2^k pi xyz), k < K, to the normalised input (NeRF's positional
    encoding; not in the official network): a raw-xyz MLP learns only smooth masks in a few hundred steps, so a
    small part (an eye) comes out as a blob over the face when the descriptor alone cannot tell it apart.
    """

    def __init__(self, descriptor_dim: int, w_dim: int, kind: str = "mlp", hidden: int = 64,
                 use_xyz: bool = True, bias_init: float = 0.0, xyz_frequencies: int = 0):
        super().__init__()
        if kind not in ("mlp", "ws_condition", "attention"):
            raise ValueError(f"unknown attention field kind {kind!r}")
        self.kind, self.use_xyz = kind, use_xyz
        self.xyz_frequencies = xyz_frequencies if use_xyz else 0
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(self.xyz_frequencies), persistent=False)
        d_in = descriptor_dim + (3 if use_xyz else 0) + 6 * self.xyz_frequencies
        h = hidden
        if kind == "attention":
            self.token = FullyConnectedLayer(d_in, h, activation="lrelu")
            self.latent = FullyConnectedLayer(w_dim, h, activation="lrelu")
            self.fuse = FullyConnectedLayer(2 * h, h, activation="lrelu")
            self.attn = nn.MultiheadAttention(h, 1, batch_first=True)
            self.out = FullyConnectedLayer(2 * h, 1, bias_init=bias_init)
        else:
            extra = h if kind == "ws_condition" else 0
            if kind == "ws_condition":  # one latent branch, applied to ws and to wt
                self.latent = _LatentBranch(w_dim, h, h // 2)
            self.net = nn.Sequential(FullyConnectedLayer(d_in + extra, h, activation="lrelu"),
                                     FullyConnectedLayer(h, h, activation="lrelu"),
                                     FullyConnectedLayer(h, h, activation="lrelu"),
                                     FullyConnectedLayer(h, 1, bias_init=bias_init))

    def _inp(self, desc: Tensor, xyz: Tensor) -> Tensor:
        a = torch.cat([desc, xyz], -1) if self.use_xyz else desc
        a = normalize_2nd_moment(a, dim=-1)
        if self.xyz_frequencies:
            ang = (xyz.unsqueeze(-1) * self.freqs.to(xyz.dtype)).flatten(-2)  # [..., 3K]
            a = torch.cat([a, torch.sin(ang), torch.cos(ang)], -1)
        return a

    def logits(self, desc_s: Tensor, xyz: Tensor, ws: Tensor, wt: Tensor, desc_t: Tensor | None = None) -> Tensor:
        """desc_* [N, P, D], xyz [N, P, 3], ws/wt [N, num_ws, w_dim] -> [N, P, 1]."""
        a = self._inp(desc_s, xyz)
        if self.kind == "mlp":
            return fc_stack_inference(self.net, a) if not torch.is_grad_enabled() else self.net(a)
        if self.kind == "ws_condition":
            lat = torch.cat([self.latent(ws), self.latent(wt)], -1)
            return self.net(torch.cat([a, lat.unsqueeze(1).expand(-1, a.shape[1], -1)], -1))
        if desc_t is None:
            raise ValueError("the attention variant needs the target descriptors")
        n, p, _ = a.shape
        tok = torch.stack([self.token(a), self.token(self._inp(desc_t, xyz))], 2)  # [N, P, 2, h]
        lat = torch.stack([self.latent(ws).mean(1), self.latent(wt).mean(1)], 1)  # [N, 2, h]
        tok = self.fuse(torch.cat([tok, lat.unsqueeze(1).expand(-1, p, -1, -1)], -1)).reshape(n * p, 2, -1)
        y, _ = self.attn(tok, tok, tok, need_weights=False)
        return self.out(F.leaky_relu(y, 0.01).reshape(n, p, -1))

    def forward(self, desc_s: Tensor, xyz: Tensor, ws: Tensor, wt: Tensor, desc_t: Tensor | None = None) -> Tensor:
        return torch.sigmoid(-self.logits(desc_s, xyz, ws, wt, desc_t))


class DeformationField(nn.Module):
    """x' = x + T(x, ws, wt) (method.md §5); last layer x0.01 at init so that T starts near zero (official), and
    exactly zero with a positional encoding (whose x0.01 offsets, up to 0.027 world units, blur the whole head
    before any training: a deformation meant for one part must start as the identity everywhere).

    ``xyz_frequencies`` K > 0 appends sin/cos(2^k pi x), k < K, to the raw x (NeRF's positional encoding; not in
    the official network, whose deformation was never trained): a raw-x MLP learns only deformations that vary
    slowly over the scene, so a local one (growing the eyes by 0.015 world units and nothing else) is out of its
    reach in a few hundred steps (session 22's probe: an L2 fit to big-eyed renders moved 28.3 -> 27.6 dB with raw
    x, 28.3 -> 35.5 dB with K = 6)."""

    def __init__(self, w_dim: int, hidden: int = 64, xyz_frequencies: int = 0, symmetric: bool = False,
                 max_offset: float = 0.0, bound_length: bool = False):
        super().__init__()
        if xyz_frequencies < 0 or max_offset < 0:
            raise ValueError(f"xyz_frequencies and max_offset must be >= 0, got {xyz_frequencies}, {max_offset}")
        self.xyz_frequencies = xyz_frequencies
        #: > 0: each offset component is bounded, r tanh(T / r) (world units; 0 = unbounded, official). A local edit
        #: then reads the source at most r away: a part can grow by at most about r on every side instead of
        #: pulling its colour across the face.
        self.max_offset = float(max_offset)
        #: with max_offset: bound the offset's length instead, r tanh(|T| / r) T / |T| (a ball rather than a box, so
        #: a part carried outward grows round rather than square; docs/editing.md, session 33. With method.md Eq. 7's
        #: blend it moved the lips and nose too: session 32, 26.4 dB outside the eyes against 35.1)
        if bound_length and not max_offset:
            raise ValueError("bound_length bounds the offset's length by max_offset: set max_offset > 0")
        self.bound_length = bound_length
        #: mirror-symmetric about the plane x = 0 (the heads' plane of symmetry in both generators' canonical
        #: space): T(x) = (T'(x) + S T'(S x)) / 2, S = diag(-1, 1, 1); both eyes then grow alike
        self.symmetric = symmetric
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(xyz_frequencies), persistent=False)
        self.latent = _LatentBranch(w_dim, hidden, hidden // 2)  # applied to ws and to wt
        self.net = nn.Sequential(FullyConnectedLayer(3 + 6 * xyz_frequencies + hidden, hidden, activation="lrelu"),
                                 FullyConnectedLayer(hidden, hidden, activation="lrelu"),
                                 FullyConnectedLayer(hidden, hidden, activation="lrelu"),
                                 FullyConnectedLayer(hidden, 3))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.0 if xyz_frequencies else 0.01)

    def offsets(self, x: Tensor, ws: Tensor, wt: Tensor) -> Tensor:
        """x [N, P, 3] world coordinates, ws / wt [N, num_ws, w_dim] -> offsets [N, P, 3] in world units."""
        lat = torch.cat([self.latent(ws), self.latent(wt)], -1)  # once, also for the mirrored points
        if self.symmetric:
            flip = torch.tensor([-1.0, 1.0, 1.0], device=x.device, dtype=x.dtype)
            t = (self._offsets(x, lat) + self._offsets(x * flip, lat) * flip) / 2
        else:
            t = self._offsets(x, lat)
        if not self.max_offset:
            return t
        r = self.max_offset
        if self.bound_length:
            length = t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return t * (r * torch.tanh(length / r) / length)
        return r * torch.tanh(t / r)

    def _offsets(self, x: Tensor, lat: Tensor) -> Tensor:
        """The MLP on [x, encoding(x), latent] -> [N, P, 3]. The same values as ``self.net`` on the concatenation,
        computed without it: the latent's share of the first layer is one bias per head (not a [P, hidden] copy of
        the latent per point), and the weight gains and each lrelu's sqrt(2) are folded into the next matrix (the
        deformation runs at every sample of every training ray: ~1.6 M points per step for eyes_big)."""
        first = self.net[0]
        inp = [x]
        if self.xyz_frequencies:
            ang = (x.unsqueeze(-1) * self.freqs.to(x.dtype)).flatten(-2)  # [N, P, 3K]
            inp += [torch.sin(ang), torch.cos(ang)]
        enc = torch.cat(inp, -1) if len(inp) > 1 else x  # [N, P, D]
        w = first.weight * first.weight_gain  # [hidden, D + latent]
        d = enc.shape[-1]
        bias = torch.addmm(first.bias * first.bias_gain, lat, w[:, d:].t())  # [N, hidden]
        h = F.leaky_relu_(torch.baddbmm(bias.unsqueeze(1), enc, w[:, :d].t().expand(enc.shape[0], -1, -1)), 0.2)
        return fc_stack_inference(self.net[1:], h, carry=SQRT2)  # the first lrelu's sqrt(2) still owed

    def forward(self, x: Tensor, ws: Tensor, wt: Tensor) -> Tensor:
        return x + self.offsets(x, ws, wt)
