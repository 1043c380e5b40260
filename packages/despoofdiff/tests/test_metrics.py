"""The reported metrics on small fixed inputs, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from despoofdiff.metrics import auc, eer_threshold, evaluate, roc_curve

S = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.1, 0.65])
Y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
A = ["live", "live", "live", "print", "print", "replay", "replay", "replay"]


def test_evaluate_by_hand():
    m = evaluate(S, Y, 0.5, A)
    # live 0.9 0.8 0.3: one rejected -> BPCER 1/3; print 0.6 0.2: 1/2 accepted; replay 0.7 0.1 0.65: 2/3 accepted
    assert m["bpcer"] == pytest.approx(1 / 3)
    assert m["apcer_print"] == pytest.approx(1 / 2) and m["apcer_replay"] == pytest.approx(2 / 3)
    assert m["apcer"] == pytest.approx(2 / 3)  # worst PAI (OULU convention)
    assert m["acer"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["hter"] == pytest.approx((3 / 5 + 1 / 3) / 2)  # FAR over all attacks
    # AUC: pairs (live > attack): 0.9 and 0.8 beat all 5; 0.3 beats 0.2 and 0.1 -> (5 + 5 + 2) / 15
    assert m["auc"] == pytest.approx(12 / 15) and auc(S, Y) == pytest.approx(12 / 15)


def test_eer_threshold_separates_a_clean_split():
    thr, eer = eer_threshold([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert eer == 0.0 and 0.2 < thr <= 0.8
    assert evaluate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], thr)["acer"] == 0.0


def test_roc_curve_endpoints():
    fpr, tpr = roc_curve(S, Y)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_study_paired_interval_by_hand():
    """Paired two-stream - ablation differences over seeds with the 95 % Student-t interval (n = 3, t = 4.303)."""
    from despoofdiff.study import markdown, summarise, t_interval

    mean, sd, lo, hi = t_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and sd == pytest.approx(0.1)
    assert (lo, hi) == pytest.approx((0.2 - 4.302653 * 0.1 / 3**0.5, 0.2 + 4.302653 * 0.1 / 3**0.5), abs=1e-6)
    per_seed = {s: {"both": {"test_acer": a}, "rgb": {"test_acer": b}} for s, a, b in ((0, 0.10, 0.20), (1, 0.05, 0.25), (2, 0.0, 0.1))}
    out = summarise(per_seed)
    p = out["paired"]["rgb"]["test_acer"]
    assert p["diffs"] == pytest.approx([-0.1, -0.2, -0.1]) and p["two_stream_better_all_seeds"]
    assert out["models"]["both"]["test_acer"]["mean"] == pytest.approx(0.05)
    assert "| RGB only |" in markdown(out)
