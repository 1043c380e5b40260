"""Pictures of a pvlr run: per-class AP, predictions on validation images, the mAP curve."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pvlr.metrics import average_precision  # noqa: E402


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
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * keep.sum()), 3.5))
    ax.bar(range(keep.sum()), ap[keep][order], color="tab:blue")
    ax.set_xticks(range(keep.sum()), names[keep][order], rotation=90, fontsize=6)
    ax.set_ylabel("AP (%)")
    ax.set_title(f"per-class AP, mAP {np.nanmean(ap):.1f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_prediction_grid(path: Path, model, dm, threshold: float = 0.5, n: int = 12) -> None:
    x, logits, t = _scores(model, dm, limit=n)
    s = torch.sigmoid(logits)
    cols = 4
    rows = (min(n, len(x)) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.9))
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curve(path: Path, csv_path: Path, key: str) -> None:
    if not Path(csv_path).is_file():
        return
    xs, ys = [], []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get(key):
                xs.append(float(row.get("epoch") or len(xs)))
                ys.append(float(row[key]))
    if not ys:
        return
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
