"""Queries and evaluations run on the run's device (vislab.runtime.device()), not where fit left the model.

The ``meta`` device stands in for a GPU: ``vislab.runtime.device`` is patched to return it, and the sampling
call records the device of the UNet it is given.
"""

import pytest
import pytorch_lightning as pl
import torch
from gal4p.data import read_records, reference_captions
from gal4p.loop import GALLoop
from vislab.run import load_preset


class _Stop(Exception):
    pass


def test_query_runs_on_the_runtime_device(tiny_sd_dir, concept, tmp_path, fake_scorer, monkeypatch):
    import gal4p.loop as loop_mod
    from vislab import runtime
    from vislab.diffusion import load_sd

    cfg = load_preset("gal4p")
    cfg["al"].update({"total_rounds": 2, "num_directions": 3, "samples_per_direction": 2, "topk": 1, "query_steps": 2})
    recs = read_records(concept, "object")
    caps = reference_captions(recs, "object")
    loop = GALLoop(cfg, tmp_path, str(tiny_sd_dir), recs, caps, "a sks star", fake_scorer("random", caps),
                   lambda r: pl.Trainer(max_steps=1, logger=False), identifier="sks", class_word="star", log=lambda m: None)
    seen = {}

    def fake_generate(sd, *a, **k):
        seen["device"] = sd.device
        raise _Stop

    monkeypatch.setattr(runtime, "device", lambda: torch.device("meta"))
    monkeypatch.setattr(loop_mod, "generate", fake_generate)
    sd = load_sd(tiny_sd_dir)  # on the CPU, as Lightning leaves a learner after fit
    with pytest.raises(_Stop):
        loop.query_round(1, sd)
    assert seen["device"].type == "meta"
