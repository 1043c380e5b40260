"""Tiny random-init model factories for the packages' tests (cheap: well under a second each once
torch/transformers/diffusers are imported).

    from vislab.testing.models import tiny_clip_model, tiny_sd_components, save_tiny_sd

- :func:`tiny_clip_model` -> :class:`vislab.clip.ClipEncoder` (32 px ViT, 32 tokens, D = 32).
- :func:`tiny_sd_components` -> :class:`vislab.diffusion.SDComponents` (32 px images, 8x8 latents,
  text width 32, 32 tokens).
- :func:`save_tiny_clip` / :func:`save_tiny_sd` write them as folders that ``load_clip`` / ``load_sd``
  (and diffusers' ``StableDiffusionPipeline.from_pretrained``) read: use them for "real checkpoint"
  code paths and CLI tests.
- Pytest fixtures (import them into your ``conftest.py``): ``tiny_clip_dir`` and ``tiny_sd_dir``
  (session-scoped saved folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_clip_model(backend: str = "hf", seed: int = 0, **overrides: Any):
    """A fresh random-init tiny CLIP (``backend`` "hf" or "open_clip"), eval mode, CPU."""
    from vislab.clip import tiny_clip

    return tiny_clip(backend, seed=seed, **overrides)


def tiny_sd_components(seed: int = 0, **overrides: Any):
    """A fresh random-init tiny Stable Diffusion (same classes as SD 1.x), eval mode, CPU."""
    from vislab.diffusion import tiny_sd

    return tiny_sd(seed=seed, **overrides)


def save_tiny_clip(path: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny Hugging Face CLIP folder at ``path`` (loadable by ``vislab.clip.load_clip``)."""
    return tiny_clip_model("hf", seed=seed, **overrides).save(path)


def save_tiny_sd(path: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny diffusers Stable Diffusion folder at ``path`` (loadable by ``vislab.diffusion.load_sd``)."""
    return tiny_sd_components(seed=seed, **overrides).save(path)


try:  # pytest is a test-time dependency only
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def tiny_clip_dir(tmp_path_factory) -> Path:
        """Session-scoped folder holding a saved tiny CLIP."""
        return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip") / "clip")

    @pytest.fixture(scope="session")
    def tiny_sd_dir(tmp_path_factory) -> Path:
        """Session-scoped folder holding a saved tiny Stable Diffusion."""
        return save_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd")
