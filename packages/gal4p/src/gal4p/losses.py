"""DreamBooth losses with per-sample weights (GAL's weighted training set)."""

from __future__ import annotations

import torch


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``L = mean_b w_b * mean_elements (pred_b - target_b)^2`` for ``pred``/``target`` (B, C, h, w), ``weights`` (B,).

    With B = 1 this is the official ``w * MSE(pred, target)``; for larger B every sample keeps its own weight
    (the official object script unpacks exactly two weights, so only B = 1 worked there).
    """
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (weights.to(per) * per).mean()


def dreambooth_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                    prior_pred: torch.Tensor | None = None, prior_target: torch.Tensor | None = None,
                    prior_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DreamBooth objective with prior preservation:

    ``L = mean_b w_b MSE(eps_hat_b, eps_b) + lambda_prior * mean_b w_b MSE(eps_hat_cls_b, eps_cls_b)``

    The class image paired with instance ``b`` inherits its weight ``w_b`` (as in the official code).
    Without ``prior_pred`` the second term is absent (styles). Returns the loss and its parts.
    """
    inst = weighted_mse(pred, target, weights)
    parts = {"instance_loss": inst.detach()}
    if prior_pred is None:
        return inst, parts
    prior = weighted_mse(prior_pred, prior_target, weights)
    parts["prior_loss"] = prior.detach()
    return inst + prior_weight * prior, parts
