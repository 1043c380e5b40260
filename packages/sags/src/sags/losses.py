"""Loss of the 3DGS fit (gsplat simple_trainer / 3DGS paper)."""

from __future__ import annotations

from torch import Tensor

from sags.render import ssim


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """L1 = mean |pred − target|."""
    return (pred - target).abs().mean()


def photometric_loss(
    pred: Tensor, target: Tensor, ssim_lambda: float = 0.2
) -> tuple[Tensor, dict[str, Tensor]]:
    """L = (1 − λ)·L1 + λ·(1 − SSIM), λ = 0.2, SSIM with an 11×11 Gaussian window (σ 1.5).

    pred, target: [B, H, W, 3] in [0, 1]. Returns the loss and its detached parts.
    """
    l = l1(pred, target)
    s = ssim(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2))
    loss = (1 - ssim_lambda) * l + ssim_lambda * (1 - s)
    return loss, {"l1": l.detach(), "ssim": s.detach()}


__all__ = ["l1", "photometric_loss"]
