import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY = dict(image_size=32, patch_size=8, embed_dim=32, text_width=64, vision_width=64, text_layers=2, vision_layers=2, heads=2, context_length=24)

SMALL = {
    "clip": {"tiny": TINY},
    "data": {"batch_size": 8, "steps_per_epoch": 3, "toy": {"identities": 4, "size": 32, "frames": 1}},
    "unseen": {"enabled": True, "max_epochs": 1},
    "trainer": {"max_epochs": 1, "check_val_every_n_epoch": 1, "enable_progress_bar": False},
}


@pytest.fixture(scope="session")
def clip():
    from vislab.clip import tiny_clip

    return tiny_clip(**TINY)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    from uniattack.train import train
    from vislab.config import dump_yaml
    from vislab.testing import make_run

    out = tmp_path_factory.mktemp("ua_run")
    run = make_run("uniattack", out, SMALL)
    (out / "config.yaml").write_text(dump_yaml(run.config))
    return out, train(run)
