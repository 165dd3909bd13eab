"""Measuring edits on the synthetic world, where the ground truth is known (issue: editing core).

For held-out heads and a fixed set of views:
* 3D mask IoU: the attention field's mask vs the ground-truth part at the *surface points* of the source (the
  expected ray termination of every opaque pixel of every view), thresholded at 0.5;
* locality: PSNR of the edited render against the source outside the ground-truth part (source and target part
  regions, dilated by 2 px), and inside it;
* success: the independent attribute classifier reads the target attribute value on the edited renders (majority
  over the views of a head); identity: every other attribute reads the same as on the source (majority over the
  views), and the stricter per-view identity: the share of views where every other attribute reads the same;
* target latent: the world's ground-truth attributes of each edit's raw target latent ws + mapper(ws) carry that
  edit's target value (the mapper's share of success, before the mask and the renderer).
"""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import dilate, iou, psnr
from ..rendering import sample_rays
from ..synthetic.data import ATTR_KEYS, EVAL_SEED_BASE, latents
from ..synthetic.world import ATTRIBUTES, PARTS, SyntheticHeads
from .editor import Edit, LocalEditor

EVAL_VIEWS = [(y, p) for p in (-0.12, 0.12) for y in (-0.45, -0.15, 0.15, 0.45)]  # 8 views


def eval_cameras(G, views=EVAL_VIEWS) -> torch.Tensor:
    return torch.cat([G.camera(y, p) for y, p in views])


def _labels_from_features(probs: torch.Tensor) -> torch.Tensor:
    best, idx = probs.max(-1)
    return torch.where(best > 0.5, idx + 1, torch.zeros_like(idx))


@torch.no_grad()
def evaluate_edits(G: SyntheticHeads, edits: list[Edit], targets: list[dict[str, str]], parts: list[str],
                   heads: int = 20, classifier=None, seed_base: int = EVAL_SEED_BASE + 70_000,
                   views=EVAL_VIEWS, contact_rows: int = 6) -> tuple[dict, np.ndarray]:
    """Metrics for one edit or a sequence (applied in order). ``targets``: the attribute values each edit should
    produce, e.g. [{"eyes": "blue"}]; ``parts``: the ground-truth part of each edit ("eyes", "hair", ...).
    Returns (metrics dict, contact sheet HxWx3 uint8)."""
    from ..media import to_uint8
    editor = LocalEditor(G, edits)
    cams = eval_cameras(G, views)
    v = cams.shape[0]
    part_ids = [PARTS.index(p) + 1 for p in parts]
    want = {k: ATTRIBUTES[k].index(val) for t in targets for k, val in t.items()}
    per_head = {"iou3d": [], "psnr_out": [], "psnr_in": [], "success": [], "identity": [], "success_changed": [],
                "target_latent": [], "identity_views": []}
    rates = ("success", "identity", "success_changed", "target_latent", "identity_views")
    sheet = []
    for h in range(heads):
        ws = latents(G, [seed_base + h]).expand(v, -1, -1).contiguous()
        gen = torch.Generator().manual_seed(h)
        res = editor.render(ws, cams, preset="full", generator=gen)
        # ground-truth part regions in 2D: source labels and the final target latent's labels
        src_lab, _ = G.label_image(ws, cams)
        wts = [e.target_latent(ws) for e in edits]
        tgt_lab, _ = G.label_image(wts[-1], cams)
        raw = [G.attribute_names(w[:1])[0] for w in wts]
        per_head["target_latent"].append(float(all(n[k] == val for n, t in zip(raw, targets) for k, val in t.items())))
        region = torch.zeros_like(src_lab, dtype=torch.bool)
        for pid in part_ids:
            region |= (src_lab == pid) | (tgt_lab == pid)
        region_d = dilate(region, 2)
        per_head["psnr_out"].append(psnr(res.edited_raw, res.source_raw, ~region_d).mean().item())
        per_head["psnr_in"].append(psnr(res.edited_raw, res.source_raw, region).mean().item())
        # 3D IoU at surface points
        r = res.source_raw.shape[-1]
        o, d = sample_rays(cams[:, :16].reshape(-1, 4, 4), cams[:, 16:25].reshape(-1, 3, 3), r)
        depth = res.source_depth.reshape(v, -1, 1)
        opaque = (res.opacity.reshape(v, -1) > 0.5) & torch.isfinite(depth[..., 0])
        pts = o + d * depth.nan_to_num(0, 0, 0)
        src_field, _, layers = editor.composite_field(ws)
        feats = src_field.features(pts)
        gt_lab = _labels_from_features(feats[..., 4:]) if feats.shape[-1] >= 10 else None
        ious = []
        for k, layer in enumerate(layers):
            fs = layer.source.features(pts)
            ft = layer.target.features(pts)
            m = layer.mask(pts, fs, ft)[..., 0]
            gt = gt_lab == part_ids[k]
            pred = (m > 0.5) & opaque
            ious.append(iou(pred.reshape(1, -1), (gt & opaque).reshape(1, -1)).item())
        per_head["iou3d"].append(float(np.mean(ious)))
        # classifier
        if classifier is not None:
            ps = classifier.predict(res.source_raw)
            pe = classifier.predict(res.edited_raw)
            vote = {k: torch.mode(pe[k]).values.item() for k in ATTR_KEYS}
            vote_s = {k: torch.mode(ps[k]).values.item() for k in ATTR_KEYS}
            per_head["success"].append(float(all(vote[k] == want[k] for k in want)))
            if any(vote_s[k] != want[k] for k in want):  # heads that did not already have the target value
                per_head["success_changed"].append(per_head["success"][-1])
            per_head["identity"].append(float(all(vote[k] == vote_s[k] for k in ATTR_KEYS if k not in want)))
            same = torch.stack([pe[k] == ps[k] for k in ATTR_KEYS if k not in want]).all(0)  # [V]
            per_head["identity_views"].append(same.float().mean().item())
        if h < contact_rows:
            i = min(2, v - 1)  # the third of the default views (near-frontal), or the last of fewer
            mask = ((res.mask[i, 0] * 255).round().byte().numpy())
            mask = np.stack([mask] * 3, -1)
            sheet.append(np.concatenate([to_uint8(res.source_raw[i]), to_uint8(res.edited_raw[i]), mask], 1))
    summary = {}
    for k, vals in per_head.items():
        if not vals:
            continue
        arr = np.asarray(vals, dtype=np.float64)
        if k in rates:
            summary[f"{k}_rate"] = round(float(arr.mean()), 4)
        else:
            summary[f"{k}_median"] = round(float(np.median(arr)), 4)
            summary[f"{k}_mean"] = round(float(arr.mean()), 4)
    summary.update({"heads": heads, "views": v, "targets": targets, "parts": parts, "head_seeds": [seed_base, seed_base + heads - 1]})
    return summary, np.concatenate(sheet, 0)
