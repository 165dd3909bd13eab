"""Applying trained edits: compose source, target and mask fields and render them (method.md §1, §3, §9).

For a source latent ws and an edit (mapper M, attention field A, optional deformation T, strength lambda):

    wt = ws + lambda * M(ws)
    source render (stratified + importance samples, their depths and weights are kept)
    at the *same* samples:  m = A(desc_s(x'), x, ws, wt[, desc_t(x)]),  x' = x + T(x, ws, wt)
                            F = (1 - m) F_s(x') + m F_t(x)  -> decoder -> ray march -> (SR)
    2D mask = 2 * sum_i w_i(sigma_s) m_i - 1  (rendered with the source weights)

An edit with ``deform_target`` (:class:`DeformedBlend`) instead carries the part with its mask: F = (1 - m') F_s(x)
+ m' F_t(x') with m' = A(desc_s(x'), x', ws, wt): only where the deformation carries the part does anything change.

Several edits stack: edit k blends its target into the composite of edits 1..k-1 (its attention field reads the
composite's descriptors). Its target latent is ws + lambda_k M_k(ws) plus the residuals of the earlier edits *of the
same part* (same mask prompt): its mask replaces that part, so its target must keep what they changed there (long
hair after red hair is long *red* hair), and its mask is the union with theirs (the part as edited so far). Edits of
other parts keep their own targets and masks: the mappers are not perfectly disentangled (eyes_blue's residual also
moves the hair colour), and their masks do not overlap.

One exception to the given order (:func:`application_order`): an edit without a deformation network is applied
*before* an earlier edit of the same part that has one. A deformation moves the part (big eyes), while a colour
edit's attention field finds the part where it was trained to find it (the world's eye positions): applied after
the deformation it recolours only the original eyes and leaves the grown ring in the old colour; applied under it,
the deformation carries the new colour into the grown part. So "eyes_big then eyes_blue" gives the same head as
"eyes_blue then eyes_big": big blue eyes. (That was session 23's eyes_big, a method.md Eq. 7 deformation; a carried
one, ``deform_target``, moves the eyes' own features, and a colour edit after it finds the grown eyes as well.)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..fields import Field
from ..generator import Generator, Preset, get_preset
from ..rendering import (composite_mask, eval_samples, gather_samples, march, merge_samples, render, sample_rays,
                         weighted_samples)
from ..rendering.sampling import importance_depths
from .modules import AttentionField, DeformationField, LatentResidualMapper


class EditModules(nn.Module):
    """The trained parts of one edit."""

    def __init__(self, num_ws: int, w_dim: int, descriptor_dim: int, mapper_groups=("fine",),
                 afn_kind: str = "mlp", afn_hidden: int = 64, use_xyz: bool = True, deformation: bool = False,
                 dn_hidden: int = 64, afn_bias_init: float = 0.0, afn_xyz_frequencies: int = 0,
                 dn_xyz_frequencies: int = 0, dn_symmetric: bool = False, dn_max_offset: float = 0.0,
                 dn_bound_length: bool = False):
        super().__init__()
        self.mapper = LatentResidualMapper(num_ws, w_dim, tuple(mapper_groups))
        self.attention = AttentionField(descriptor_dim, w_dim, afn_kind, afn_hidden, use_xyz, afn_bias_init,
                                        afn_xyz_frequencies)
        self.deformation = (DeformationField(w_dim, dn_hidden, dn_xyz_frequencies, dn_symmetric, dn_max_offset,
                                             dn_bound_length) if deformation else None)


@contextmanager
def _not_recording(field: Field):
    """Every MaskedBlend reachable from ``field`` stops recording masks for the duration."""
    layers, todo = [], [field]
    while todo:
        f = todo.pop()
        if isinstance(f, MaskedBlend):
            layers.append(f)
            todo += [f.source] + ([f.mask_source] if f.mask_source is not None else [])
        elif isinstance(f, DeformedField):
            todo.append(f.field)
    saved = [layer.recording for layer in layers]
    for layer in layers:
        layer.recording = False
    try:
        yield
    finally:
        for layer, r in zip(layers, saved):
            layer.recording = r


class DeformedField(Field):
    def __init__(self, field: Field, dn: DeformationField, ws: Tensor, wt: Tensor):
        self.field, self.dn, self.ws, self.wt = field, dn, ws, wt
        self.feature_dim, self.color_dim = field.feature_dim, field.color_dim

    def features(self, points: Tensor) -> Tensor:
        # the layers below are read at the deformed points: what they compute there is not their mask at the
        # render's samples (the layer above reads that from its mask source), so they do not record it
        with _not_recording(self.field):
            return self.field.features(self.dn(points, self.ws, self.wt))

    def decode(self, features: Tensor):
        return self.field.decode(features)

    def descriptor(self, features: Tensor) -> Tensor:
        return self.field.descriptor(features)


class MaskedBlend(Field):
    """F = (1 - m) F_source + m F_target with m from an attention field; records every m it computes so that the
    mask can be volume-rendered with the source weights afterwards."""

    def __init__(self, source: Field, target: Field, attention: AttentionField | None, ws: Tensor, wt: Tensor,
                 texture_only: bool = False, threshold: float | None = None, binarize: bool = False,
                 mask_source: Field | None = None):
        """``attention=None``: m = 1 everywhere (an edit trained without a mask, the global-edit ablation).
        ``mask_source``: the field whose descriptors the attention field reads (default: ``source``); with a
        deformation network the undeformed source, as in training (method.md Eq. 7 reads the deformed one; the
        official trainer never deformed, and ours supervises the mask on the undeformed source's samples)."""
        self.source, self.target, self.attention = source, target, attention
        self.mask_source = mask_source
        self.ws, self.wt, self.texture_only, self.threshold = ws, wt, texture_only, threshold
        self.binarize = binarize
        self.feature_dim, self.color_dim = source.feature_dim, source.color_dim
        self.masks: list[Tensor] = []
        #: False while a layer above reads this one at other points (a deformation's): masks are not recorded, but
        #: ``last`` (what the layers of ``union`` read) still follows every evaluation
        self.recording = True
        self.last: Tensor | None = None
        #: earlier layers of the same part (set by LocalEditor): their latest masks, taken at the same points while
        #: this layer's source was evaluated, join this layer's (the part as edited so far is their union)
        self.union: list[MaskedBlend] = []

    def _joined(self, m: Tensor) -> Tensor:
        for layer in self.union:
            m = torch.maximum(m, layer.last.to(m.dtype))
        return m

    def descriptor(self, features: Tensor) -> Tensor:
        return self.source.descriptor(features)

    def decode(self, features: Tensor):
        return self.source.decode(features)

    def _record(self, m: Tensor) -> None:
        self.last = m
        if self.recording:
            self.masks.append(m)

    def mask(self, points: Tensor, fs: Tensor, ft: Tensor | None) -> Tensor:
        if self.attention is None:
            return torch.ones(*fs.shape[:-1], 1, device=fs.device, dtype=fs.dtype)
        desc_t = self.target.descriptor(ft) if self.attention.kind == "attention" else None
        m = self.attention(self.source.descriptor(fs), points, self.ws, self.wt, desc_t)
        if self.attention.training:
            return m
        if self.binarize:  # 1 above the threshold: new geometry comes out solid, not half-blended
            m = (m > (0.5 if self.threshold is None else self.threshold)).to(m.dtype)
        elif self.threshold is not None:
            m = torch.where(m > self.threshold, m, torch.zeros_like(m))
        return m

    def part_mask(self, points: Tensor) -> Tensor:
        """The attention field's mask [N, P, 1] at ``points`` (with the inference threshold): where it finds the part.
        The target is evaluated only for the "attention" kind, the one that reads it."""
        reads_target = self.attention is not None and self.attention.kind == "attention"
        return self.mask(points, self.mask_features(points), self.target.features(points) if reads_target else None)

    def mask_features(self, points: Tensor, fs: Tensor | None = None) -> Tensor:
        """The source features the attention field reads at ``points`` (``fs``: the source's, if already known)."""
        if self.mask_source is None:
            return self.source.features(points) if fs is None else fs
        return self.mask_source.features(points)

    def _blend(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """-> (source features, blended features) at ``points``; records the mask."""
        fs, ft = self.source.features(points), self.target.features(points)
        m = self._joined(self.mask(points, self.mask_features(points, fs), ft))
        self._record(m)
        return fs, torch.lerp(fs, ft, m.to(fs.dtype))

    def features(self, points: Tensor) -> Tensor:
        return self._blend(points)[1]

    def __call__(self, points: Tensor):
        fs, fused = self._blend(points)
        colors, sigma = self.source.decode(fused)
        if self.texture_only:
            sigma = self.source.decode(fs)[1]
        return colors, sigma


class DeformedBlend(MaskedBlend):
    """An edit whose deformation carries the part with its mask (``Edit.deform_target``):

        F = (1 - m') F_s(x) + m' F_t(x'),   x' = x + T(x, ws, wt),   m' = A(desc_s(x'), x', ws, wt)

    ``target`` None: the target is the source (an edit without a mapper: the head as edited so far). The attention
    field finds the part on the source (:meth:`part_mask`, what the 3D IoU measures); read where the target is read,
    its mask goes wherever the deformation carries the part, so what changes is the moved (grown) part and the rest
    of the head is the source's exactly. At the mask's edge F_t(x') is the part's own edge: no seam. (Method.md
    Eq. 7 instead deforms the source outside the mask; there, the original part's edge stayed inside a grown one.)"""

    def __init__(self, source: Field, target: Field | None, dn: DeformationField, attention: AttentionField | None,
                 ws: Tensor, wt: Tensor, texture_only: bool = False, threshold: float | None = None,
                 binarize: bool = False):
        super().__init__(source, target if target is not None else source, attention, ws, wt, texture_only,
                         threshold, binarize)
        self.own_target = target is not None
        self.dn = dn

    def _blend(self, points: Tensor) -> tuple[Tensor, Tensor]:
        fs = self.source.features(points)
        xd = self.dn(points, self.ws, self.wt)
        with _not_recording(self.source):  # read elsewhere: not this layer's points
            fsd = self.source.features(xd)
            ft = self.target.features(xd) if self.own_target else fsd
        m = self.mask(xd, fsd, ft)
        self._record(m)
        return fs, torch.lerp(fs, ft, m.to(fs.dtype))


@dataclass
class Edit:
    """A trained edit ready to apply: modules + how to apply them."""

    modules: EditModules
    strength: float = 1.0
    texture_only: bool = False
    threshold: float | None = None
    name: str = "edit"
    #: the mask at inference is 1 above the threshold (0.5 without one) and 0 below (the config's binarize_mask)
    binarize: bool = False
    #: False for an edit trained without the attention field (global-edit ablation): m = 1 everywhere
    use_mask: bool = True
    #: the mask prompt it was trained with ("hair"); stacked edits of the same part compose their target latents
    part: str | None = None
    #: the deformation carries the part with its mask instead of moving the source outside it (DeformedBlend,
    #: EditConfig.deform_target)
    deform_target: bool = False

    def target_latent(self, ws: Tensor, strength: float | None = None) -> Tensor:
        s = self.strength if strength is None else strength
        return ws + s * self.modules.mapper(ws)


@dataclass
class EditResult:
    """Images [N, 3, H, W] in [-1, 1]; raw renders [N, 3, R, R]; mask [N, 1, R, R] in [0, 1]; ``opacity`` and
    ``edited_opacity`` [N, 1, R, R] in [0, 1] (the source's and the edited render's accumulated ray weights)."""

    source: Tensor
    edited: Tensor
    mask: Tensor
    source_raw: Tensor
    edited_raw: Tensor
    target: Tensor | None = None
    source_depth: Tensor | None = None
    opacity: Tensor | None = None
    #: the edited render's every channel [N, C, R, R] (C = the field's colour channels; the synthetic world's carry
    #: the part memberships after RGB, so the edited head's part labels are known)
    edited_features: Tensor | None = None
    edited_opacity: Tensor | None = None


def _same_part(a: Edit, b: Edit) -> bool:
    return a.part is not None and b.part is not None and a.part.strip().lower() == b.part.strip().lower()


#: why :func:`application_order` may differ from the given order (the CLI and the app say it when it does)
REORDER_REASON = "a colour edit goes under its part's change of shape, which carries it into the moved part"


def application_order(edits: list[Edit]) -> list[int]:
    """Indices of ``edits`` in the order they are applied: as given, except that an edit without a deformation
    network moves before the first earlier edit of the same part that has one (module docstring)."""
    order: list[int] = []
    for k, e in enumerate(edits):
        pos = len(order)
        if e.modules.deformation is None:
            pos = next((i for i, j in enumerate(order)
                        if edits[j].modules.deformation is not None and _same_part(edits[j], e)), pos)
        order.insert(pos, k)
    return order


class LocalEditor:
    """Applies one or several edits to latents of a generator (any :class:`~lenerf.generator.Generator`).

    ``edits`` holds them in the order they are applied (:func:`application_order` of the given list); ``order[k]``
    is the position in the given list of ``edits[k]``. Per-edit arguments (``strengths``) are in the given order."""

    def __init__(self, G: Generator, edits: list[Edit]):
        self.G = G
        self.order = application_order(list(edits))
        self.edits = [edits[i] for i in self.order]

    def target_latents(self, ws: Tensor, strengths: list[float] | None = None) -> list[Tensor]:
        """The edits' target latents [w_1, ..., w_K] (each [N, num_ws, w_dim], in the order applied): w_k = ws +
        lambda_k M_k(ws) + the residuals lambda_j M_j(ws) of the earlier edits j of the same part. Every mapper
        reads ws, the latent it was trained on. Adding every earlier residual (or feeding edit k's mapper the
        previous target) turned 50% of the held-out heads blue-eyed and red-haired with eyes_blue then hair_red
        instead of 95% (docs/editing.md, stacked edits)."""
        own = [e.target_latent(ws, None if strengths is None else strengths[self.order[k]])
               for k, e in enumerate(self.edits)]
        out = []
        for k, e in enumerate(self.edits):
            w = own[k]
            for j in range(k):
                if _same_part(self.edits[j], e):
                    w = w + (own[j] - ws)
            out.append(w)
        return out

    def composite_field(self, ws: Tensor, strengths: list[float] | None = None, noise_mode: str = "const"):
        """-> (source field, composite field, list of MaskedBlend layers, in the order applied)."""
        src = self.G.field(ws, noise_mode)
        field, layers = src, []
        for k, (e, wt) in enumerate(zip(self.edits, self.target_latents(ws, strengths))):
            dn, attention = e.modules.deformation, e.modules.attention if e.use_mask else None
            if dn is not None and e.deform_target:  # without a mapper the target is the head as edited so far
                tgt = None if not e.modules.mapper.groups else self.G.field(wt, noise_mode)
                blend = DeformedBlend(field, tgt, dn, attention, ws, wt, e.texture_only, e.threshold, e.binarize)
            else:
                tgt = self.G.field(wt, noise_mode)
                base = DeformedField(field, dn, ws, wt) if dn is not None else field
                blend = MaskedBlend(base, tgt, attention, ws, wt, e.texture_only, e.threshold, e.binarize,
                                    mask_source=field if base is not field else None)
            # earlier same-part layers join the mask, unless a deformation lies between (a deformed field is read
            # elsewhere, so those layers' latest masks would not be at this layer's points)
            blend.union = [layers[j] for j in range(k) if _same_part(self.edits[j], e)
                           and all(d.modules.deformation is None for d in self.edits[j + 1:k + 1])]
            layers.append(blend)
            field = blend
        return src, field, layers

    def render(self, ws: Tensor, c: Tensor, preset: str | Preset | None = "preview",
               strengths: list[float] | None = None, generator: torch.Generator | None = None,
               with_target: bool = False, chunk_points: int = 1 << 17, fast: bool = True,
               edited_importance: int | None = None) -> EditResult:
        """Render source and edited heads (and the combined 3D mask) from cameras c [N, 25].

        The edited field is read at the source's samples (the fusion's points), so where the edits change nothing
        the edited render is the source's exactly. An edit that is not texture-only can put density where the
        source has none (grown hair), where only the source's stratified samples land: read there alone a thin new
        part came out grainy. So such edits also get an importance pass of their own, ``edited_importance`` depths
        per ray (None: the preset's importance count; 0: none), kept only where an edit's mask is on
        (:meth:`_render_with_importance`).

        ``fast`` (texture-only edits without deformation): the source's features are kept from its render and the
        edits are evaluated only at samples that carry ray weight (> 1e-4); elsewhere the edited colours are the
        source's. The result differs from the plain path by at most the colour carried by those weights."""
        G = self.G
        p = get_preset(preset)
        res = int(p.neural_rendering_resolution or G.neural_rendering_resolution)
        settings = G.render_settings.replace(depth_resolution=p.depth_resolution,
                                             depth_resolution_importance=p.depth_resolution_importance)
        n = c.shape[0]
        origins, dirs = sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:25].reshape(-1, 3, 3), res)
        src_field, field, layers = self.composite_field(ws, strengths)
        fast = fast and all(e.texture_only and e.modules.deformation is None for e in self.edits)
        src = render(src_field, origins, dirs, settings, generator=generator, chunk_points=chunk_points,
                     return_samples=True, capture_features=fast)
        if fast:  # densities unchanged: the edited render's opacity is the source's
            edited_colors, masks = self._blend_weighted_samples(src, src_field, layers, origins, dirs, settings)
            edited_opacity = src.weights_sum
        else:
            extra = settings.depth_resolution_importance if edited_importance is None else edited_importance
            if extra > 0 and not all(e.texture_only for e in self.edits):
                edited_colors, edited_opacity = self._render_with_importance(
                    field, layers, src.sample_depths, origins, dirs, settings, extra, generator, chunk_points)
            else:
                edited = render(field, origins, dirs, settings, depths=src.sample_depths, chunk_points=chunk_points)
                edited_colors, edited_opacity = edited.colors, edited.weights_sum
            masks = [torch.cat(layer.masks, 1) for layer in layers]
        # union of the edits' masks, each volume-rendered with the source weights
        mask = torch.zeros_like(src.weights_sum)
        for m in masks:
            m = m.reshape(n, -1, src.sample_depths.shape[2], 1)
            mask = torch.maximum(mask, composite_mask(m, src.sample_weights))

        s_img, s_feat = G.images(src.colors, ws, p, res)
        e_img, e_feat = G.images(edited_colors, ws, p, res)
        target = None
        if with_target and self.edits:
            wt = self.target_latents(ws, strengths)[-1]
            target = G.render_field(G.field(wt), wt, c, preset=p, generator=generator)["image"]
        to_img = lambda t: t.permute(0, 2, 1).reshape(n, 1, res, res)  # noqa: E731
        return EditResult(s_img, e_img, to_img(mask), s_feat[:, :3], e_feat[:, :3], target, to_img(src.depth),
                          to_img(src.weights_sum), e_feat, to_img(edited_opacity))

    @staticmethod
    def _render_with_importance(field, layers, depths: Tensor, origins: Tensor, dirs: Tensor, settings, extra: int,
                                generator: torch.Generator | None, chunk_points: int) -> tuple[Tensor, Tensor]:
        """The edited render [N, M, C] in [-1, 1] and its opacity [N, M, 1] with the edited field's own importance
        pass, a chunk of rays at a time (memory bounded by ``chunk_points``).

        The composite field is read at the source's sorted ``depths`` [N, M, S, 1] (its masks recorded there), then
        at ``extra`` depths per ray drawn from that render's weights; a new depth is kept only where an edit's mask
        is on (> 1e-3; else it becomes a copy of the ray's last sample: an interval of length 0, weight 0), and a
        ray keeps exactly its render at the source's samples unless one is kept. The new depths' masks are not
        recorded: the mask is rendered at the source's samples with the source's weights. Only the rays where an
        edit's mask is on at one of the source's samples get the new depths (the mask varies slowly between two
        samples; a frame's rays are chosen once for all its views, their union), so a small part costs little."""
        n, m_rays, s_count, _ = depths.shape
        u_all = torch.rand(n * m_rays, extra, device=origins.device, dtype=origins.dtype,
                           generator=generator).reshape(n, m_rays, extra)
        rays_per_chunk = max(1, chunk_points // (n * (s_count + extra)))
        colors, opacity = [], []
        for a in range(0, m_rays, rays_per_chunk):
            b = min(m_rays, a + rays_per_chunk)
            o, d, z0 = origins[:, a:b], dirs[:, a:b], depths[:, a:b]
            counts = [len(layer.masks) for layer in layers]
            c0, s0, _ = eval_samples(field, o, d, z0)  # the layers record their masks here
            comp, _, w, _ = march(c0, s0, z0)
            opa = w.sum(-2)
            col = settings.to_colors(comp, opa)
            near = torch.zeros(n, b - a, dtype=torch.bool, device=origins.device)
            for layer, c in zip(layers, counts):
                near |= (torch.cat(layer.masks[c:], 1).reshape(n, b - a, s_count) > 1e-3).any(-1)
            sel = near.any(0).nonzero().squeeze(1)  # [R]: rays with the mask on in some view
            if sel.numel():
                pick = lambda t: t[:, sel]  # noqa: E731
                z0, c0, s0, w = pick(z0), pick(c0), pick(s0), pick(w)
                u = u_all[:, a:b][:, sel].reshape(-1, extra)
                z_new = torch.sort(importance_depths(z0, w, u), dim=-2).values
                counts = [len(layer.masks) for layer in layers]
                c1, s1, _ = eval_samples(field, pick(o), pick(d), z_new)
                on = torch.zeros(n, sel.numel(), extra, 1, dtype=torch.bool, device=origins.device)
                for layer, c in zip(layers, counts):
                    on |= torch.cat(layer.masks[c:], 1).reshape(n, sel.numel(), extra, 1) > 1e-3
                    del layer.masks[c:]
                last = lambda t: t[..., -1:, :].expand(-1, -1, extra, -1)  # noqa: E731
                keep = lambda new, old: torch.where(on, new, last(old))  # noqa: E731
                z, c_all, s_all = merge_samples(z0, keep(z_new, z0), (c0, keep(c1, c0)), (s0, keep(s1, s0)))
                comp_all, _, w_all, _ = march(c_all, s_all, z)
                ray, opa_all = on.any(-2), w_all.sum(-2)
                col[:, sel] = torch.where(ray, settings.to_colors(comp_all, opa_all), col[:, sel])
                opa[:, sel] = torch.where(ray, opa_all, opa[:, sel])
            colors.append(col)
            opacity.append(opa)
        return torch.cat(colors, 1), torch.cat(opacity, 1)

    @staticmethod
    def _blend_weighted_samples(src, src_field, layers, origins, dirs, settings):
        """Edited colours [N, M, C] in [-1, 1] and per-edit masks [N, M*S, 1] at the source's samples, with the
        target fields and attention fields evaluated only where the source's ray weights are non-negligible."""
        n, m_rays, s_count, _ = src.sample_depths.shape
        pts = (origins.unsqueeze(-2) + src.sample_depths * dirs.unsqueeze(-2)).reshape(n, -1, 3)
        fs = src.sample_features.reshape(n, m_rays * s_count, -1)
        idx = weighted_samples(src.sample_weights)  # [N, K]
        x, f = gather_samples(pts, idx), gather_samples(fs, idx)
        masks = []
        for layer in layers:
            # the "attention" variant reads the target's descriptors too
            if layer.attention is not None and layer.attention.kind == "attention":
                ft = layer.target.features(x)
                mk = layer._joined(layer.mask(x, f, ft))
                f = torch.lerp(f, ft, mk.to(f.dtype))
            else:  # mask first, then the target field only where the mask is not ~0 (|m| <= 1e-3 keeps F_s)
                mk = layer._joined(layer.mask(x, f, None))
                sub = weighted_samples(mk.unsqueeze(1), 1e-3, pad_neighbours=False)  # [N, K']
                ft = layer.target.features(gather_samples(x, sub))
                blended = torch.lerp(gather_samples(f, sub), ft, gather_samples(mk, sub).to(f.dtype))
                f = f.scatter(1, sub.unsqueeze(-1).expand(-1, -1, f.shape[-1]), blended)
            layer._record(mk)  # at x, where the later layers of its part join it
            masks.append(torch.zeros(n, fs.shape[1], 1, device=fs.device, dtype=mk.dtype).scatter(
                1, idx.unsqueeze(-1), mk))
        colors, sigma = src_field.decode(fs)
        colors = colors.scatter(1, idx.unsqueeze(-1).expand(-1, -1, colors.shape[-1]), src_field.decode(f)[0])
        comp, _, w, _ = march(colors.reshape(n, m_rays, s_count, -1), sigma.reshape(n, m_rays, s_count, 1),
                              src.sample_depths)
        return settings.to_colors(comp, w.sum(-2)), masks
