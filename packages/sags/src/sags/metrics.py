"""Evaluation metrics of SA-GS (the NVOS / SPIn-NeRF protocol of SA3D, which the paper follows): mask IoU / accuracy (NVOS, SPIn-NeRF style), 3D IoU, PSNR."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from sags.render import psnr

__all__ = ["mask_iou", "mask_accuracy", "mean_iou_acc", "iou_3d", "psnr"]


def mask_iou(pred: Tensor, gt: Tensor) -> float:
    """IoU = |P ∩ G| / |P ∪ G| of boolean masks [H, W] (1.0 when both are empty)."""
    p, g = pred.bool(), gt.bool()
    union = (p | g).sum().item()
    return 1.0 if union == 0 else (p & g).sum().item() / union


def mask_accuracy(pred: Tensor, gt: Tensor) -> float:
    """Acc = (TP + TN) / (H·W) of boolean masks [H, W]."""
    return (pred.bool() == gt.bool()).float().mean().item()


def mean_iou_acc(preds: list[Tensor], gts: list[Tensor]) -> tuple[float, float]:
    """mIoU and mAcc: means of per-view IoU and accuracy."""
    ious = [mask_iou(p, g) for p, g in zip(preds, gts)]
    accs = [mask_accuracy(p, g) for p, g in zip(preds, gts)]
    return float(np.mean(ious)), float(np.mean(accs))


def iou_3d(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> float:
    """3D IoU of Gaussian membership [N] (bool) over the evaluated Gaussians ``valid``."""
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    union = (pred.bool() | gt.bool()).sum().item()
    return 1.0 if union == 0 else (pred.bool() & gt.bool()).sum().item() / union
