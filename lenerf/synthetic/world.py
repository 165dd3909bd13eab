"""A procedural world of 3D heads with ground truth, on the same generator interface as EG3D.

    z [N, 32] --mapping--> ws [N, 14, 32] --field--> SyntheticHeadField --renderer--> image (no SR stage)

Every head is built from soft signed-distance parts that text can name: skin (head, neck), two eyes, hair
(colour, short/long), lips, nose, two ears, in front of a grey backdrop. Attributes are drawn from small
palettes by ``z``; ``ws`` stores them in an orthogonally mixed 32-d code (the same vector in all 14 rows, like
StyleGAN's broadcast), so every latent - also an edited one - decodes to attribute values and captions.
Rows 0-7 (coarse/medium) drive geometry, rows 8-13 (fine) drive colours, mirroring EG3D's w indexing.

Features of a point are ``[sigma logit, r, g, b, p_skin, p_eyes, p_hair, p_lips, p_nose, p_ears]``; blending
two heads' features linearly (what LENeRF does) blends density, colour and part memberships.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor

from ..errors import InputError
from ..fields import Field
from ..generator import Generator, check_camera
from ..rendering import RenderSettings

#: bumped whenever renders of a latent change: cached datasets that hold such renders carry it in their file name.
#: Version 3 grows hair between the two lengths at the sides as well as at the nape (the world's own latents, with
#: lengths 0 or 1 only, render bit-identically in versions 1 to 3)
WORLD_VERSION = 3
SIDE_DROP = 0.5  # how far the hair line drops over the ears per unit of min(h, 1 - h)
PARTS = ("skin", "eyes", "hair", "lips", "nose", "ears")  # label k+1 in label images; 0 = background
LABELS = ("background",) + PARTS

PALETTES: dict[str, dict[str, tuple[float, float, float]]] = {
    "skin": {"light": (0.93, 0.78, 0.66), "tan": (0.76, 0.55, 0.38), "dark": (0.42, 0.27, 0.18)},
    "eyes": {"brown": (0.45, 0.24, 0.07), "blue": (0.10, 0.40, 0.95), "green": (0.10, 0.70, 0.20)},
    "hair": {"black": (0.07, 0.06, 0.06), "brown": (0.45, 0.27, 0.12), "blonde": (0.96, 0.84, 0.42),
             "red": (0.85, 0.18, 0.08), "white": (0.96, 0.96, 0.96)},
    "lips": {"red": (0.80, 0.08, 0.14), "pink": (0.98, 0.55, 0.70), "purple": (0.50, 0.15, 0.60),
             "green": (0.10, 0.65, 0.20)},
    "nose": {"red": (0.90, 0.12, 0.10), "blue": (0.12, 0.30, 0.90), "yellow": (0.95, 0.85, 0.10)},
}
HAIR_LENGTHS = ("short", "long")
COLOR_PARTS = ("skin", "eyes", "hair", "lips", "nose")
#: attribute -> list of class names (what captions, MiniCLIP and the classifier talk about)
ATTRIBUTES: dict[str, tuple[str, ...]] = {**{p: tuple(PALETTES[p]) for p in COLOR_PARTS}, "hair_length": HAIR_LENGTHS}
BACKDROP = (0.55, 0.58, 0.62)

# layout of the 32-d attribute code a (ws = Q a)
_SLOT = {p: slice(3 * i, 3 * i + 3) for i, p in enumerate(COLOR_PARTS)}  # 0..14 colours
_HAIR_LEN, _HEAD_W, _HEAD_H, _EYE_DX, _NOSE_L, _LIP_W = 15, 16, 17, 18, 19, 20
CODE_DIM, NUM_WS, W_DIM = 32, 14, 32
_PRIORITY = [PARTS.index(k) for k in ("eyes", "nose", "lips", "hair", "ears", "skin")]
GEOMETRY_ROWS, COLOR_ROWS = slice(0, 8), slice(8, 14)


def _orthogonal(seed: int = 1234) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(CODE_DIM, CODE_DIM, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def _palette(part: str) -> Tensor:
    return torch.tensor(list(PALETTES[part].values()))


def palette_class(part: str, colors: Tensor) -> Tensor:
    """The world's rule for a colour's class: colours [..., 3] in [0, 1] -> index [...] of the nearest palette colour
    of ``part`` (in ``ATTRIBUTES[part]`` order)."""
    pal = _palette(part).to(colors)
    return torch.cdist(colors.reshape(-1, 3), pal).argmin(-1).reshape(colors.shape[:-1])


@dataclass
class HeadParams:
    """Decoded per-head parameters (each [N] or [N, 3])."""

    colors: dict[str, Tensor]
    hair_length: Tensor
    head_w: Tensor
    head_h: Tensor
    eye_dx: Tensor
    nose_l: Tensor
    lip_w: Tensor
    #: eye radius scale [N] (None = 1). Not decoded from ws: the generator cannot change eye size, only a render
    #: of a head with the field's parameters set by hand can (datasets that teach MiniCLIP eye sizes; an edit that
    #: enlarges eyes must deform the source, the deformation network's job)
    eye_scale: Tensor | None = None


def _ellipsoid(p: Tensor, center, radii) -> Tensor:
    """Approximate signed distance to an ellipsoid; p [N, P, 3], center/radii [N|1, 1, 3]."""
    q = (p - center) / radii
    k = q.norm(dim=-1)
    return (k - 1) * radii.amin(dim=-1)


class _InwardClamp(torch.autograd.Function):
    """Clamp in the forward pass; in the backward pass a value past a bound gets only the gradient that moves it
    back inside (a descent step ``x -= lr * g`` towards the range), never the one that pushes it further out."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: float, hi: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, = ctx.saved_tensors
        outward = ((x > ctx.hi) & (g < 0)) | ((x < ctx.lo) & (g > 0))
        return g.masked_fill(outward, 0), None, None


def _clamp(x: Tensor, lo: float, hi: float) -> Tensor:
    """Clamp a decoded parameter to its range. Inside the range the gradient is the identity. Past a bound the
    gradient that brings the value back still flows (an optimiser - inversion, an edit's mapper - that overshot
    can return), but the one that pushes it further out is dropped: the clamped output no longer changes, and a
    loss that keeps asking for "more" (CLIP: ever bluer eyes) would otherwise grow the latent without bound."""
    return _InwardClamp.apply(x, lo, hi)


def _sig(x: Tensor) -> Tensor:
    return torch.sigmoid(x)


class SyntheticHeadField(Field):
    """The field of N procedural heads. ``features`` [N, P, 10]; ``decode`` -> colors [N, P, 9]
    (rgb + 6 part memberships, all in [0, 1]) and the raw sigma logit [N, P, 1]."""

    feature_dim = 10
    color_dim = 9
    EPS_DENSITY = 0.007
    DILATE = 0.003

    def __init__(self, params: HeadParams):
        self.p = params

    def part_sdfs(self, pts: Tensor) -> dict[str, Tensor]:
        p = self.p
        n = pts.shape[0]
        dev, dt = pts.device, pts.dtype

        def v(*xs):
            return torch.tensor(xs, device=dev, dtype=dt).reshape(1, 1, 3)

        def per(t):  # [N] -> [N, 1, 1]
            return t.to(dev, dt).reshape(n, 1, 1)

        one = torch.ones(n, 1, 1, device=dev, dtype=dt)
        hw, hh = per(p.head_w), per(p.head_h)
        head_r = torch.cat([0.205 * hw, 0.255 * hh, 0.225 * one], -1)
        head = _ellipsoid(pts, v(0, 0.0, 0.0), head_r)
        neck_q = torch.stack([pts[..., 0] / 0.085, pts[..., 2] / 0.08], -1).norm(dim=-1)
        neck = torch.maximum((neck_q - 1) * 0.08, pts[..., 1] + 0.15)  # open cylinder below the head
        neck = torch.maximum(neck, -0.48 - pts[..., 1])
        dx = 0.075 + per(p.eye_dx).squeeze(-1)
        ex = torch.cat([dx, -dx], 0).reshape(2, n, 1)  # two eyes
        eye_r = 0.034 if p.eye_scale is None else 0.034 * per(p.eye_scale).squeeze(-1)
        eye_d = torch.stack([((pts[..., 0] - ex[i]) ** 2 + (pts[..., 1] - 0.035) ** 2 + (pts[..., 2] - 0.188) ** 2)
                             .sqrt() - eye_r for i in range(2)], 0)
        eyes = eye_d.amin(0)
        nl = per(p.nose_l)
        nose = _ellipsoid(pts, v(0, -0.015, 0.225), torch.cat([0.026 * one, 0.045 * nl, 0.038 * one], -1))
        lips = _ellipsoid(pts, v(0, -0.115, 0.185), torch.cat([0.058 * per(p.lip_w), 0.021 * one, 0.03 * one], -1))
        ears = torch.minimum(_ellipsoid(pts, v(0.2, 0.01, -0.005), v(0.028, 0.055, 0.04)),
                             _ellipsoid(pts, v(-0.2, 0.01, -0.005), v(0.028, 0.055, 0.04)))
        # hair: a cap (outer ellipsoid above a tilted hair line) + a long-hair slab behind the head
        cap_r = torch.cat([0.228 * hw, 0.285 * hh, 0.25 * one], -1)
        cap = _ellipsoid(pts, v(0, 0.018, -0.012), cap_r)
        line = 0.10 + 0.45 * (pts[..., 2] - 0.2) - pts[..., 1]  # > 0 below the hair line
        # between the two lengths the hair line also drops at the nape and, over the ears, at the sides (0 at h = 0
        # and h = 1, where the slab covers both), so that growing hair from h = 0 moves a surface that every view
        # sees: the render has a gradient in h at h = 0, and the hair visibly lengthens from there
        h = per(p.hair_length).squeeze(-1)
        nape = ((0.05 - pts[..., 2]) / 0.15).clamp(0, 1)
        side = ((pts[..., 0].abs() - 0.12) / 0.06).clamp(0, 1) * ((0.08 - pts[..., 2]) / 0.08).clamp(0, 1)
        line = line - torch.minimum(h, 1 - h) * (0.25 * nape + SIDE_DROP * side)
        cap = torch.maximum(cap, line)
        bottom = 0.02 - 0.40 * h  # long hair reaches down to about y = -0.38
        slab = torch.maximum(torch.maximum(pts[..., 0].abs() - 0.235 * hw.squeeze(-1), bottom - pts[..., 1]),
                             torch.maximum(pts[..., 2] - 0.02, -0.26 - pts[..., 2]))
        slab = torch.maximum(slab, pts[..., 1] - 0.1)
        slab = torch.maximum(slab, 0.05 - h)  # no slab for short hair
        hair = torch.minimum(cap, slab)
        # a bowl behind the head (inside the sampled depth range for every training camera)
        backdrop = torch.maximum((pts.norm(dim=-1) - 0.46).abs() - 0.03, pts[..., 2] + 0.12)
        return {"skin": torch.minimum(head, neck), "eyes": eyes, "hair": hair, "lips": lips, "nose": nose,
                "ears": ears, "backdrop": backdrop}

    def memberships(self, sdf: dict[str, Tensor]) -> Tensor:
        """Soft part labels [6, N, P] (PARTS order); the backdrop gets 1 - their sum.

        Head object vs backdrop by the nearer surface; inside the object the priority eyes > nose > lips > hair >
        ears > skin; points in the soft shell just outside every part (where the density has not yet vanished)
        go to the nearest part, so each part's shell carries its own colour."""
        S = torch.stack([sdf[k] for k in PARTS])  # [6, N, P]
        obj = S.amin(0)
        s_obj = _sig((sdf["backdrop"] - obj) / 0.004)
        nearest = torch.exp((obj - S) / 0.004)
        nearest = nearest / nearest.sum(0)
        inside = _sig((self.DILATE - S) / 0.003)
        m = torch.empty_like(S)
        rest = torch.ones_like(obj)
        for i in _PRIORITY:
            m[i] = rest * inside[i]
            rest = rest * (1 - inside[i])
        return (m + rest * nearest) * s_obj

    def features(self, points: Tensor) -> Tensor:
        sdf = self.part_sdfs(points)
        union = torch.minimum(torch.stack(list(sdf.values())).amin(0), sdf["backdrop"])
        sigma = 121.0 * _sig(-union / self.EPS_DENSITY) - 9.0
        m = self.memberships(sdf)  # [6, N, P]
        colors = torch.stack([self.p.colors[k if k != "ears" else "skin"].to(points) for k in PARTS], 1)  # [N, 6, 3]
        backdrop = torch.tensor(BACKDROP, device=points.device, dtype=points.dtype)
        m_np = m.permute(1, 2, 0)  # [N, P, 6]
        rgb = torch.bmm(m_np, colors) + (1 - m.sum(0)).unsqueeze(-1) * backdrop
        # baked soft shading: darker towards the silhouette, so the heads read as round
        r2 = (points[..., 0] ** 2 + (points[..., 1] - 0.02) ** 2) * (1 / 0.26 ** 2)
        shade = 1.0 - 0.35 * r2.clamp(0, 1) * m.sum(0)
        return torch.cat([sigma.unsqueeze(-1), rgb * shade.unsqueeze(-1), m_np], -1)

    def decode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return features[..., 1:].clamp(0, 1), features[..., :1]

    def descriptor(self, features: Tensor) -> Tensor:
        """What an attention field may read: density and colour (the ground-truth part memberships are withheld,
        so a mask must be learnt from colour, shape and position, as from EG3D's features). The density logit is
        mapped back to the soft occupancy in [0, 1] so that all channels have the same scale as the colours."""
        return torch.cat([(features[..., :1] + 9.0) / 121.0, features[..., 1:4]], -1)


class SyntheticHeads(Generator, PyTorchModelHubMixin, library_name="lenerf", tags=["lenerf", "synthetic"]):
    """The procedural heads generator. No weights: everything is a function of ``seed`` (the code basis)."""

    z_dim, c_dim, w_dim, num_ws = 32, 25, W_DIM, NUM_WS
    default_truncation = 1.0  # truncation would blend attribute colours
    #: rays that pass beside the backdrop bowl (image corners from yaw ~0.3 on) show its colour in the app
    display_background = BACKDROP

    def __init__(self, neural_rendering_resolution: int = 64, depth_resolution: int = 24,
                 depth_resolution_importance: int = 24, img_resolution: int = 128, seed: int = 1234):
        super().__init__()
        self.neural_rendering_resolution = neural_rendering_resolution
        self.img_resolution = img_resolution
        self.render_settings = RenderSettings(2.25, 3.3, depth_resolution, depth_resolution_importance)
        self.camera_radius, self.camera_pivot = 2.7, (0.0, 0.0, 0.0)
        self.register_buffer("basis", _orthogonal(seed), persistent=False)  # w = basis @ a
        self.register_buffer("w_avg", self.encode(self._mean_code()), persistent=False)
        self.eval()

    # attributes <-> codes ------------------------------------------------------------------------------------
    @staticmethod
    def _mean_code() -> Tensor:
        a = torch.zeros(CODE_DIM)
        for p in COLOR_PARTS:
            a[_SLOT[p]] = _palette(p).mean(0)
        a[_HAIR_LEN], a[_HEAD_W], a[_HEAD_H], a[_NOSE_L], a[_LIP_W] = 0.5, 1.0, 1.0, 1.0, 1.0
        return a

    def encode(self, a: Tensor) -> Tensor:
        return a @ self.basis.T

    def decode_code(self, w: Tensor) -> Tensor:
        return w @ self.basis

    def attribute_code(self, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """z [N, 32] -> attribute code a [N, 32] and the class index of every attribute [N]."""
        u = 0.5 * (1 + torch.erf(z / math.sqrt(2)))  # uniform in (0, 1)
        n = z.shape[0]
        a = torch.zeros(n, CODE_DIM, device=z.device)
        classes = {}
        for i, p in enumerate(COLOR_PARTS):
            pal = _palette(p).to(z.device)
            idx = (u[:, i] * len(pal)).long().clamp_max(len(pal) - 1)
            classes[p] = idx
            a[:, _SLOT[p]] = (pal[idx] + 0.03 * z[:, 8 + 3 * i: 11 + 3 * i]).clamp(0, 1)
        long = (u[:, 5] > 0.5).long()
        classes["hair_length"] = long
        a[:, _HAIR_LEN] = long.float()
        a[:, _HEAD_W] = 1 + 0.05 * z[:, 23].clamp(-2, 2)
        a[:, _HEAD_H] = 1 + 0.04 * z[:, 24].clamp(-2, 2)
        a[:, _EYE_DX] = 0.006 * z[:, 25].clamp(-2, 2)
        a[:, _NOSE_L] = 1 + 0.12 * z[:, 26].clamp(-2, 2)
        a[:, _LIP_W] = 1 + 0.1 * z[:, 27].clamp(-2, 2)
        a[:, 28:32] = 0.1 * z[:, 28:32]  # inert dimensions: the code is a full 32-d vector
        return a, classes

    def params(self, ws: Tensor) -> HeadParams:
        """ws [N, 14, 32] -> geometry from rows 0-7, colours from rows 8-13."""
        ag = self.decode_code(ws[:, GEOMETRY_ROWS].mean(1))
        ac = self.decode_code(ws[:, COLOR_ROWS].mean(1))
        return HeadParams(colors={p: _clamp(ac[:, _SLOT[p]], 0, 1) for p in COLOR_PARTS},
                          hair_length=_clamp(ag[:, _HAIR_LEN], 0, 1), head_w=_clamp(ag[:, _HEAD_W], 0.8, 1.2),
                          head_h=_clamp(ag[:, _HEAD_H], 0.8, 1.2), eye_dx=_clamp(ag[:, _EYE_DX], -0.02, 0.02),
                          nose_l=_clamp(ag[:, _NOSE_L], 0.6, 1.5), lip_w=_clamp(ag[:, _LIP_W], 0.7, 1.3))

    def attributes(self, ws: Tensor) -> dict[str, Tensor]:
        """Class index [N] of every attribute, recovered from ws (nearest palette colour; hair length > 0.5)."""
        p = self.params(ws)
        out = {}
        for part in COLOR_PARTS:
            out[part] = palette_class(part, p.colors[part])
        out["hair_length"] = (p.hair_length > 0.5).long()
        return out

    def jitter_colors(self, ws: Tensor, amount: float, generator: torch.Generator | None = None) -> Tensor:
        """ws [N, 14, 32] with every part colour moved off its palette: per head a scale s ~ U(0, 1), per channel
        uniform noise in [-s * amount, s * amount], clamped to [0, 1]. The class of a moved colour is still the
        nearest palette colour (``attributes``), so datasets of such heads teach a model the whole colour space
        the world decodes, not only the palette (an edit's colours land between palette entries)."""
        n = ws.shape[0]
        a = self.decode_code(ws[:, COLOR_ROWS].mean(1))
        s = torch.rand(n, 1, generator=generator).to(ws) * amount
        moved = {p: (a[:, _SLOT[p]] + (torch.rand(n, 3, generator=generator).to(ws) * 2 - 1) * s).clamp(0, 1)
                 for p in COLOR_PARTS}
        return self.with_colors(ws, moved)

    def with_colors(self, ws: Tensor, colors: dict[str, Tensor]) -> Tensor:
        """ws [N, 14, 32] with the colours of the parts in ``colors`` (part -> [N, 3] in [0, 1]) set."""
        a = self.decode_code(ws[:, COLOR_ROWS].mean(1))
        for p, c in colors.items():
            a[:, _SLOT[p]] = c.to(a)
        out = ws.clone()
        out[:, COLOR_ROWS] = self.encode(a).unsqueeze(1)
        return out

    def with_hair_length(self, ws: Tensor, h: Tensor) -> Tensor:
        """ws [N, 14, 32] with the hair-length code set to h [N] (0 = short, 1 = long; the world's latents only
        hold 0 or 1, values between grow the hair down gradually; class "long" iff h > 0.5)."""
        a = self.decode_code(ws[:, GEOMETRY_ROWS].mean(1))
        a[:, _HAIR_LEN] = h.to(a)
        out = ws.clone()
        out[:, GEOMETRY_ROWS] = self.encode(a).unsqueeze(1)
        return out

    def attribute_names(self, ws: Tensor) -> list[dict[str, str]]:
        idx = self.attributes(ws)
        return [{k: ATTRIBUTES[k][int(v[i])] for k, v in idx.items()} for i in range(ws.shape[0])]

    # generator interface ---------------------------------------------------------------------------------
    def mapping(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **_unused) -> Tensor:
        self.check_z(z)
        if c is not None:
            check_camera(c, self.c_dim)
        w = self.encode(self.attribute_code(z)[0].to(self.basis))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([self.w_avg.lerp(ws[:, :cutoff], truncation_psi), ws[:, cutoff:]], 1)
        return ws

    def field(self, ws: Tensor, noise_mode: str = "const", generator=None,
              eye_scale: Tensor | None = None) -> SyntheticHeadField:
        """``eye_scale`` [N]: the heads with their eyes' radius scaled (``HeadParams.eye_scale``; no latent does)."""
        p = self.params(self.check_ws(ws))
        return SyntheticHeadField(p if eye_scale is None else dataclasses.replace(p, eye_scale=eye_scale.to(ws)))

    def expand_prompt(self, prompt: str) -> list[str]:
        """A bare part name ("eyes", "mouth") is expanded to the attribute-bearing phrases MiniCLIP was trained on
        ("brown eyes", "blue eyes", "green eyes"), whose relevance maps are averaged; other prompts stay as given."""
        words = prompt.lower().split()
        part = {"eyes": "eyes", "eye": "eyes", "iris": "eyes", "hair": "hair", "lips": "lips", "lip": "lips",
                "mouth": "lips", "nose": "nose", "skin": "skin", "face": "skin"}.get(words[-1] if words else "")
        if part is None or any(w in ATTRIBUTES.get(part, ()) for w in words):
            return [prompt]
        tpl = "a {} nose" if part == "nose" else "{} " + ("eyes" if part == "eyes" else part)
        return [tpl.format(c) for c in ATTRIBUTES[part]]

    def label_image(self, ws: Tensor, c: Tensor, resolution: int | None = None,
                    preset=None, eye_scale: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Ground-truth label image [N, R, R] (0 = background, k = PARTS[k-1]) and the render; ``eye_scale`` [N]:
        the heads with their eyes' radius scaled (``HeadParams.eye_scale``; None = the world's)."""
        out = self.render_field(self.field(ws, eye_scale=eye_scale), ws, c, resolution, preset=preset,
                                generator=torch.Generator(device=ws.device).manual_seed(0))
        probs = (out["image_features"][:, 3:] + 1) / 2  # composited memberships
        best, idx = probs.max(1)
        return torch.where(best > 0.5, idx + 1, torch.zeros_like(idx)), out

    def part_labels(self, ws: Tensor, points: Tensor) -> Tensor:
        """Ground-truth label [N, P] of 3D points: the part with the highest membership where the density is
        high (inside the head), else 0."""
        field = self.field(ws)
        f = field.features(points)
        inside = f[..., 0] > 50
        probs, idx = f[..., 4:].max(-1)
        return torch.where(inside & (probs > 0.5), idx + 1, torch.zeros_like(idx))


def captions_for(attrs: dict[str, str], rng=None, full: bool = False) -> str:
    """A caption consistent with ``attrs`` (names per attribute). ``full`` mentions everything."""
    import random
    rng = rng or random
    hair = f"{attrs['hair_length']} {attrs['hair']} hair"
    phrases = {"skin": f"{attrs['skin']} skin", "eyes": f"{attrs['eyes']} eyes", "hair": hair,
               "lips": f"{attrs['lips']} lips", "nose": f"a {attrs['nose']} nose"}
    keys = list(phrases) if full else rng.sample(list(phrases), rng.randint(1, len(phrases)))
    if not full:
        rng.shuffle(keys)
    items = [phrases[k] for k in keys]
    body = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"a face with {body}"


def check_attrs(attrs: dict[str, str]) -> None:
    for k, v in attrs.items():
        if k not in ATTRIBUTES or v not in ATTRIBUTES[k]:
            raise InputError(f"unknown attribute {k}={v!r}")
