"""Losses and metrics on small fixed inputs against hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffspeaker.losses import diffspeaker_loss, velocity_loss, vertex_loss
from diffspeaker.metrics import (
    aggregate,
    confidence_interval,
    lip_max_errors,
    lip_vertex_error,
    upper_face_dynamics,
    upper_face_dynamics_deviation,
)


def test_vertex_and_velocity_loss_hand():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 5.0], [9.0, 9.0]]])  # (B=1,T=3,F=2)
    gt = torch.tensor([[[0.0, 2.0], [3.0, 3.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # last frame padded
    # masked diffs: (1,0),(0,2),(0,0) -> squares 1+0+0+4+0+0 = 5 over 6 elements
    assert vertex_loss(pred, gt, mask).item() == pytest.approx(5 / 6)
    # masked pred: [1,2],[3,5],[0,0] -> vel [2,3],[-3,-5]; gt: [0,2],[3,3],[0,0] -> vel [3,1],[-3,-3]
    # diffs (-1,2),(0,-2) -> 1+4+0+4 = 9 over 4 elements
    assert velocity_loss(pred, gt, mask).item() == pytest.approx(9 / 4)
    total = diffspeaker_loss(pred, gt, mask)
    assert total["loss"].item() == pytest.approx(5 / 6 + 9 / 4)
    assert diffspeaker_loss(pred, gt, mask, 2.0, 0.5)["loss"].item() == pytest.approx(2 * 5 / 6 + 0.5 * 9 / 4)
    assert vertex_loss(pred, gt).item() == pytest.approx((1 + 4 + 81 + 81) / 6)


def test_lve_squared_max_over_lips():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [1, 0, 0]  # sq err 1
    pred[0, 2] = [1, 1, 1]  # sq err 3
    pred[1, 0] = [0, 2, 0]  # sq err 4
    pred[1, 1] = [9, 9, 9]  # not a lip vertex
    lips = [0, 2]
    assert lip_max_errors(pred, gt, lips).tolist() == [3.0, 4.0]
    assert lip_vertex_error(pred, gt, lips) == pytest.approx(3.5)
    assert lip_vertex_error(pred.reshape(2, 9), gt.reshape(2, 9), lips) == pytest.approx(
        3.5
    )  # (T,3V) accepted


def test_fdd_signed_population_std():
    tpl = np.zeros((2, 3))
    gt = np.zeros((3, 2, 3))
    gt[:, 0, 0] = [0, 1, 2]  # ||u||^2 = 0,1,4 -> std (ddof 0) = sqrt(((0-5/3)^2+(1-5/3)^2+(4-5/3)^2)/3)
    gt[:, 1, 1] = [1, 1, 1]  # std 0
    s = np.sqrt(((0 - 5 / 3) ** 2 + (1 - 5 / 3) ** 2 + (4 - 5 / 3) ** 2) / 3)
    assert upper_face_dynamics(gt, [0, 1]) == pytest.approx(s / 2)
    assert upper_face_dynamics(gt, [0, 1, 1, 0]) == pytest.approx(s / 2)  # union of regions, unique
    pred = np.zeros((3, 2, 3))
    pred[:, 1, 2] = [0, 0, 3]  # sq 0,0,9 -> std sqrt(18)
    assert upper_face_dynamics_deviation(pred, gt, tpl, [0, 1]) == pytest.approx(s / 2 - np.sqrt(18) / 2)
    assert upper_face_dynamics_deviation(gt, gt, tpl, [0, 1]) == 0


def test_aggregate_and_ci():
    agg = aggregate([[1.0, 3.0], [4.0]], [1, 3])
    assert agg["mean"] == pytest.approx(3.0) and agg["weighted"] == pytest.approx((2 * 1 + 4 * 3) / 4)
    m, ci = confidence_interval([1.0, 3.0])
    assert m == 2.0 and ci == pytest.approx(1.96 * 1.0 / np.sqrt(2))
