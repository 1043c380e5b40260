"""The loss of both stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generation_loss(logits: torch.Tensor, labels: torch.Tensor, pad_id: int, smoothing: float = 0.2) -> torch.Tensor:
    """Video-grounded text generation loss with label smoothing, pad ignored.

    L = mean over non-pad positions i of  (1 - eps) * (-log p(o_i | o_<i, V))
                                          + eps * (1/|V|) * sum_k (-log p(k | o_<i, V)),
    i.e. ``F.cross_entropy(..., label_smoothing=eps, ignore_index=pad)``; eps = 0.2 in the paper.
    logits (B, L, V), labels (B, L) long.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=pad_id,
                           label_smoothing=smoothing)
