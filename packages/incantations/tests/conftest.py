"""Tiny frozen models shared by the incantations tests (random init, built once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """A tiny SD folder, a guidance CLIP folder whose text tower matches the SD text encoder, a judge CLIP."""
    from vislab.clip import tiny_clip
    from vislab.testing.models import tiny_sd_components

    root = tmp_path_factory.mktemp("tiny_models")
    sd = tiny_sd_components()
    sd.save(root / "sd")
    width = sd.text_encoder.config.hidden_size
    tiny_clip(seed=0, text_width=width, heads=2).save(root / "guide")
    tiny_clip(seed=1, text_width=width, heads=2).save(root / "judge")
    return {"sd": str(root / "sd"), "guide": str(root / "guide"), "judge": str(root / "judge")}


@pytest.fixture(scope="session")
def frozen(tiny_dirs):
    from incantations.pipeline import load_models

    fr, judge = load_models({"sd": tiny_dirs["sd"], "guidance_clip": tiny_dirs["guide"], "judge_clip": tiny_dirs["judge"]})
    return fr, judge
