"""Shared fixtures: one tiny trained run (session scope) reused by the predict / round-trip / bad-input tests."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: the smallest run that still goes through every stage (16 px toy faces, 3 steps each)
TINY = {
    "data": {"resolution": 16, "toy": {"identities": 4, "frames": 2}},
    "diffusion": {"steps": 3, "batch_size": 8},
    "bridge": {"steps": 2},
    "classifier": {"steps": 3, "batch_size": 8, "val_every_n_epochs": 1},
    "ablations": [],
    "pictures": 2,
    "trainer": {"enable_progress_bar": False},
}


@pytest.fixture(scope="session")
def tiny_cfg():
    """The tiny overrides (a copy)."""
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run folder, metrics) of the tiny configuration trained once."""
    from despoofdiff.train import train
    from vislab.testing import make_run

    out = tmp_path_factory.mktemp("despoofdiff_run")
    run = make_run("despoofdiff", out, TINY)
    metrics = train(run)
    return out, metrics
