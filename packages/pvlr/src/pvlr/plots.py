"""Pictures of a pvlr run: per-class AP, predictions on validation images, the mAP curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from vislab.pictures import plot_csv_curves, pyplot, save_figure

from pvlr.metrics import average_precision


@torch.no_grad()
def _scores(model, dm, limit: int | None = None):
    model.eval()
    dev = next(model.parameters()).device
    imgs, scores, targets = [], [], []
    for x, t in dm.val_dataloader():
        scores.append(model(x.to(dev)).float().cpu())  # logits
        imgs.append(x)
        targets.append(t)
        if limit and sum(len(i) for i in imgs) >= limit:
            break
    return torch.cat(imgs), torch.cat(scores), torch.cat(targets)


def plot_ap_per_class(path: Path, model, dm) -> None:
    _, s, t = _scores(model, dm)
    ap = average_precision(s, t) * 100  # ranked by logits
    names = np.array(dm.classnames)
    keep = np.isfinite(ap)
    order = np.argsort(-ap[keep])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * keep.sum()), 3.5))
    ax.bar(range(keep.sum()), ap[keep][order], color="tab:blue")
    ax.set_xticks(range(keep.sum()), names[keep][order], rotation=90, fontsize=6)
    ax.set_ylabel("AP (%)")
    ax.set_title(f"per-class AP, mAP {np.nanmean(ap):.1f}")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def save_prediction_grid(path: Path, model, dm, threshold: float = 0.5, n: int = 12) -> None:
    x, logits, t = _scores(model, dm, limit=n)
    s = torch.sigmoid(logits)
    cols = 4
    rows = (min(n, len(x)) + cols - 1) // cols
    fig, axes = pyplot().subplots(rows, cols, figsize=(cols * 2.6, rows * 2.9))
    for i, ax in enumerate(np.atleast_1d(axes).flat):
        ax.axis("off")
        if i >= min(n, len(x)):
            continue
        ax.imshow(x[i].permute(1, 2, 0).numpy().clip(0, 1), interpolation="nearest")
        top = torch.argsort(s[i], descending=True)[:3]
        lines = []
        for k in top:
            mark = "+" if t[i, k] > 0 else "-"
            flag = "*" if s[i, k] >= threshold else " "
            lines.append(f"{mark}{flag}{dm.classnames[k]} {s[i, k]:.2f}")
        truth = ", ".join(dm.classnames[k] for k in torch.nonzero(t[i] > 0).flatten())
        ax.set_title("\n".join(lines) + f"\ntrue: {truth}", fontsize=6, loc="left")
    fig.suptitle("top-3 predictions (+ true label, * above threshold)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_curve(path: Path, csv_path: Path, key: str) -> None:
    """``key`` per epoch from the run's CSV log (nothing written when it was never logged)."""
    plot_csv_curves(path, csv_path, [key], x="epoch", dpi=120)
