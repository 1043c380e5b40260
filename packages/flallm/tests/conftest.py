"""Shared fixtures of flallm's tests: a tiny config, the toy tokenizer, a tiny finished run."""

from __future__ import annotations

import copy
import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY = {
    "data": {"synthetic": {"n_train": 16, "n_dev": 8, "n_test": 8}},
    "stage1": {"epochs": 1, "batch_size": 8, "val_every": 1},
    "stage2": {"epochs": 1, "batch_size": 8, "val_every": 1},
    "eval_batch_size": 8,
    "pictures": {"n_clips": 2},
    "trainer": {"enable_progress_bar": False},
}


@pytest.fixture
def tiny_overrides():
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def cfg():
    from vislab.config import deep_merge
    from vislab.run import load_preset

    return deep_merge(load_preset("flallm"), TINY)


@pytest.fixture(scope="session")
def splits(cfg):
    from flallm.data import load_splits

    return load_splits(cfg["data"])


@pytest.fixture(scope="session")
def tok(splits):
    from flallm.tokenizer import SignTokenizer

    return SignTokenizer.build_word_level([s["text"] for s in splits["train"]], "xx_XX")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The embedded default on a tiny budget, run once for the tests that inspect its outputs."""
    from flallm.train import train
    from vislab.testing import make_run

    out = tmp_path_factory.mktemp("run")
    run = make_run("flallm", out, copy.deepcopy(TINY))
    result = train(run)
    return out, result
