import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def scene():
    from sags.scene import make_scene

    return make_scene()


@pytest.fixture(scope="session")
def sphere_click(scene):
    from sags.scene import auto_click

    return auto_click(scene.train_inst[0], 1)


TINY = {
    "synthetic": {"size": 32, "n_train": 4, "n_test": 2, "spacing": 0.08},
    "strategy": {"refine_start_iter": 2, "refine_stop_iter": 50, "refine_every": 3},
}


@pytest.fixture
def rng():
    return np.random.default_rng(0), torch.Generator().manual_seed(0)
