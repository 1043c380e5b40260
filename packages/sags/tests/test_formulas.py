"""Losses, metrics and the SA-GS steps on small fixed inputs, checked by hand."""

import math

import numpy as np
import pytest
import torch
from sags.cameras import Camera, intrinsics
from sags.losses import l1, photometric_loss
from sags.metrics import iou_3d, mask_accuracy, mask_iou, mean_iou_acc
from sags.render import psnr, ssim
from sags.segment import SegmentConfig, assign_labels, decompose_view, farthest_points, lift_clicks, vote
from vislab.errors import VislabError


def test_l1_ssim_psnr_loss():
    a = torch.zeros(1, 16, 16, 3)
    b = torch.full((1, 16, 16, 3), 0.5)
    assert l1(a, b).item() == pytest.approx(0.5)
    assert psnr(a, b).item() == pytest.approx(-10 * math.log10(0.25))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    # constant images: SSIM = (2·0·0.5 + C1)(C2) / ((0 + 0.25 + C1)(C2)) = C1 / (0.25 + C1)
    c1 = 0.01**2
    m = ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), reduce=False)
    assert torch.allclose(
        m[0, :, 5:-5, 5:-5], torch.tensor(c1 / (0.25 + c1)), rtol=1e-4, atol=0
    )  # away from the zero padding
    loss, parts = photometric_loss(a, b, 0.2)
    assert loss.item() == pytest.approx(0.8 * 0.5 + 0.2 * (1 - m.mean().item()), rel=1e-5)


def test_mask_metrics():
    p = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    g = torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)
    assert mask_iou(p, g) == pytest.approx(1 / 3)
    assert mask_accuracy(p, g) == pytest.approx(0.5)
    assert mean_iou_acc([p, g], [g, g]) == (pytest.approx((1 / 3 + 1) / 2), pytest.approx(0.75))
    assert iou_3d(
        torch.tensor([1, 1, 0, 1]).bool(),
        torch.tensor([1, 0, 0, 1]).bool(),
        torch.tensor([1, 1, 1, 0]).bool(),
    ) == pytest.approx(0.5)


def test_vote_all_and_valid():
    # 10 views, 3 Gaussians
    vl = torch.full((10, 3), -1, dtype=torch.int8)
    vl[:8, 0] = 1  # 8/10 > 0.7 -> object
    vl[:7, 1] = 1  # 7/10 is not > 0.7
    vl[:4, 2] = 1  # 4 of 4 valid views
    assert vote(vl, 0.7, "all").tolist() == [True, False, False]
    assert vote(vl, 0.7, "valid").tolist() == [True, True, True]
    vl[:2, 2] = -1  # only 2 valid views: fewer than max(3, 0.3 V)
    vl[2:4, 2] = 1
    vl[:2, 2] = -1
    vl[2, 2] = -1
    assert vote(vl, 0.7, "valid").tolist()[2] is False


def test_official_vote_needs_the_mode_below_half():
    # 10 views: n1 = 4 > 0.3 V in both columns; column 0 has 1 as its mode, column 1 has 0 (5 views)
    vl = torch.full((10, 3), -1, dtype=torch.int8)
    vl[:4, 0] = 1
    vl[4:7, 0] = 0  # counts 1:4, 0:3, -1:3 -> mode 1
    vl[:4, 1] = 1
    vl[4:9, 1] = 0  # counts 1:4, 0:5, -1:1 -> mode 0
    vl[:4, 2] = 1
    vl[4:8, 2] = 0  # counts 1:4, 0:4, -1:2 -> tie, torch.mode gives 0
    assert vote(vl, 0.3, "all").tolist() == [True, True, True]
    assert vote(vl, 0.3, "official").tolist() == [True, False, False]
    assert torch.mode(vl.long().T, 1).values.tolist() == [1, 0, 0]  # the rule it follows
    vl2 = torch.full((10, 2), 0, dtype=torch.int8)
    vl2[:8, 0] = 1
    vl2[:7, 1] = 1
    assert vote(vl2, 0.7, "official").tolist() == vote(vl2, 0.7, "all").tolist() == [True, False]


def _cam(W=20, H=16, f=20.0):
    vm = torch.eye(4)
    vm[2, 3] = 5.0  # world origin at depth 5
    return Camera(vm, intrinsics(f, W, H), W, H)


def test_assign_labels_center_pixel():
    cam = _cam()
    mask = np.zeros((16, 20), bool)
    mask[8:, 10:] = True
    means = torch.tensor([[0.1, 0.1, 0.0], [-0.1, 0.1, 0.0], [0.0, 0.0, -6.0], [10.0, 0.0, 0.0]])
    # u = 20·x/5 + 10 -> 10.4 (in), 9.6 (out); v = 8.4; third behind the camera; fourth off-image
    lab = assign_labels(means, cam, mask, torch.full((16, 20), 5.0), SegmentConfig(), 1.0)
    assert lab.tolist() == [1, 0, -1, -1]
    assert (assign_labels(means, cam, None, torch.ones(16, 20), SegmentConfig(), 1.0) == -1).all()
    # occlusion test: rendered depth 3 in front of the centres at depth 5
    lab = assign_labels(means, cam, mask, torch.full((16, 20), 3.0), SegmentConfig(occlusion_test=True), 1.0)
    assert lab.tolist() == [-1, -1, -1, -1]


def test_lift_depth_and_bad_clicks():
    cam = _cam()
    alpha = torch.ones(16, 20)
    alpha[0, 0] = 0.1
    depth = torch.full((16, 20), 5.0)
    X = lift_clicks(np.array([[14.0, 12.0]]), cam, alpha, depth, {}, SegmentConfig())
    # X = C + D·r: r = ((14−10)/20, (12−8)/20, 1) -> (1, 1, 0) at z = 0 in world
    assert torch.allclose(X, torch.tensor([[1.0, 1.0, 0.0]]), atol=1e-5)
    with pytest.raises(VislabError, match="empty space"):
        lift_clicks(np.array([[0.5, 0.5]]), cam, alpha, depth, {}, SegmentConfig())
    with pytest.raises(VislabError, match="outside"):
        lift_clicks(np.array([[25.0, 3.0]]), cam, alpha, depth, {}, SegmentConfig())


def test_lift_nearest_picks_front_centre():
    cam = _cam()
    splats = {
        "means": torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [2.0, 0.0, 0.0]]),
        "opacities": torch.zeros(3),
    }
    X = lift_clicks(
        np.array([[10.0, 8.0]]),
        cam,
        torch.ones(16, 20),
        torch.ones(16, 20),
        splats,
        SegmentConfig(lift="nearest"),
    )
    assert torch.allclose(X, torch.tensor([[0.0, 0.0, -1.0]]))  # smaller camera z


def _one_gaussian(x0=0.0):
    # elongated along world x (scale 0.3), thin elsewhere, axis-aligned quaternion
    return {
        "means": torch.tensor([[x0, 0.0, 0.0]]),
        "scales": torch.log(torch.tensor([[0.3, 0.02, 0.02]])),
        "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        "opacities": torch.tensor([2.0]),
        "sh0": torch.zeros(1, 1, 3),
        "shN": torch.zeros(1, 0, 3),
    }


def test_gaussian_decomposition_split_hand_case():
    cam = _cam(W=40, H=16, f=20.0)  # u = 4·x + 20
    mask = np.zeros((16, 40), bool)
    mask[:, 20:] = True  # object is the right half (x > 0)
    s = _one_gaussian()
    lab = torch.tensor([1], dtype=torch.int8)
    new, nl, n = decompose_view(s, lab, cam, mask, SegmentConfig())
    assert n == 1 and nl.tolist() == [1, 0]
    # Σ₂ major std = 4·0.3 = 1.2 px -> endpoints u = 20 ± 1.8 -> 18.2 and 21.8
    # samples: max(|Δu|)+1 = floor(3.6)+1 = 4 samples at u = 18.2, 19.4, 20.6, 21.8 -> r = 2/4
    r, L = 0.5, 0.9
    assert torch.allclose(
        new["means"][0], torch.tensor([0.5 * (1 - r) * L, 0, 0]), atol=1e-5
    )  # moved towards +x
    assert torch.allclose(new["means"][1], torch.tensor([-0.5 * r * L, 0, 0]), atol=1e-5)
    assert torch.allclose(new["scales"][0].exp(), torch.tensor([0.3 * r, 0.02, 0.02]), atol=1e-6)
    assert torch.allclose(new["scales"][1].exp(), torch.tensor([0.3 * (1 - r), 0.02, 0.02]), atol=1e-6)
    # official mode: one child, all axes ×0.8r
    new, nl, n = decompose_view(s, lab, cam, mask, SegmentConfig(gd_mode="official"))
    assert nl.tolist() == [1] and torch.allclose(
        new["scales"][0].exp(), torch.tensor([0.3, 0.02, 0.02]) * 0.8 * r, atol=1e-6
    )
    # a Gaussian entirely inside the mask is not a boundary one
    new, nl, n = decompose_view(_one_gaussian(2.0), lab, cam, mask, SegmentConfig())
    assert n == 0 and torch.equal(new["means"], _one_gaussian(2.0)["means"])


def test_gaussian_decomposition_mirror_direction():
    cam = _cam(W=40, H=16, f=20.0)
    mask = np.zeros((16, 40), bool)
    mask[:, :20] = True  # object on the left: the child must move to −x
    new, _, _ = decompose_view(
        _one_gaussian(), torch.tensor([1], dtype=torch.int8), cam, mask, SegmentConfig()
    )
    assert new["means"][0, 0] < 0 and new["means"][1, 0] > 0


def test_farthest_point_sampling_of_a_scribble():
    m = np.zeros((10, 20), bool)
    m[5, 2:19] = True  # a horizontal stroke x = 2..18
    pts = farthest_points(m, 3)
    assert pts.tolist() == [[10.5, 5.5], [2.5, 5.5], [18.5, 5.5]]  # centre, then the two far ends
    assert len(farthest_points(m, 50)) == 17
    with pytest.raises(VislabError, match="empty"):
        farthest_points(np.zeros((3, 3), bool))
