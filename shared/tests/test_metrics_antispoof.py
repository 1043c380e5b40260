"""Anti-spoofing metrics against hand computations on small fixed inputs (live = 1 = positive, score = P(live))."""

import numpy as np
import pytest
import torch
from vislab import metrics as M

# live scores 0.9, 0.8, 0.6, 0.3; attack scores 0.7, 0.4, 0.2, 0.1
S = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
Y = [1, 1, 0, 1, 0, 1, 0, 0]
A = ["live", "live", "print", "live", "replay", "live", "print", "replay"]


def test_apcer_bpcer_acer_hter_at_fixed_threshold():
    # thr 0.5: attacks accepted {0.7} -> 1/4; live rejected {0.3} -> 1/4
    assert M.apcer(S, Y, 0.5) == pytest.approx(0.25)
    assert M.bpcer(S, Y, 0.5) == pytest.approx(0.25)
    assert M.acer(S, Y, 0.5) == pytest.approx(0.25)
    assert M.hter(S, Y, 0.5) == pytest.approx(0.25)
    assert M.accuracy(S, Y, 0.5) == pytest.approx(6 / 8)
    # thr 0.75: attacks accepted none -> 0; live rejected {0.6, 0.3} -> 2/4
    assert M.apcer(S, Y, 0.75) == 0.0
    assert M.bpcer(S, Y, 0.75) == pytest.approx(0.5)
    assert M.acer(S, Y, 0.75) == pytest.approx(0.25)
    # a score equal to the threshold is accepted as live
    assert M.bpcer(S, Y, 0.6) == pytest.approx(0.25)
    assert M.apcer(S, Y, 0.7) == pytest.approx(0.25)


def test_apcer_worst_attack_type():
    # thr 0.5: print attacks {0.7, 0.2} -> 1/2 accepted; replay {0.4, 0.1} -> 0
    per = M.apcer_per_attack(S, Y, 0.5, A)
    assert per == {"print": 0.5, "replay": 0.0}
    assert M.apcer(S, Y, 0.5, attack=A) == 0.5
    assert M.acer(S, Y, 0.5, attack=A) == pytest.approx((0.5 + 0.25) / 2)


def test_auc_hand_count():
    # pairs (live > attack): 0.9 -> 4, 0.8 -> 4, 0.6 -> 3, 0.3 -> 2 = 13 of 16
    assert M.auc(S, Y) == pytest.approx(13 / 16)
    assert M.auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # a tie counts one half
    assert M.auc([1.0, 0.0], [1, 0]) == 1.0
    assert M.auc([0.0, 1.0], [1, 0]) == 0.0


def test_eer_and_its_threshold():
    # thresholds: 0.4 -> FAR 2/4, FRR 1/4; 0.6 -> FAR 1/4, FRR 1/4 (equal); 0.7 -> FAR 1/4, FRR 2/4
    assert M.threshold_at_eer(S, Y) == pytest.approx(0.6)
    assert M.eer(S, Y) == pytest.approx(0.25)
    # perfectly separated: the threshold is the lowest live score, EER 0
    assert M.threshold_at_eer([0.2, 0.8], [0, 1]) == pytest.approx(0.8)
    assert M.eer([0.2, 0.8], [0, 1]) == 0.0
    # inverted scores (attack 0.8, live 0.2): thr 0.2 -> FAR 1, FRR 0; thr 0.8 -> FAR 1, FRR 1 (equal);
    # +inf -> FAR 0, FRR 1. EER = 1 at 0.8
    assert M.threshold_at_eer([0.8, 0.2], [0, 1]) == pytest.approx(0.8)
    assert M.eer([0.8, 0.2], [0, 1]) == pytest.approx(1.0)
    # ties in |FAR - FRR| go to the larger threshold: live 0.5, 0.9; attack 0.7, 0.1
    # thr 0.5 -> FAR 1/2, FRR 0 (d 1/2); 0.7 -> FAR 1/2, FRR 1/2 (d 0); 0.9 -> FAR 0, FRR 1/2 (d 1/2)
    assert M.threshold_at_eer([0.5, 0.9, 0.7, 0.1], [1, 1, 0, 0]) == pytest.approx(0.7)
    # live 0.6, attack 0.4, 0.5: thr 0.4 -> (1, 0) d 1; 0.5 -> (1/2, 0) d 1/2; 0.6 -> (0, 0) d 0
    assert M.threshold_at_eer([0.6, 0.4, 0.5], [1, 0, 0]) == pytest.approx(0.6)


def test_roc_and_tpr_at_fpr():
    fpr, tpr, thr = M.roc_curve(S, Y)
    assert thr[0] == np.inf
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0, 1.0])
    assert M.tpr_at_fpr(S, Y, 0.01) == pytest.approx(0.5)
    assert M.tpr_at_fpr(S, Y, 0.25) == pytest.approx(0.75)
    # a live/attack tie makes a diagonal ROC segment: (0, .5) -> (.5, 1); interpolated at .25 -> .75
    s2, y2 = [0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]
    assert M.tpr_at_fpr(s2, y2, 0.25) == pytest.approx(0.75)
    assert M.tpr_at_fpr(s2, y2, 0.25, interpolate=False) == pytest.approx(0.5)  # FLIP's step rule


def test_evaluate_uses_dev_threshold():
    dev_s, dev_y = [0.9, 0.2], [1, 0]  # dev EER threshold = 0.9
    r = M.evaluate(S, Y, dev_scores=dev_s, dev_live=dev_y)
    assert r["threshold"] == pytest.approx(0.9) and r["threshold_from"] == 1
    assert r["apcer"] == 0.0
    assert r["bpcer"] == pytest.approx(0.75)  # live 0.8, 0.6, 0.3 below 0.9
    assert r["acer"] == pytest.approx(0.375)
    assert r["hter"] == pytest.approx(0.375)
    assert r["auc"] == pytest.approx(13 / 16)
    r2 = M.evaluate(S, Y)  # no dev set: the test set's own EER threshold
    assert r2["threshold"] == pytest.approx(0.6) and r2["threshold_from"] == 2
    assert r2["hter"] == pytest.approx(0.25)


def test_inputs_torch_and_errors():
    assert M.auc(torch.tensor(S), torch.tensor(Y)) == pytest.approx(13 / 16)
    with pytest.raises(ValueError, match="length"):
        M.auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="attack"):
        M.auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0 .attack. or 1"):
        M.auc([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        M.eer([float("nan"), 0.2], [1, 0])


def test_video_scores_average_frames():
    v = M.video_scores([0.2, 0.4, 0.9, 0.7], ["a", "a", "b", "b"], live=[0, 0, 1, 1])
    assert v["videos"] == ["a", "b"]
    np.testing.assert_allclose(v["scores"], [0.3, 0.8])
    np.testing.assert_array_equal(v["live"], [0, 1])
    with pytest.raises(ValueError, match="mixes"):
        M.video_scores([0.2, 0.4], ["a", "a"], live=[0, 1])


def test_plots_write_png(tmp_path):
    M.plot_roc(tmp_path / "roc.png", {"toy": (S, Y)})
    M.plot_confusion(tmp_path / "cm.png", [0, 1, 1, 0], [0, 1, 0, 0], ["live", "spoof"])
    for f in ("roc.png", "cm.png"):
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
