"""The embedded default must keep learning something that transfers to the unseen target domain.

A shortened default run (the default's CLIP, head, optimiser and protocol O-C-I@M; 12 toy identities
per domain instead of 48 and 80 steps instead of 400; no linear probe) on a fixed seed. Measured when
written: target HTER 0.500 -> 0.417, AUC 0.500 -> 0.696 (about 30 s of CPU). A default that stops
learning (patch size, learning rates, data, a broken head) leaves HTER at chance and fails here.
"""

import json

from vislab.testing import make_run


def test_short_default_run_beats_chance_on_unseen_domain(tmp_path):
    from cfpl.train import train

    run = make_run("cfpl", tmp_path, {
        "data": {"steps_per_epoch": 20, "toy": {"identities": 12}},
        "baseline": {"enabled": False},
        "trainer": {"max_epochs": 4, "check_val_every_n_epoch": 1000, "enable_progress_bar": False},
    })
    assert run.config["clip"]["tiny"]["patch_size"] == 4 and run.config["data"]["protocol"] == "O-C-I@M"
    m = train(run)
    assert m["steps"] == 80 and m["n_target_videos"] == 48
    assert m["after"] <= m["before"] - 0.05, json.dumps(m)
    assert m["auc_after"] >= 0.62 and m["auc_after"] >= m["auc_before"] + 0.1, json.dumps(m)
