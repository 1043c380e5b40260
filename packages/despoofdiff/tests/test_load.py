"""``vislab.models.load_run`` restores a finished run's de-spoofing pipeline through ``despoofdiff.load``."""

from __future__ import annotations

import pytest
import torch


def test_load_run_restores_predict_model(tiny_run, tmp_path):
    from despoofdiff.commands import load_module
    from despoofdiff.module import ClassifierModule
    from vislab.errors import InputError
    from vislab.models import load_run

    out, _ = tiny_run
    m = load_run(out, package="despoofdiff")
    assert isinstance(m, ClassifierModule) and not m.training
    ref = load_module(out)  # what `despoofdiff predict --checkpoint RUN` uses
    sa, sb = m.state_dict(), ref.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert float(m.threshold) == float(ref.threshold)
    pipe = load_run(out, package="despoofdiff", checkpoint="despoofdiff.ckpt")
    assert isinstance(pipe, ClassifierModule)
    with pytest.raises(InputError, match="checkpoint"):
        load_run(tmp_path, package="despoofdiff")
