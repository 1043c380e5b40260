"""Evaluation protocol (official notebooks): generate for every test prompt with the personalised model, then
text alignment (2.5 x CLIP cosine to the plain / styled prompt), image alignment (mean CLIP cosine to the
reference images) and the overfitting rate."""

from __future__ import annotations

from typing import Any

import torch

from gal4p import metrics as M
from gal4p.query import generate


def evaluate_model(sd, scorer, gen_prompts: list[str], text_prompts: list[str], ref_feats: torch.Tensor, captions: list[str],
                   n_per_prompt: int = 2, steps: int = 50, guidance: float = 7.5, seed: int = 8888, scheduler: str = "default",
                   resolution: int | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Metrics of ``sd`` on ``gen_prompts`` (with the identifier) judged against ``text_prompts`` (object: the
    plain prompts; style: the same styled prompts). The seed is reset per prompt, as in the official notebooks.
    Returns the metrics (with ``per_image``: each image's text alignment, image alignment and overfit flag, for
    paired comparisons between models evaluated on the same prompts and seed) and the images (prompt-major)."""
    imgs = []
    for p in gen_prompts:
        g = torch.Generator().manual_seed(int(seed))
        imgs.append(generate(sd, [p], n_per_prompt, steps, guidance, g, scheduler, resolution))
    images = torch.cat(imgs)
    feats = scorer.encode_images(images)
    tf = scorer.encode_texts(text_prompts).repeat_interleave(n_per_prompt, dim=0)
    cf = scorer.encode_texts(captions)
    res: dict[str, Any] = {
        "text_alignment": M.text_alignment(feats, tf),
        "image_alignment": M.image_alignment(feats, ref_feats),
        "overfitting_rate": M.overfitting_rate(feats, tf, cf),
        "per_image": {"text_alignment": M.text_alignment_per_image(feats, tf), "image_alignment": M.image_alignment_per_image(feats, ref_feats),
                      "overfit": M.overfit_per_image(feats, tf, cf)},
    }
    return res, images
