"""The paper's evaluation metrics on L2-normalised CLIP features (cosine similarity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEXT_SCALE = 2.5


def text_alignment(image_feats: torch.Tensor, text_feats: torch.Tensor, scale: float = TEXT_SCALE) -> float:
    """``mean_i 2.5 * cos(img_i, text_i)`` (CLIP score as in the paper; no clamp at 0).

    ``image_feats`` (N, D), ``text_feats`` (N, D): the prompt of each image (object: the plain prompt,
    style: the full styled prompt)."""
    i, t = F.normalize(image_feats.float(), dim=-1), F.normalize(text_feats.float(), dim=-1)
    return float(scale * (i * t).sum(-1).mean())


def image_alignment(image_feats: torch.Tensor, ref_feats: torch.Tensor) -> float:
    """``mean over (image, reference) pairs of cos(img, ref)``; ``image_feats`` (N, D), ``ref_feats`` (M, D)."""
    i, r = F.normalize(image_feats.float(), dim=-1), F.normalize(ref_feats.float(), dim=-1)
    return float((i @ r.T).mean())


def overfitting_rate(image_feats: torch.Tensor, prompt_feats: torch.Tensor, caption_feats: torch.Tensor) -> float:
    """Share of images with ``s(x, prompt) < max_c s(x, c)`` over the concept's captions ``c``.

    ``image_feats`` (N, D), ``prompt_feats`` (N, D) (each image's prompt), ``caption_feats`` (M, D)."""
    i = F.normalize(image_feats.float(), dim=-1)
    sp = (i * F.normalize(prompt_feats.float(), dim=-1)).sum(-1)
    sc = (i @ F.normalize(caption_feats.float(), dim=-1).T).max(-1).values
    return float((sp < sc).float().mean())


def text_alignment_per_image(image_feats: torch.Tensor, text_feats: torch.Tensor, scale: float = TEXT_SCALE) -> list[float]:
    """``2.5 * cos(img_i, text_i)`` per image (their mean is :func:`text_alignment`)."""
    i, t = F.normalize(image_feats.float(), dim=-1), F.normalize(text_feats.float(), dim=-1)
    return (scale * (i * t).sum(-1)).tolist()


def image_alignment_per_image(image_feats: torch.Tensor, ref_feats: torch.Tensor) -> list[float]:
    """``mean_r cos(img_i, ref_r)`` per image (their mean is :func:`image_alignment`)."""
    i, r = F.normalize(image_feats.float(), dim=-1), F.normalize(ref_feats.float(), dim=-1)
    return (i @ r.T).mean(-1).tolist()


def overfit_per_image(image_feats: torch.Tensor, prompt_feats: torch.Tensor, caption_feats: torch.Tensor) -> list[float]:
    """1 where ``s(x, prompt) < max_c s(x, c)``, else 0 (their mean is :func:`overfitting_rate`)."""
    i = F.normalize(image_feats.float(), dim=-1)
    sp = (i * F.normalize(prompt_feats.float(), dim=-1)).sum(-1)
    sc = (i @ F.normalize(caption_feats.float(), dim=-1).T).max(-1).values
    return (sp < sc).float().tolist()
