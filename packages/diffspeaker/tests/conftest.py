"""Shared fixtures: one short training run of the embedded default, reused by several tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY = {
    "data": {"train_clips": 24, "test_clips": 6},
    "sampling": {"steps": 10, "val_steps": 5},
    "eval": {"video": False},
    "trainer": {"max_steps": 60, "check_val_every_n_epoch": 5, "enable_progress_bar": False},
}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(run folder, metrics) of the default config on a reduced budget."""
    import torch
    from diffspeaker.train import train
    from vislab.testing import make_run

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ds_run")
    run = make_run("diffspeaker", out, TINY)
    from vislab.config import dump_yaml

    (out / "config.yaml").write_text(dump_yaml(run.config))  # start_run's job on the command line
    metrics = train(run)
    return out, metrics
