"""The loss terms of the prompt learning. Features are unit-normalised."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quality_loss(g_learned: torch.Tensor, g_text: torch.Tensor, delta_img: torch.Tensor) -> torch.Tensor:
    """L_q = 1 - cos(g(p (+) P*) - g(p), Delta_I), Delta_I = norm(f(I_f) - f(I_c)) (directional CLIP loss)."""
    return 1 - F.cosine_similarity(g_learned - g_text, delta_img, dim=-1).mean()


def semantic_loss(g_learned: torch.Tensor, g_sem: torch.Tensor | None) -> torch.Tensor:
    """L_s = 1 - cos(g(p (+) P*), g(p_sem)); zero when no unit is under-represented (``g_sem`` None)."""
    if g_sem is None:
        return g_learned.new_zeros(())
    return 1 - F.cosine_similarity(g_learned, g_sem, dim=-1).mean()


def consistency_loss(g_learned: torch.Tensor, g_text: torch.Tensor) -> torch.Tensor:
    """L_tt = 1 - cos(g(p (+) P*), g(p))."""
    return 1 - F.cosine_similarity(g_learned, g_text, dim=-1).mean()


def alignment_loss(g_text: torch.Tensor, f_img: torch.Tensor) -> torch.Tensor:
    """L_ti = 1 - cos(g(p), f(D(x0(p (+) P*)))): the original text against the image of the learned prompt."""
    return 1 - F.cosine_similarity(g_text, f_img, dim=-1).mean()


def sparsity_loss(P: torch.Tensor, e_neutral: torch.Tensor) -> torch.Tensor:
    """L_sp = 1/(K W) sum_k ||v_k - e_-||_1."""
    return (P - e_neutral).abs().mean()


def total_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """L = sum_i lambda_i L_i over the terms present (weights keyed q, s, tt, ti, sp)."""
    out = None
    for k, v in terms.items():
        w = float(weights.get(k, 0.0))
        if w:
            out = w * v if out is None else out + w * v
    return out if out is not None else next(iter(terms.values())) * 0
