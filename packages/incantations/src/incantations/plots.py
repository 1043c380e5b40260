"""Pictures: per-prompt panels (probe, before/after per seed) and the before/after summary grid."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def _img(t: torch.Tensor):
    return t[0].permute(1, 2, 0).float().cpu().clamp(0, 1).numpy()


def save_prompt_panel(path: Path, res, seeds: list[int]) -> None:
    """Probe coarse / fine / final, then before and after for each seed."""
    g = res.guidance
    cols = 3 + len(seeds)
    fig, ax = plt.subplots(2, cols, figsize=(1.8 * cols, 4.2))
    for a in ax.flat:
        a.axis("off")
    for j, (name, key) in enumerate([("probe coarse", "coarse"), ("probe fine", "fine"), ("probe final", "final")]):
        ax[0, j].imshow(_img(g.images[key]), interpolation="nearest")
        ax[0, j].set_title(name, fontsize=7)
    for j, s in enumerate(seeds):
        ax[0, 3 + j].imshow(_img(res.before[s]), interpolation="nearest")
        ax[0, 3 + j].set_title(f"before, seed {s}", fontsize=7)
        ax[1, 3 + j].imshow(_img(res.after[s]), interpolation="nearest")
        ax[1, 3 + j].set_title(f"after, seed {s}", fontsize=7)
    ax[1, 0].text(0, 0.5, f"units: {g.units}\nunder-represented: {g.under}\np_sem: {g.p_sem}", fontsize=6, wrap=True)
    fig.suptitle(f"{g.prompt}  ->  {res.learner.text()}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_summary_grid(path: Path, panels: list[tuple[str, str, torch.Tensor, torch.Tensor]]) -> None:
    """One row per prompt: the original prompt's image and the learned prompt's image (same seed)."""
    if not panels:
        return
    fig, ax = plt.subplots(len(panels), 2, figsize=(5.2, 1.9 * len(panels)), squeeze=False)
    for i, (p, learned, before, after) in enumerate(panels):
        for j, (im, title) in enumerate([(before, p), (after, learned)]):
            ax[i, j].imshow(_img(im), interpolation="nearest")
            ax[i, j].set_title(title, fontsize=6)
            ax[i, j].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_attention(path: Path, maps_before: torch.Tensor, maps_after: torch.Tensor, words: list[str]) -> None:
    """Cross-attention maps (T, h, w) of the prompt's words, original prompt above, learned prompt below."""
    t = len(words)
    fig, ax = plt.subplots(2, t, figsize=(1.6 * t, 3.4), squeeze=False)
    for j, w in enumerate(words):
        for i, m in enumerate((maps_before, maps_after)):
            ax[i, j].imshow(m[j].float().cpu().numpy(), cmap="viridis")
            ax[i, j].set_title(("original: " if i == 0 else "learned: ") + w, fontsize=6)
            ax[i, j].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
