"""Loss terms of despoofdiff (every formula is checked on fixed inputs in tests/test_losses.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diffusion_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """DDPM simple loss L = E ||eps - eps_theta(x_t, t)||^2, averaged over every element."""
    return F.mse_loss(eps_pred, eps)


def contrast_kernels(device=None, dtype=None) -> torch.Tensor:
    """The 8 directional contrast kernels of CDCN's contrastive depth loss: (8, 1, 3, 3).

    Each has -1 at the centre and +1 at one of the 8 neighbours (row-major order, centre skipped).
    """
    ks = []
    for i in range(3):
        for j in range(3):
            if i == 1 and j == 1:
                continue
            k = torch.zeros(3, 3)
            k[1, 1] = -1.0
            k[i, j] = 1.0
            ks.append(k)
    return torch.stack(ks).unsqueeze(1).to(device=device, dtype=dtype)


def contrast_depth(depth: torch.Tensor) -> torch.Tensor:
    """K_i^contrast * D for the 8 kernels, zero padding: (B,1,h,w) -> (B,8,h,w)."""
    return F.conv2d(depth, contrast_kernels(depth.device, depth.dtype), padding=1)


def contrastive_depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CDL = mean over (b, i, y, x) of (K_i * D_hat - K_i * D)^2 (CDCN, Yu et al. CVPR'20)."""
    return F.mse_loss(contrast_depth(pred), contrast_depth(target))


def depth_loss(pred: torch.Tensor, target: torch.Tensor, cdl_weight: float = 1.0) -> torch.Tensor:
    """L = MSE(D_hat, D) + cdl_weight * CDL(D_hat, D); pred/target (B,1,h,w). Live: pseudo-depth, spoof: 0."""
    return F.mse_loss(pred, target) + cdl_weight * contrastive_depth_loss(pred, target)
