"""Pictures every package writes: PNGs, image grids, labelled image rows, matplotlib figures, metric
curves and animations. All files are written atomically (a crash never leaves half a picture), and
matplotlib always uses the Agg backend (no display needed).

Images may be ``torch.Tensor`` or ``numpy`` arrays, (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4,
``uint8`` or float in ``value_range`` (default [0, 1]; diffusion pixels use (-1, 1)).

    from vislab.pictures import save_png, image_grid, save_grid, save_image_rows, pyplot, save_figure

    save_grid(run.path("samples.png"), images, ncol=8)                 # (N, 3, H, W) in [0, 1]
    save_image_rows(run.path("before_after.png"), {"before": xs, "after": ys}, titles=prompts)
    plt = pyplot(); fig, ax = plt.subplots(); ax.plot(...); save_figure(fig, run.path("curve.png"))
    plot_csv_curves(run.path("loss.png"), run.out / "logs" / "metrics.csv", ["train/loss"])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vislab.io import atomic_path

Image = Any  # a torch.Tensor or numpy array holding one image


def to_uint8(img: Image, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """One image -> ``uint8`` (H, W, 3) (or (H, W, 4) with alpha; grey becomes RGB).

    Channel-first input (C, H, W) with C in 1, 3, 4 is moved last; floats are mapped from
    ``value_range`` to 0..255 and clipped; ``uint8`` and bool pass through (bool as 0 / 255).
    """
    a = img.detach().float().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        lo, hi = value_range
        a = (np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"an image is (H, W), (H, W, C) or (C, H, W); got shape {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


# Older name used by several packages.
to_u8 = to_uint8


def _images(images: Image | Sequence[Image], value_range: tuple[float, float]) -> list[np.ndarray]:
    if hasattr(images, "shape") and len(images.shape) == 4:
        return [to_uint8(images[i], value_range) for i in range(images.shape[0])]
    if hasattr(images, "shape") and len(images.shape) in (2, 3):
        return [to_uint8(images, value_range)]
    return [to_uint8(x, value_range) for x in images]


def save_png(img: Image, path: str | Path, scale: int = 1, value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save one image as PNG, atomically; ``scale`` > 1 enlarges with nearest-neighbour (pixel art stays sharp)."""
    from PIL import Image as PILImage

    a = to_uint8(img, value_range)
    im = PILImage.fromarray(a if a.shape[-1] == 4 else a[..., :3])
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), PILImage.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)


def grid(rows: Sequence[Sequence[Image]], pad: int = 2, pad_value: int = 255,
         value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Tile rows of images into one ``uint8`` (H, W, 3) array with ``pad``-pixel gaps; rows may be ragged
    (missing cells stay ``pad_value``); images smaller than the largest one sit at the cell's top left."""
    rows_u8 = [[to_uint8(x, value_range)[..., :3] for x in r] for r in rows]
    cells = [x for r in rows_u8 for x in r]
    if not cells:
        raise ValueError("grid() needs at least one image")
    H = max(x.shape[0] for x in cells)
    W = max(x.shape[1] for x in cells)
    ncol = max(len(r) for r in rows_u8)
    out = np.full((len(rows_u8) * (H + pad) + pad, ncol * (W + pad) + pad, 3), pad_value, np.uint8)
    for i, r in enumerate(rows_u8):
        for j, x in enumerate(r):
            y0, x0 = pad + i * (H + pad), pad + j * (W + pad)
            out[y0 : y0 + x.shape[0], x0 : x0 + x.shape[1]] = x
    return out


def image_grid(images: Image | Sequence[Image], ncol: int = 8, pad: int = 1, scale: int = 1, pad_value: int = 255,
               value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A ``uint8`` (H, W, 3) grid of a batch (N, C, h, w) / (N, h, w, C) or a list of images, ``ncol`` per row."""
    ims = _images(images, value_range)
    ncol = max(1, min(int(ncol), len(ims)))
    out = grid([ims[i : i + ncol] for i in range(0, len(ims), ncol)], pad=pad, pad_value=pad_value)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def save_grid(path: str | Path, images: Image | Sequence[Image], ncol: int = 8, pad: int = 1, scale: int = 1,
              value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save :func:`image_grid` of ``images`` as a PNG."""
    return save_png(image_grid(images, ncol=ncol, pad=pad, value_range=value_range), path, scale=scale)


# --------------------------------------------------------------------------------------------
# matplotlib
# --------------------------------------------------------------------------------------------
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110, close: bool = True, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` atomically (format from the suffix, PNG by default), then close the figure."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, **savefig_kwargs)
    finally:
        if close:
            pyplot().close(fig)
    return path


def save_image_rows(path: str | Path, rows: Mapping[str, Sequence[Image]] | Sequence[tuple[str, Sequence[Image]]],
                    titles: Sequence[str] | Sequence[Sequence[str]] | None = None, suptitle: str | None = None,
                    cell: float = 1.8, fontsize: int = 7, dpi: int = 110,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Rows of images with a label on the left of each row (e.g. ``{"before": xs, "after": ys}``).

    ``titles``: one list of column titles shared by all rows, or one list per row.
    """
    items = list(rows.items()) if isinstance(rows, Mapping) else [(str(k), v) for k, v in rows]
    ims = [(label, _images(v, value_range)) for label, v in items]
    if not ims or not any(r for _, r in ims):
        raise ValueError("save_image_rows() needs at least one image")
    ncol = max(len(r) for _, r in ims)
    per_row = titles is not None and len(titles) > 0 and not isinstance(titles[0], str)
    plt = pyplot()
    fig, axes = plt.subplots(len(ims), ncol, figsize=(cell * ncol + 0.6, (cell + 0.25) * len(ims) + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, (label, r) in enumerate(ims):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(r):
                ax.imshow(r[j], interpolation="nearest")
                t = (titles[i][j] if per_row and j < len(titles[i]) else titles[j] if (titles and not per_row and j < len(titles)) else None)
                if t:
                    ax.set_title(str(t), fontsize=fontsize)
        axes[i, 0].set_ylabel(label, fontsize=fontsize + 1)
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize + 2)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def save_captioned_grid(path: str | Path, images: Image | Sequence[Image], captions: Sequence[str], ncol: int = 6,
                        title: str | None = None, wrap: int = 22, dpi: int = 110,
                        value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """A grid of images each with its (wrapped) caption above it."""
    import textwrap

    ims = _images(images, value_range)
    ncol = max(1, min(ncol, len(ims)))
    nrow = math.ceil(len(ims) / ncol)
    plt = pyplot()
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 1.9, nrow * 2.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(ims):
            ax.imshow(ims[i], interpolation="nearest")
            ax.set_title("\n".join(textwrap.wrap(str(captions[i]) if i < len(captions) else "", wrap)), fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def read_csv_series(csv_path: str | Path, key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows of a Lightning CSV log where ``key`` has a value (x falls back to the row number)."""
    xs: list[float] = []
    ys: list[float] = []
    p = Path(csv_path)
    if not p.is_file():
        return xs, ys
    with open(p, newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            v = row.get(key)
            if v not in (None, ""):
                xv = row.get(x)
                xs.append(float(xv) if xv not in (None, "") else float(n))
                ys.append(float(v))
    return xs, ys


def plot_csv_curves(path: str | Path, csv_path: str | Path, keys: Sequence[str], x: str = "step", logy: bool = False,
                    title: str | None = None, hlines: Mapping[str, float] | None = None, dpi: int = 110) -> Path | None:
    """Curves of ``keys`` from a Lightning ``metrics.csv`` (one axis); ``hlines``: labelled reference
    lines (e.g. ``{"before": 0.31}``). Returns None, writing nothing, when no key has a value."""
    series = {k: read_csv_series(csv_path, k, x) for k in keys}
    series = {k: v for k, v in series.items() if v[1]}
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for k, (xs, ys) in series.items():
        ax.plot(xs, ys, "o-" if len(xs) < 30 else "-", lw=1, ms=3, label=k)
    for i, (label, v) in enumerate((hlines or {}).items()):
        ax.axhline(v, ls="--", lw=1, color=f"C{len(series) + i}", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def save_animation(frames: Sequence[Image], path: str | Path, fps: float = 10.0) -> Path:
    """Frames as an animated GIF (loops), atomically."""
    from PIL import Image as PILImage

    path = Path(path)
    ims = [PILImage.fromarray(to_uint8(f)[..., :3]) for f in frames]
    if not ims:
        raise ValueError("save_animation() needs at least one frame")
    with atomic_path(path) as tmp:
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=round(1000.0 / fps), loop=0)
    return path


__all__ = ["to_uint8", "to_u8", "save_png", "grid", "image_grid", "save_grid", "pyplot", "save_figure", "save_image_rows",
           "save_captioned_grid", "read_csv_series", "plot_csv_curves", "save_animation"]
