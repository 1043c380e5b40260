"""``vislab.models.load_run`` restores a finished run's personalised SD through ``gal4p.load``."""

from __future__ import annotations

import json

import pytest
import torch


def test_load_run_restores_final_round(finished_run, tmp_path):
    from gal4p.learner import load_personalized
    from vislab.errors import InputError
    from vislab.models import load_run

    out, _ = finished_run
    sd = load_run(out, package="gal4p")
    info = json.loads(next((out / "model").glob("*.json")).read_text())
    assert sd.info["learner"] == info["learner"] and sd.info["round"] == info["round"]
    assert not sd.unet.training and sd.device.type == "cpu"
    ref, _ = load_personalized(out / "model", device="cpu")
    for a, b in ((sd.unet, ref.unet), (sd.text_encoder, ref.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # any saved round of the loop loads too; a missing one says how to pick another
    r1 = load_run(out, package="gal4p", round_index=1)
    assert r1.info["round"] == 1
    with pytest.raises(InputError, match="round_index"):
        load_run(out, package="gal4p", round_index=99)
    with pytest.raises(InputError):
        load_run(tmp_path, package="gal4p")
