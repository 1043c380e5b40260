"""Pictures: render grids and mask overlays (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor
from vislab.io import atomic_path


def to_u8(img: Tensor | np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8."""
    a = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def save_png(img: np.ndarray | Tensor, path: str | Path, scale: int = 1) -> Path:
    """Save an image (uint8 or float [0, 1]); ``scale`` enlarges with nearest-neighbour."""
    from PIL import Image

    im = Image.fromarray(to_u8(img))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)


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


def grid(rows: list[list[np.ndarray | Tensor]], pad: int = 2) -> np.ndarray:
    """Tile equally sized images into a grid with white padding."""
    rows_u8 = [[to_u8(x) for x in r] for r in rows]
    H, W = rows_u8[0][0].shape[:2]
    ncol = max(len(r) for r in rows_u8)
    out = np.full((len(rows_u8) * (H + pad) + pad, ncol * (W + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows_u8):
        for j, x in enumerate(r):
            out[
                pad + i * (H + pad) : pad + i * (H + pad) + H, pad + j * (W + pad) : pad + j * (W + pad) + W
            ] = x[..., :3]
    return out
