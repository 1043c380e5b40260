"""Loss and metric formulas on small fixed inputs, by hand."""

import math

import numpy as np
import torch
from cfpl.losses import cls_loss, ptm_loss, total_loss
from cfpl.metrics import evaluate_scores, hter, video_scores


def test_cls_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    want = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(1 / (1 + math.e))) / 2
    assert abs(cls_loss(logits, y).item() - want) < 1e-6


def test_ptm_and_total_by_hand():
    logits = torch.zeros(6, 2)
    target = torch.tensor([1, 1, 0, 0, 0, 0])
    assert abs(ptm_loss(logits, target).item() - math.log(2)) < 1e-6
    assert total_loss(torch.tensor(1.0), torch.tensor(2.0), 0.5).item() == 2.0
    assert total_loss(torch.tensor(1.0), None).item() == 1.0


def test_hter_by_hand():
    # live scores 0.9, 0.8, 0.3; attack scores 0.4, 0.2, 0.1. At thr 0.4: FAR 1/3, FRR 1/3.
    s = np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0])
    assert abs(hter(s, y, 0.4) - 1 / 3) < 1e-9
    assert abs(hter(s, y, 0.85) - (0 + 2 / 3) / 2) < 1e-9
    r = evaluate_scores(s, y)
    assert abs(r["hter"] - 1 / 3) < 1e-9
    assert abs(r["auc"] - 8 / 9) < 1e-9  # 8 of 9 live-attack pairs ordered correctly


def test_video_averaging():
    s = [0.9, 0.1, 0.2, 0.4]
    y = [1, 1, 0, 0]
    vs, vy = video_scores(s, y, ["a", "a", "b", "b"])
    assert np.allclose(vs, [0.5, 0.3]) and vy.tolist() == [1, 0]
    assert evaluate_scores(s, y, ["a", "a", "b", "b"])["hter"] == 0.0
