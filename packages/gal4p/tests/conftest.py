"""Shared fixtures: tiny random SD / CLIP folders, a toy concept, a fake CLIP scorer, one finished run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch.set_num_threads(1)

from vislab.testing.models import tiny_clip_dir, tiny_sd_dir  # noqa: E402,F401


def _vec(key: str, dim: int = 16) -> torch.Tensor:
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return F.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(seed)), dim=0)


class FakeScorer:
    """Deterministic scorer. ``behaviour``: ``random`` (image features from the pixels' hash) or ``overfit``
    (every image equals the first reference caption: every sample is flagged as overfit)."""

    def __init__(self, behaviour: str = "random", captions: list[str] | None = None):
        self.behaviour, self.captions = behaviour, captions or []

    def encode_texts(self, texts):
        return torch.stack([_vec("t:" + t) for t in texts])

    def encode_images(self, pixels):
        if self.behaviour == "overfit":
            return torch.stack([_vec("t:" + self.captions[0]) for _ in pixels])
        return torch.stack([_vec("i:" + hashlib.sha256((x * 255).round().byte().numpy().tobytes()).hexdigest()) for x in pixels])


@pytest.fixture(scope="session")
def concept(tmp_path_factory) -> Path:
    from gal4p.data import make_toy_concept

    return make_toy_concept(tmp_path_factory.mktemp("concept"), n_images=2, resolution=32)


def tiny_overrides(sd: Path, clip: Path, **extra) -> dict:
    """Config overrides for a seconds-long run on the tiny random SD/CLIP."""
    cfg = {
        "model": {"sd": str(sd), "clip": str(clip)},
        "data": {"num_class_images": 2, "toy": {"n_images": 2}},
        "batch_size": 1,
        "al": {"total_rounds": 2, "num_directions": 3, "samples_per_direction": 2, "topk": 1, "query_steps": 2,
               "compare_random": True},
        "eval": {"steps": 2, "images_per_prompt": 1, "prompts": None},
        "trainer": {"max_steps": 2, "enable_progress_bar": False},
    }
    for k, v in extra.items():
        if isinstance(v, dict):
            cfg.setdefault(k, {}).update(v)
        else:
            cfg[k] = v
    return cfg


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_sd_dir, tiny_clip_dir):  # noqa: F811
    """One complete tiny run (uncertainty + random comparison), shared by several tests."""
    from gal4p.train import train
    from vislab.testing import make_run

    out = tmp_path_factory.mktemp("run")
    run = make_run("gal4p", out, tiny_overrides(tiny_sd_dir, tiny_clip_dir))
    metrics = train(run)
    return out, metrics


@pytest.fixture(scope="session")
def fake_scorer():
    """The :class:`FakeScorer` class (test modules cannot import conftest under --import-mode=importlib)."""
    return FakeScorer
