"""DreamBooth losses with per-sample weights (GAL's weighted training set).

The functions live in :mod:`vislab.diffusion.learners` (shared with compinv) and are re-exported here:

- ``weighted_mse(pred, target, weights)``: ``L = mean_b w_b * mean_elements (pred_b - target_b)^2``. With B = 1
  this is the official ``w * MSE(pred, target)``; for larger B every sample keeps its own weight (the official
  object script unpacks exactly two weights, so only B = 1 worked there).
- ``dreambooth_loss(pred, target, weights, prior_pred, prior_target, prior_weight)``:
  ``L = mean_b w_b MSE(eps_hat_b, eps_b) + lambda_prior * mean_b w_b MSE(eps_hat_cls_b, eps_cls_b)``; the class
  image paired with instance ``b`` inherits its weight ``w_b`` (as in the official code).
"""

from __future__ import annotations

from vislab.diffusion.learners import dreambooth_loss, weighted_mse

__all__ = ["dreambooth_loss", "weighted_mse"]
