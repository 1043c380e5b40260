"""Loss formulas against hand computations on fixed inputs."""

from __future__ import annotations

import torch
from despoofdiff.losses import (
    contrast_depth,
    contrast_kernels,
    contrastive_depth_loss,
    depth_loss,
    diffusion_loss,
)


def test_diffusion_loss_is_mse():
    a, b = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 0.0, 3.0, 0.0])
    assert torch.isclose(diffusion_loss(a, b), torch.tensor((4 + 16) / 4))


def test_contrast_kernels():
    k = contrast_kernels()
    assert k.shape == (8, 1, 3, 3)
    assert torch.all(k[:, 0, 1, 1] == -1) and torch.all(k.sum((1, 2, 3)) == 0)
    # each of the 8 neighbours exactly once
    assert torch.equal((k[:, 0] == 1).sum(0), torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 1]]))


def test_contrast_depth_by_hand():
    d = torch.tensor([[[[1.0, 3.0]]]])  # 1 x 2 map, zero padding
    c = contrast_depth(d)
    # at (0,0) neighbour right (kernel 4: +1 at (1,2)) is 3: 3 - 1 = 2; the other 7 see padding: -1
    assert torch.allclose(c[0, :, 0, 0], torch.tensor([-1.0, -1, -1, -1, 2, -1, -1, -1]))
    # at (0,1) neighbour left (kernel 3: +1 at (1,0)) is 1: 1 - 3 = -2; the others -3
    assert torch.allclose(c[0, :, 0, 1], torch.tensor([-3.0, -3, -3, -2, -3, -3, -3, -3]))


def test_cdl_and_depth_loss_by_hand():
    pred = torch.tensor([[[[1.0, 3.0]]]])
    zero = torch.zeros_like(pred)
    # CDL vs a zero map: (7*1 + 2^2 + 7*3^2 + (-2)^2) / 16 = 78 / 16
    assert torch.isclose(contrastive_depth_loss(pred, zero), torch.tensor(78 / 16))
    # total: MSE (1 + 9) / 2 = 5 plus the CDL
    assert torch.isclose(depth_loss(pred, zero), torch.tensor(5 + 78 / 16))
    assert torch.isclose(depth_loss(pred, zero, cdl_weight=0.0), torch.tensor(5.0))
    assert depth_loss(pred, pred) == 0
