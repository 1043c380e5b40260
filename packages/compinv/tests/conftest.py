"""Tiny random-init model folders shared by the compinv tests (built once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """A tiny SD folder and a judge CLIP folder (another model than the SD text encoder)."""
    from vislab.clip import tiny_clip
    from vislab.testing.models import tiny_sd_components

    root = tmp_path_factory.mktemp("compinv_models")
    tiny_sd_components().save(root / "sd")
    tiny_clip(seed=1).save(root / "judge")
    return {"sd": str(root / "sd"), "judge": str(root / "judge")}


@pytest.fixture(scope="session")
def small_cfg(tiny_dirs):
    return lambda **over: _small_cfg(tiny_dirs, **over)


def _small_cfg(tiny_dirs, **over):
    cfg = {"model": {"sd": tiny_dirs["sd"], "judge_clip": tiny_dirs["judge"]},
           "eval": {"limit": 2, "seeds": [0]}, "sampling": {"steps": 4}, "spatial": {"steps": 2},
           "trainer": {"max_steps": 3, "enable_progress_bar": False}, "inversion": {"batch_size": 2}}
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    return cfg
