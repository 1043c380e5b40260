"""Pictures: image / de-spoofed image / spoof noise / depth panels, ROC curves, diffusion samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from vislab.io import atomic_path


def _u8(x: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [-1,1] -> (H,W,3) uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def noise_u8(n: torch.Tensor, scale: float | None = None) -> np.ndarray:
    """Spoof noise (3,H,W) shown as 0.5 + N / (2 * scale) (grey = 0); scale = its max |N| by default."""
    s = float(n.abs().max()) if scale is None else float(scale)
    s = max(s, 1e-6)
    return ((n.detach().float() / s).clamp(-1, 1).add(1).mul(127.5) + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def depth_u8(d: torch.Tensor, size: int) -> np.ndarray:
    """Depth map (1,h,w) in ~[0,1] -> (size,size,3) uint8 (nearest upsampling)."""
    import torch.nn.functional as F

    d = F.interpolate(d[None].float(), size=(size, size), mode="nearest")[0, 0].clamp(0, 1)
    g = (d * 255 + 0.5).byte().cpu().numpy()
    return np.stack([g, g, g], -1)


def panel(x: torch.Tensor, x_g: torch.Tensor, n: torch.Tensor, depth: torch.Tensor | None, noise_scale: float | None = None) -> np.ndarray:
    """One row: image | de-spoofed image | spoof noise | (depth), (H, k*W, 3) uint8 with 2 px gaps."""
    h = x.shape[-1]
    tiles = [_u8(x), _u8(x_g), noise_u8(n, noise_scale)]
    if depth is not None:
        tiles.append(depth_u8(depth, h))
    gap = np.full((x.shape[-2], 2, 3), 255, np.uint8)
    out = []
    for t in tiles:
        out += [t, gap]
    return np.concatenate(out[:-1], 1)


def save_png(arr: np.ndarray, path: str | Path, upscale: int = 1) -> Path:
    from PIL import Image

    im = Image.fromarray(arr)
    if upscale > 1:
        im = im.resize((im.width * upscale, im.height * upscale), Image.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)


@torch.no_grad()
def save_despoof_grid(model, items, path: str | Path, per_class: int = 6) -> Path:
    """Rows of live and spoof examples: image | x_g | N | predicted depth, titled with attack and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lives = items.lives()
    idx = list(np.flatnonzero(lives == 1)[:per_class]) + list(np.flatnonzero(lives == 0)[:per_class])
    its = [items[int(i)] for i in idx]
    x = torch.stack([it["x"] for it in its])
    out = model.predict_images(x)
    scale = float(out["noise"].abs().amax())
    fig, axes = plt.subplots(len(its), 1, figsize=(4.2, 1.15 * len(its) + 0.4))
    axes = np.atleast_1d(axes)
    for k, (ax, it) in enumerate(zip(axes, its)):
        ax.imshow(panel(x[k], out["x_g"][k], out["noise"][k], out["depth"][k], scale), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{it['attack']} ({it['domain']})  score {float(out['score'][k]):.3f}", fontsize=7, loc="left")
    fig.suptitle("image | de-spoofed x_g | spoof noise N (shared scale) | depth", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def save_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """ROC curves (live positive) of named (scores, live) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from despoofdiff.metrics import auc, roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, (s, y) in curves.items():
        fpr, tpr = roc_curve(s, y)
        ax.plot(fpr, tpr, ls="--" if "before" in name else "-", label=f"{name} (AUC {auc(s, y):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("APCER (spoof accepted)")
    ax.set_ylabel("1 - BPCER (live accepted)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("despoofdiff ROC")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def save_samples(model, path: str | Path, n: int = 8, seed: int = 0) -> Path:
    """DDIM samples (from pure noise at T-1, ``bridge.steps`` steps) of eps_G (top row) and eps_S (bottom row)."""
    from despoofdiff.model import DDIMBridge

    b = model.bridge
    res = int(model.hparams.resolution)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, res, res, generator=g)
    full = DDIMBridge(b.eps_g, b.eps_s, b.alphas_cumprod, t_star=1.0, steps=max(b.steps, 10), translator=b.translator, clamp_decode=True)
    rows = [full.decode(z, b.eps_g)]
    if b.eps_s is not None:
        rows.append(full.decode(z, b.eps_s))
    gap = np.full((res, 2, 3), 255, np.uint8)
    lines = []
    for r in rows:
        tiles = []
        for t in r:
            tiles += [_u8(t), gap]
        lines.append(np.concatenate(tiles[:-1], 1))
        lines.append(np.full((2, lines[-1].shape[1], 3), 255, np.uint8))
    return save_png(np.concatenate(lines[:-1], 0), path, upscale=4)
