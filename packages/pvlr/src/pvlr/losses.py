"""PVLR's training loss."""

from __future__ import annotations

import torch


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                    margin: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021), summed over classes, averaged over the batch:

    L = - sum_c [ y_c (1 - p_c)^{g+} log p_c + (1 - y_c) p_m^{g-} log(1 - p_m) ],  p_m = max(p_c - m, 0).

    ``targets`` may hold -1 for "ignore" (VOC difficult-only): those entries add nothing.
    logits, targets: (B, C) -> scalar.
    """
    p = torch.sigmoid(logits)
    y = targets.clamp(min=0)
    valid = (targets >= 0).to(logits.dtype)
    p_m = (p - margin).clamp(min=0) if margin > 0 else p
    pos = y * (1 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    neg = (1 - y) * p_m.pow(gamma_neg) * torch.log((1 - p_m).clamp(min=eps))
    return -((pos + neg) * valid).sum(1).mean()
