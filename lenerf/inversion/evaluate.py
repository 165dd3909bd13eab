"""Inversion measured on the synthetic world, where the truth is known: render a held-out head from an unseen
view, invert the render, compare the reconstruction with the truth at the input view and at a novel view
(input yaw + 0.4), and the attributes decoded from the recovered ws with the true ones."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..synthetic.data import EVAL_SEED_BASE
from .invert import InversionConfig, _render, invert, psnr


def evaluate_inversion(G, heads: int = 8, cfg: InversionConfig = InversionConfig(), novel_yaw: float = 0.4,
                       perceptual=None, seed: int = 0, progress: bool = True,
                       same_view: bool = False) -> tuple[dict, np.ndarray]:
    """-> (metrics, contact sheet uint8: per head truth | reconstruction at the input view, truth | recon novel).
    ``same_view``: the input view is the frontal camera and known (a self-consistency check of the optimiser)."""
    from ..generator import get_preset
    from ..media import to_uint8
    from .perceptual import load_perceptual
    perceptual = perceptual or load_perceptual()
    rng = np.random.RandomState(seed)
    preset = get_preset(cfg.preset)
    size = preset.output_resolution or G.img_resolution
    rows, sheet = [], []
    for k in range(heads):
        dev = next(G.parameters(), torch.empty(0)).device
        z = torch.from_numpy(np.random.RandomState(EVAL_SEED_BASE + 50_000 + k).randn(1, G.z_dim)).float().to(dev)
        yaw, pitch = (0.0, 0.0) if same_view else (float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.2, 0.2)))
        with torch.no_grad():
            ws_true = G.mapping(z, G.camera(0.0, 0.0), truncation_psi=G.default_truncation)
            img = _render(G, ws_true, torch.tensor(yaw), torch.tensor(pitch), preset, size)
            if same_view:
                img = img.clamp(-1, 1)
        t0 = time.time()
        inv = invert(G, img, cfg, perceptual=perceptual, progress=progress)
        wall = time.time() - t0
        with torch.no_grad():
            rec = _render(G, inv.ws, torch.tensor(inv.yaw), torch.tensor(inv.pitch), preset, size)
            nyaw = float(np.clip(yaw + novel_yaw, -0.8, 0.8))
            true_n = _render(G, ws_true, torch.tensor(nyaw), torch.tensor(pitch), preset, size)
            # the novel view is taken relative to the recovered camera, as a user would turn the head
            rec_n = _render(G, inv.ws, torch.tensor(inv.yaw + (nyaw - yaw)), torch.tensor(inv.pitch), preset, size)
        truth = hasattr(G, "attribute_names")  # the synthetic world; other generators: self-consistency only
        a_true, a_rec = (G.attribute_names(ws_true)[0], G.attribute_names(inv.ws)[0]) if truth else ({}, {})
        rows.append({"head": k, "yaw": round(yaw, 3), "pitch": round(pitch, 3), "yaw_est": round(inv.yaw, 3),
                     "pitch_est": round(inv.pitch, 3), "psnr_input": round(psnr(rec, img), 2),
                     "psnr_novel": round(psnr(rec_n, true_n), 2),
                     "attributes_correct": sum(a_true[n] == a_rec[n] for n in a_true),
                     "attributes": max(1, len(a_true)),
                     "all_attributes_correct": a_true == a_rec, "steps_run": inv.meta["steps_run"],
                     "stop": inv.meta["stop"], "wall_s": round(wall, 1)})
        sheet.append(np.concatenate([to_uint8(t) for t in (img, rec, true_n, rec_n)], 1))
    med = lambda key: float(np.median([r[key] for r in rows]))  # noqa: E731
    truth = hasattr(G, "attribute_names")
    metrics = {"heads": heads, "novel_yaw_offset": novel_yaw, "config": cfg.as_dict(), "perceptual": perceptual.name,
               "psnr_input_median": med("psnr_input"), "psnr_novel_median": med("psnr_novel"),
               "attribute_accuracy": float(np.mean([r["attributes_correct"] / r["attributes"] for r in rows]))
               if truth else None,
               "heads_all_attributes_correct": float(np.mean([r["all_attributes_correct"] for r in rows]))
               if truth else None,
               "wall_s_median": med("wall_s"), "per_head": rows}
    return metrics, np.concatenate(sheet, 0)
