"""Paired statistics: checked against a hand computation."""

import math

import numpy as np
import pytest
from vislab.metrics.paired import format_paired, paired_stats


def test_paired_stats_hand_computation():
    # d = a - b = [1, 0, 1, 2]: mean 1, sd sqrt(2/3), se sqrt(2/3)/2, t_{0.975, 3} = 3.182446
    s = paired_stats([1, 2, 3, 4], [0, 2, 2, 2])
    assert s["n"] == 4 and s["mean_a"] == 2.5 and s["mean_b"] == 1.5 and s["diff"] == 1.0
    se = math.sqrt(2 / 3) / 2
    assert s["diff_sd"] == pytest.approx(math.sqrt(2 / 3))
    assert s["ci_low"] == pytest.approx(1 - 3.182446 * se, abs=1e-5)
    assert s["ci_high"] == pytest.approx(1 + 3.182446 * se, abs=1e-5)
    assert s["t"] == pytest.approx(1 / se)
    assert s["p_value"] == pytest.approx(0.0917, abs=5e-4)
    assert not s["significant"]  # the interval [-0.30, 2.30] holds 0


def test_paired_beats_unpaired_when_items_share_variance():
    rng = np.random.default_rng(0)
    item = rng.normal(0, 1, 200)  # per-prompt difficulty shared by both methods
    a = item + 0.1 + rng.normal(0, 0.05, 200)
    b = item + rng.normal(0, 0.05, 200)
    s = paired_stats(a, b)
    assert s["significant"] and s["ci_low"] > 0.05 and s["ci_high"] < 0.15
    assert paired_stats(b, a)["diff"] == pytest.approx(-s["diff"])


def test_paired_stats_edge_cases():
    s = paired_stats([1.0, 1.0], [0.0, 0.0])  # constant difference: zero-width interval
    assert s["ci_low"] == s["ci_high"] == 1.0 and s["significant"] and s["p_value"] == 0.0
    one = paired_stats([1.0], [0.5])
    assert one["diff"] == 0.5 and math.isinf(one["ci_high"]) and not one["significant"]
    with pytest.raises(ValueError):
        paired_stats([1, 2], [1])
    with pytest.raises(ValueError):
        paired_stats([], [])
    line = format_paired(paired_stats([1, 2, 3, 4], [0, 2, 2, 2]), "method", "base")
    assert line.startswith("method 2.5 vs base 1.5: diff +1 [95 % CI") and line.endswith("n = 4")
