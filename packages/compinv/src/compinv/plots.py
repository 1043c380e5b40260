"""Pictures: concept images, composition grids, cross-attention maps, training losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _img(x: torch.Tensor):
    return x.detach().float().clamp(0, 1).squeeze(0).permute(1, 2, 0).cpu().numpy()


def save_concept(path: Path, images: torch.Tensor) -> None:
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 1.8), squeeze=False)
    for ax, im in zip(axes[0], images):
        ax.imshow(_img(im), interpolation="nearest")
        ax.axis("off")
    fig.suptitle("concept images", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_compositions(path: Path, groups: list[tuple[str, list[dict[str, Any]]]], max_cols: int = 8) -> None:
    """One row per method; columns: the first ``max_cols`` (prompt, seed) images, with text alignment."""
    plt = _plt()
    ncol = min(max_cols, max(len(r) for _, r in groups))
    fig, axes = plt.subplots(len(groups), ncol, figsize=(1.7 * ncol, 2.0 * len(groups)), squeeze=False)
    for i, (name, rows) in enumerate(groups):
        for j in range(ncol):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(rows):
                r = rows[j]
                ax.imshow(_img(r["image"]), interpolation="nearest")
                ta = r.get("text_alignment")
                ax.set_title(f"{r['object']}\n{'' if ta is None else f'TA {ta:.2f}'}", fontsize=6)
        axes[i][0].text(-0.15, 0.5, name, transform=axes[i][0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_attention(path: Path, groups: list[tuple[str, list[dict[str, Any]]]], max_rows: int = 4) -> None:
    """Per method and prompt: image, concept-token attention, other-object attention."""
    plt = _plt()
    rows = [(name, r) for name, rs in groups for r in rs[:max_rows]]
    fig, axes = plt.subplots(len(rows), 3, figsize=(5.0, 1.7 * len(rows)), squeeze=False)
    for i, (name, r) in enumerate(rows):
        axes[i][0].imshow(_img(r["image"]), interpolation="nearest")
        axes[i][0].set_title(f"{name}: {r['object']}", fontsize=6)
        att = r["attention"]
        for j, lab in ((1, "concept tokens"), (2, r["object"])):
            if att.shape[0] >= j:
                axes[i][j].imshow(att[j - 1].numpy(), cmap="viridis", interpolation="nearest")
            axes[i][j].set_title(lab, fontsize=6)
        for ax in axes[i]:
            ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_losses(path: Path, histories: dict[str, list[dict[str, float]]]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, h in histories.items():
        if h:
            ax.plot([x["rec"] for x in h], label=f"{name}: L_rec", alpha=0.7)
            if "anchor" in h[0]:
                ax.plot([x["anchor"] * 1e3 for x in h], label=f"{name}: L_anchor x 1e3", alpha=0.7)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
