"""Pictures: mask overlays; PNG writing and grids come from :mod:`vislab.pictures` (atomic writes)."""

from __future__ import annotations

import numpy as np
from torch import Tensor
from vislab.pictures import grid, save_png, to_u8

__all__ = ["overlay", "grid", "save_png", "to_u8"]


def overlay(
    img: np.ndarray | Tensor,
    mask: np.ndarray | Tensor | None,
    color=(1.0, 0.2, 0.8),
    alpha: float = 0.55,
    points: np.ndarray | None = None,
) -> np.ndarray:
    """The image with ``mask`` tinted and its boundary drawn; clicks drawn as yellow dots."""
    a = to_u8(img).astype(np.float32) / 255.0
    if mask is not None:
        m = np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask, bool)
        a[m] = (1 - alpha) * a[m] + alpha * np.asarray(color)
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        a[edge] = color
    if points is not None:
        H, W = a.shape[:2]
        for x, y in np.asarray(points).reshape(-1, 2):
            i, j = int(np.clip(y, 0, H - 1)), int(np.clip(x, 0, W - 1))
            a[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2] = (1.0, 1.0, 0.0)
    return (a * 255).round().astype(np.uint8)
