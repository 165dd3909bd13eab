"""Metrics shared by tests, the eval CLI and the app (all return plain floats / tensors, no side effects)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def iou(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-sample IoU of boolean masks [N, ...] -> [N] (1 when both are empty)."""
    p, g = pred.flatten(1).bool(), gt.flatten(1).bool()
    inter = (p & g).sum(1).float()
    union = (p | g).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def relevance_iou(maps: Tensor, gt: Tensor, threshold: float | Tensor = 0.5) -> Tensor:
    """2D relevance maps [N, 1, H, W] in [0, 1] vs ground-truth masks [N, H, W] -> IoU [N]. ``threshold``: one for
    all maps, or one per map as a tensor [N, 1, 1]."""
    if maps.shape[-2:] != gt.shape[-2:]:
        maps = F.interpolate(maps, size=gt.shape[-2:], mode="bilinear", align_corners=False)
    return iou(maps[:, 0] > threshold, gt)


def mean_mask_baseline(train_masks: Tensor, eval_masks: Tensor) -> tuple[float, float]:
    """IoU of the per-pixel mean ground-truth mask (thresholded at its best threshold for the eval set, so the
    baseline gets every advantage) -> (mean IoU, threshold)."""
    mean = train_masks.float().mean(0)
    best = (0.0, 0.5)
    for t in torch.linspace(0.05, 0.95, 19).tolist():
        pred = (mean > t).expand_as(eval_masks)
        score = iou(pred, eval_masks).mean().item()
        best = max(best, (score, t))
    return best


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None, data_range: float = 2.0) -> Tensor:
    """PSNR [N] of images in [-1, 1] ([N, C, H, W]) over the pixels where ``mask`` [N, H, W] is true."""
    se = (a - b).float().pow(2).mean(1)  # [N, H, W]
    if mask is None:
        mse = se.flatten(1).mean(1)
    else:
        m = mask.float()
        mse = (se * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


def dilate(mask: Tensor, pixels: int) -> Tensor:
    """Binary dilation of masks [N, H, W] by a square of radius ``pixels``."""
    if pixels <= 0:
        return mask.bool()
    k = 2 * pixels + 1
    return F.max_pool2d(mask.float().unsqueeze(1), k, stride=1, padding=pixels)[:, 0] > 0
