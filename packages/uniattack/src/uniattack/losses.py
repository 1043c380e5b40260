"""UniAttackDetection losses (TSP student CE, unified CE and the UKM loss):
``L = CE(z_u, y_bin) + lambda_s CE(z_s, y_det) + lambda_ukm L_UKM``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unified_loss(z_u: torch.Tensor, y_bin: torch.Tensor) -> torch.Tensor:
    """``L_u = -(1/B) sum_i log softmax(z_u_i)[y_bin_i]``; z_u (B, 2), y_bin (B,) 0 live / 1 attack."""
    return F.cross_entropy(z_u, y_bin)


def specific_loss(z_s: torch.Tensor, y_det: torch.Tensor) -> torch.Tensor:
    """``L_s = -(1/B) sum_i log softmax(z_s_i)[y_det_i]``; z_s (B, C_s), y_det (B,) in 0..3 (absent classes
    simply never appear as targets)."""
    return F.cross_entropy(z_s, y_det)


def ukm_loss(u_hat: torch.Tensor, teacher: torch.Tensor, form: str = "cosine", temperature: float = 0.07) -> torch.Tensor:
    """Unified Knowledge Mining loss (text-to-text), averaged over the batch.

    u_hat (B, C_u, d_e) mapped student features, teacher T (G, C_u, d_e); both L2-normalised.
      cosine:      ``L = mean_b (1/(G C_u)) sum_g sum_c (1 - cos(U^_{b,c}, T_{g,c}))``
      contrastive: ``L = mean_b (1/(G C_u)) sum_g sum_c -log softmax_c'(cos(U^_{b,c}, T_{g,c'}) / tau)[c]``
    """
    u = F.normalize(u_hat, dim=-1)
    t = F.normalize(teacher.to(u), dim=-1)
    sims = torch.einsum("bcd,gkd->bgck", u, t)  # (B, G, C_u, C_u): cos(U^_c, T_{g,k})
    if form == "cosine":
        return (1 - sims.diagonal(dim1=-2, dim2=-1)).mean()
    if form == "contrastive":
        B, G, C, _ = sims.shape
        target = torch.arange(C, device=u.device).repeat(B * G)
        return F.cross_entropy(sims.reshape(B * G * C, C) / temperature, target)
    raise ValueError(f"unknown UKM form {form!r}")


def total_loss(l_u: torch.Tensor, l_s: torch.Tensor, l_ukm: torch.Tensor, lambda_s: float = 1.0, lambda_ukm: float = 1.0) -> torch.Tensor:
    """``L = L_u + lambda_s L_s + lambda_ukm L_UKM``."""
    return l_u + lambda_s * l_s + lambda_ukm * l_ukm
