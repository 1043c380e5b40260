"""CFPL loss terms: ``L = L_cls + lambda_ptm * L_ptm``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cls_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Classification loss ``L_cls = -(1/B) sum_i log softmax(z_i)[y_i]``.

    logits (B, 2) from FC_cls on the modulated feature; labels (B,) 0 live / 1 spoof.
    """
    return F.cross_entropy(logits, labels)


def ptm_loss(ptm_logits: torch.Tensor, ptm_targets: torch.Tensor) -> torch.Tensor:
    """Prompt-Text Matching loss ``L_ptm = -(1/3B) sum_k log softmax(FC_ptm(R_k))[y_k]``.

    ptm_logits (3B, 2): FC_ptm averaged over the N queries for
    ``R = [R_p; R_n^prompt; R_n^text]``; targets y = 1 for the B matched pairs, 0 for the 2B
    hard negatives.
    """
    return F.cross_entropy(ptm_logits, ptm_targets)


def total_loss(l_cls: torch.Tensor, l_ptm: torch.Tensor | None, lambda_ptm: float = 1.0) -> torch.Tensor:
    """``L = L_cls + lambda_ptm * L_ptm`` (``L_ptm`` omitted when PTM is switched off)."""
    return l_cls if l_ptm is None else l_cls + lambda_ptm * l_ptm
