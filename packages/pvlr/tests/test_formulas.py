"""Losses and metrics against hand computations on small fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pvlr.losses import asymmetric_loss
from pvlr.metrics import average_precision, mean_average_precision, prf_metrics


def test_asl_matches_hand_computation():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    # gamma+ = 0: positives are plain BCE; negatives use p_m = max(p - 0.05, 0) with weight p_m^4
    pm = (p - 0.05).clamp(min=0)
    row0 = -(math.log(p[0, 0]) + pm[0, 1] ** 4 * math.log(1 - pm[0, 1]))
    row1 = -(pm[1, 0] ** 4 * math.log(1 - pm[1, 0]) + math.log(p[1, 1]))
    expected = (row0 + row1) / 2
    assert asymmetric_loss(logits, y).item() == pytest.approx(float(expected), rel=1e-5)
    # gamma = 0, margin = 0 is binary cross-entropy summed over classes
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / 2
    assert asymmetric_loss(logits, y, gamma_neg=0, margin=0).item() == pytest.approx(bce.item(), rel=1e-5)
    # ignored entries (-1) contribute nothing
    y_ign = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    assert asymmetric_loss(logits, y_ign).item() == pytest.approx(float(row0 + row1 - (-(pm[0, 1] ** 4 * math.log(1 - pm[0, 1])))) / 2, rel=1e-5)


def test_average_precision_by_hand():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2], [0.1, 0.6]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    ap = average_precision(scores, targets)
    # class 0 ranking: 0.9(+) 0.8(-) 0.3(+) 0.1(-): (1/1 + 2/3) / 2
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    # class 1 ranking: 0.7(+) ...: AP 1
    assert ap[1] == pytest.approx(1.0)
    assert mean_average_precision(scores, targets) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1) / 2)


def test_ap_skips_classes_without_positives_and_ignored_entries():
    scores = np.array([[0.9, 0.5], [0.8, 0.4], [0.1, 0.3]])
    targets = np.array([[-1, 0], [1, 0], [0, 0]])
    ap = average_precision(scores, targets)
    assert ap[0] == pytest.approx(1.0)  # the ignored 0.9 is out of the ranking
    assert np.isnan(ap[1])
    assert mean_average_precision(scores, targets) == pytest.approx(100.0)


def test_prf_by_hand():
    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.8]])
    targets = np.array([[1, 0, 0], [0, 1, 1]])
    m = prf_metrics(scores, targets, threshold=0.5, top_k=1)
    # predicted: img0 {0,1}, img1 {1,2}; per class tp: [1,1,1], pred: [1,2,1], gt: [1,1,1]
    cp = (1 + 0.5 + 1) / 3
    cr = 1.0
    assert m["CP"] == pytest.approx(100 * cp)
    assert m["CR"] == pytest.approx(100 * cr)
    assert m["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    assert m["OP"] == pytest.approx(100 * 3 / 4)
    assert m["OR"] == pytest.approx(100.0)
    # top-1: img0 {0} (tp), img1 {2} (tp): OP 100, OR 2/3
    assert m["OP_top1"] == pytest.approx(100.0)
    assert m["OR_top1"] == pytest.approx(100 * 2 / 3)


def test_ap_matches_sklearn_with_ties():
    """Parity with sklearn's average_precision_score, tied blocks included (positives first inside a tie
    must not earn credit for the order)."""
    from sklearn.metrics import average_precision_score

    # saturated float32 sigmoids: 0.9 scores tie at 1.0 with positives listed first
    logits = torch.tensor([[30.0], [25.0], [20.0], [40.0], [-1.0], [0.5]])
    probs = torch.sigmoid(logits)
    targets = np.array([[1], [1], [0], [0], [1], [0]])
    assert float(probs[:4].min()) == 1.0  # the ties the float32 sigmoid creates
    want = average_precision_score(targets[:, 0], probs.double().numpy()[:, 0])
    assert average_precision(probs, targets)[0] == pytest.approx(want, abs=1e-12)
    # ranked by logits there are no ties; still sklearn's value
    assert average_precision(logits, targets)[0] == pytest.approx(average_precision_score(targets[:, 0], logits.numpy()[:, 0]))
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(50, 6)).astype(np.float64)  # heavy ties
    t = (rng.random((50, 6)) < 0.3).astype(int)
    t[0] = 1
    want = [average_precision_score(t[:, k], s[:, k]) for k in range(6)]
    assert np.allclose(average_precision(s, t), want, atol=1e-12)
    assert mean_average_precision(s, t) == pytest.approx(100 * np.mean(want))


def test_evaluate_ranks_by_logits():
    """A model whose scores all saturate after the sigmoid is still ranked correctly."""
    from pvlr.module import evaluate

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x[:, :, 0, 0] + self.w

    x = torch.tensor([40.0, 30.0, 20.0, 35.0]).view(4, 1, 1, 1)
    y = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    m = evaluate(Fixed(), [(x, y)])
    # ranking 40(-) 35(+) 30(+) 20(-): AP = (1/2 + 2/3) / 2
    assert m["mAP"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
