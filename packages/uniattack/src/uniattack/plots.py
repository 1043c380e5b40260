"""Pictures of a UniAttack run: ROC, score histograms per attack family, confusion matrix, training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from vislab.pictures import pyplot, save_figure

FAMILIES = ("live", "physical", "adversarial", "digital")



def roc_plot(path: Path, curves: dict, title: str) -> Path:
    from vislab.metrics import auc, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=120)
    for name, (s, y) in curves.items():
        if len(set(np.asarray(y).tolist())) < 2:
            continue
        f, t, _ = roc_curve(s, y)
        ax.plot(f, t, label=f"{name} (AUC {auc(s, y):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("FPR (attacks accepted)")
    ax.set_ylabel("TPR (live accepted)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def histogram_plot(path: Path, p_live: np.ndarray, labels: np.ndarray, thr: float, title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=120)
    bins = np.linspace(0, 1, 31)
    for k, name in enumerate(FAMILIES):
        m = labels == k
        if m.any():
            ax.hist(p_live[m], bins=bins, alpha=0.5, label=f"{name} ({int(m.sum())})")
    ax.axvline(thr, color="k", ls="--", lw=1, label=f"dev EER thr {thr:.2f}")
    ax.set_xlabel("P(live)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def confusion_plot(path: Path, pred: np.ndarray, target: np.ndarray, title: str) -> Path:
    plt = pyplot()
    K = len(FAMILIES)
    cm = np.zeros((K, K), dtype=int)
    for p, t in zip(pred, target):
        cm[int(t), int(p)] += 1
    fig, ax = plt.subplots(figsize=(4.4, 4.0), dpi=120)
    ax.imshow(cm, cmap="Blues")
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(K), FAMILIES, rotation=30, fontsize=7)
    ax.set_yticks(range(K), FAMILIES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def training_curves(path: Path, metrics_csv: Path) -> Path | None:
    if not metrics_csv.is_file():
        return None
    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), dpi=120)
    for key in ("train/loss", "train/unified", "train/specific", "train/ukm"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            axes[0].plot(*zip(*pts), label=key, lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=7)
    for key in ("val/acer", "val/auc"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            axes[1].plot(*zip(*pts), marker="o", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("dev set", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
