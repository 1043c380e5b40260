"""Pictures of a CFPL run: ROC curves, score histograms, training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from vislab.pictures import pyplot, save_figure


def roc_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Path:
    """curves: name -> (scores P(live), live labels); one ROC line each, AUC in the legend."""
    from cfpl.metrics import auc, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=120)
    for name, (s, y) in curves.items():
        fpr, tpr, _ = roc_curve(s, y)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(s, y):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("FPR (attacks accepted)")
    ax.set_ylabel("TPR (live accepted)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def histogram_plot(path: Path, panels: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> Path:
    """panels: name -> (scores, live labels, threshold); live vs attack histograms of P(live)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=120, squeeze=False)
    bins = np.linspace(0, 1, 31)
    for ax, (name, (s, y, thr)) in zip(axes[0], panels.items()):
        s, y = np.asarray(s), np.asarray(y)
        ax.hist(s[y == 1], bins=bins, alpha=0.6, color="tab:green", label="live")
        ax.hist(s[y == 0], bins=bins, alpha=0.6, color="tab:red", label="attack")
        ax.axvline(thr, color="k", ls="--", lw=1, label=f"EER thr {thr:.2f}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("P(live)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def training_curves(path: Path, metrics_csv: Path) -> Path | None:
    """Loss / accuracy per step and target HTER per validation from Lightning's CSV log."""
    if not metrics_csv.is_file():
        return None
    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), dpi=120)
    for key, ax in (("train/loss", axes[0]), ("train/acc", axes[0])):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            ax.plot(*zip(*pts), label=key, lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=7)
    for key in ("val/hter", "val/auc"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            axes[1].plot(*zip(*pts), marker="o", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("held-out target domain", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
