"""Pictures of a run: frame strips with translations, loss/BLEU curves, the BLEU-4 bars."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from vislab.pictures import pyplot as _plt
from vislab.pictures import save_figure


def plot_frame_strips(path: Path, samples: list[dict[str, Any]], data_cfg: dict[str, Any],
                      rows: dict[str, list[dict[str, str]]], max_frames: int = 12) -> Path:
    """One row per clip: its sampled frames (stride as in the model), reference and predictions."""
    from flallm.data import load_sample_frames

    plt = _plt()
    n = len(samples)
    fig, axes = plt.subplots(n, 1, figsize=(1.2 * max_frames, 1.9 * n + 0.3), squeeze=False)
    for k, s in enumerate(samples):
        fr = load_sample_frames(s, int(data_cfg["stride"]), int(data_cfg["max_frames"]), False, random.Random(0))[:max_frames]
        strip = np.concatenate([np.pad(f, ((1, 1), (1, 1), (0, 0)), constant_values=255) for f in fr], axis=1)
        ax = axes[k, 0]
        ax.imshow(strip, interpolation="nearest")
        ax.set_axis_off()
        lines = [f"ref: {s.get('text', '')}"] + [f"{name}: {r[k]['hyp']}" for name, r in rows.items() if k < len(r)]
        ax.set_title("\n".join(lines), fontsize=8, loc="left")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_curves(path: Path, histories: dict[str, dict[str, list[tuple[int, float]]]]) -> Path:
    """Training loss per step and dev BLEU-4 per validation, one line per stage."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, h in histories.items():
        if h.get("train_loss"):
            s, v = zip(*h["train_loss"])
            a.plot(s, v, label=name, lw=1)
        if h.get("val_bleu4"):
            s, v = zip(*h["val_bleu4"])
            b.plot(s, v, "o-", label=name)
    a.set(xlabel="step", ylabel="label-smoothed CE", title="training loss")
    b.set(xlabel="step", ylabel="BLEU-4", title="dev BLEU-4 (beam search)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_bars(path: Path, bars: dict[str, float]) -> Path:
    """Dev BLEU-4 before training, after each stage and for the stage-2-only baseline."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    names, vals = list(bars), [bars[k] for k in bars]
    ax.bar(names, vals, color=["#999", "#6a9fd4", "#2a6", "#d66"][: len(names)])
    for i, v in enumerate(vals):
        ax.text(i, v + 0.5, f"{v:.1f}", ha="center")
    ax.set(ylabel="dev BLEU-4", title="FLa-LLM on the synthetic sign world")
    ax.set_ylim(0, max([v for v in vals if v == v] + [1.0]) * 1.15)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
