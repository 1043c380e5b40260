"""DiffSpeaker's training losses (official code: weights 1 and 1; lip-only terms have weight 0).

All tensors are (B,T,3V) template-added vertices (the gradients equal those of offsets) and a
frame mask (B,T) that is 1 on valid frames. Means run over every element, padding included,
as in the official code.
"""

from __future__ import annotations

import torch


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask[..., None].to(x.dtype)


def vertex_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_vert = mean((m*y_hat - m*y)^2) over all B*T*3V elements."""
    return torch.mean((_masked(pred, mask) - _masked(gt, mask)) ** 2)


def velocity_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_vel = mean((D(m*y_hat) - D(m*y))^2), D x_t = x_{t+1} - x_t (first temporal difference)."""
    p, g = _masked(pred, mask), _masked(gt, mask)
    return torch.mean(((p[:, 1:] - p[:, :-1]) - (g[:, 1:] - g[:, :-1])) ** 2)


def diffspeaker_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    w_vert: float = 1.0,
    w_vel: float = 1.0,
) -> dict[str, torch.Tensor]:
    """L = w_vert L_vert + w_vel L_vel; returns {'loss', 'vertex', 'velocity'}."""
    lv = vertex_loss(pred, gt, mask)
    lvel = velocity_loss(pred, gt, mask)
    return {"loss": w_vert * lv + w_vel * lvel, "vertex": lv, "velocity": lvel}
