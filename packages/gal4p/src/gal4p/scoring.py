"""CLIP scoring of generated samples (the paper uses OpenAI CLIP ViT-B/32 with L2-normalised features).

A *scorer* is anything with ``encode_images(pixels in [0, 1] (N, 3, H, W)) -> (N, D)`` and
``encode_texts(list[str]) -> (N, D)``, both L2-normalised. :class:`ClipScorer` wraps a
:class:`vislab.clip.ClipEncoder`; :func:`load_scorer` builds one from local files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F


class Scorer(Protocol):
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor: ...
    def encode_texts(self, texts: list[str]) -> torch.Tensor: ...


class ClipScorer:
    """Normalised CLIP features. Images: resized (bicubic) to the CLIP's input size and CLIP-normalised
    (the official preprocess resizes the short side to 224 and centre-crops; our inputs are square)."""

    def __init__(self, clip, batch_size: int = 64):
        self.clip = clip.freeze()
        self.batch_size = batch_size

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = []
        dev = self.clip.device
        for i in range(0, len(pixels), self.batch_size):
            x = self.clip.preprocess(pixels[i : i + self.batch_size].float().to(dev))
            out.append(F.normalize(self.clip.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.clip.embed_dim)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            ids = self.clip.tokenize(list(texts[i : i + self.batch_size]))
            out.append(F.normalize(self.clip.encode_text(ids).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.clip.embed_dim)


def load_scorer(source: str, checkpoint: str | None = None, toy_preset: str = "default", device: str | None = None) -> ClipScorer:
    """``source``: ``toy`` (vislab's toy CLIP), a local Hugging Face CLIP folder (e.g. ``openai/clip-vit-base-patch32``
    saved locally), or an open_clip architecture name with ``checkpoint`` (e.g. ``ViT-B-32`` + OpenAI's
    ``ViT-B-32.pt``). Nothing is downloaded."""
    from vislab.clip import load_clip

    if source == "toy":
        from vislab.toy import toy_clip

        clip = load_clip(toy_clip(toy_preset))
    elif checkpoint:
        clip = load_clip(source, checkpoint)  # OpenAI's ViT-B-32.pt: name "ViT-B-32-quickgelu"
    else:
        clip = load_clip(Path(source))
    if device is not None:
        clip.to(device)
    return ClipScorer(clip)
