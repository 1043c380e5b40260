"""Every attack transform: seedable, and it leaves the cue it is meant to leave (checked on one fixed face)."""

import numpy as np
import pytest
from vislab import faces as F
from vislab.faces import attacks as A
from vislab.faces import domains as D
from vislab.faces import render as R
from vislab.faces.toy import make_identity


@pytest.fixture(scope="module")
def face():
    rng = np.random.default_rng(0)
    ident = make_identity(0, "O", 0)  # procedural
    pose = R.Pose()
    bg = D.background(D.DOMAINS["O"], 64, rng)
    img, depth, info = R.render_face(ident, pose, 64, bg, rng)
    return img, depth, info


def _hf(x):
    """Mean squared Laplacian (high-frequency energy) of the grey image."""
    g = x.mean(-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return lap


def _sat(x):
    """Mean chroma of the low-passed image (the colour a viewer sees, not the dots)."""
    import cv2

    x = cv2.GaussianBlur(x, (0, 0), 2.0)
    return (x.max(-1) - x.min(-1)).mean()


@pytest.mark.parametrize("name", F.ALL_ATTACKS)
def test_seedable_and_effective(face, name):
    img, _, info = face
    atk = F.ATTACKS[name]
    a = atk(img, np.random.default_rng(1), info, D.DOMAINS["O"])
    b = atk(img, np.random.default_rng(1), info, D.DOMAINS["O"])
    c = atk(img, np.random.default_rng(2), info, D.DOMAINS["O"])
    assert a.shape == img.shape and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a - img).mean() > 1e-3


def test_depth_is_a_dome_on_the_face(face):
    _, depth, info = face
    cx, cy = (int(round(v)) for v in info.center)
    assert depth[cy, cx] > 0.8 and depth[0, 0] == 0 and depth.max() == pytest.approx(1.0, abs=0.02)


def test_print_shrinks_gamut_and_adds_halftone(face):
    img, _, info = face
    out = F.ATTACKS["print"](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    assert _sat(out) < 0.95 * _sat(img)  # despite the yellowish paper tint
    assert out.max() < 0.99 and out.min() > 0.02  # paper white / ink black limits
    assert (_hf(out) ** 2).mean() > 2 * (_hf(img) ** 2).mean()  # dot screen


def _column_spectrum(x):
    d = x[..., 0] - x[..., 1]  # sub-pixel columns are phase-shifted between channels
    prof = d.mean(0) - d.mean()
    return np.abs(np.fft.rfft(prof))


def test_replay_has_a_pixel_grid_peak(face):
    img, _, info = face
    dom = D.DOMAINS["O"]  # screen period exactly 3 px -> rfft bin 64/3 ~ 21
    out = F.ATTACKS["replay"](img, np.random.default_rng(0), info, dom)
    s_in, s_out = _column_spectrum(img), _column_spectrum(out)
    assert s_out[20:23].max() > 5 * s_in[20:23].max()
    assert s_out[20:23].max() > 3 * np.median(s_out[5:])


def test_mask_is_smooth_inside_with_edge_seams(face):
    img, _, info = face
    out = F.ATTACKS["mask3d"](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    inner = F.attacks._ellipse_mask(64, info.center, (info.axes[0] * 0.75, info.axes[1] * 0.75)) > 0.99
    for ex, ey in info.eyes:
        inner &= F.attacks._ellipse_mask(64, (ex, ey), (10, 10)) < 0.01
    inner = inner[1:-1, 1:-1]
    assert (_hf(out)[inner] ** 2).mean() < 0.7 * (_hf(img)[inner] ** 2).mean()
    ring = F.attacks._ellipse_mask(64, info.center, info.axes, info.angle_deg, 0.8)
    ring = (4 * ring * (1 - ring)) > 0.6
    assert out.mean(-1)[ring].mean() < img.mean(-1)[ring].mean() - 0.03  # darker seam at the mask edge


@pytest.mark.parametrize("name,eps", [("adv_sign", 6 / 255), ("adv_smooth", (8 + 0.6 * 8) / 255), ("adv_dct", None)])
def test_adversarial_perturbations_are_small(face, name, eps):
    img, _, info = face
    out = F.ATTACKS[name](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    base = A._half_res(img, lambda x: x)  # the same half-resolution storage without perturbation
    diff = np.abs(out - base)
    assert diff.mean() > 0.5 / 255
    if eps is not None:
        assert diff.max() <= eps + 1.5 / 255
    assert diff.mean() < 0.02


def test_faceswap_changes_the_inner_face_only(face):
    img, _, info = face
    donor = np.full_like(img, 0.3)
    out = F.ATTACKS["faceswap"](img, np.random.default_rng(0), info, D.DOMAINS["O"], donor)
    m = A._inner_face(info, 64, 0.0) > 0.5
    d = np.abs(out - img).mean(-1)
    assert d[m].mean() > 5 * d[~m].mean()


def test_reenact_moves_mouth_and_eyes(face):
    img, _, info = face
    out = F.ATTACKS["reenact"](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    d = np.abs(out - img).mean(-1)
    mx, my = (int(v) for v in info.mouth)
    near = d[my - 6 : my + 7, mx - 8 : mx + 9].mean()
    assert near > 3 * d[:8].mean()


def test_gan_adds_checkerboard_and_spectral_peaks(face):
    img, _, info = face
    out = F.ATTACKS["gan"](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    y, x = np.mgrid[0:64, 0:64]
    checker = np.where((x + y) % 2 == 0, 1.0, -1.0)
    corr = lambda z: abs(((z.mean(-1) - z.mean()) * checker).mean())  # noqa: E731
    assert corr(out) > 5 * corr(img) and corr(out) > 0.005


def test_attribute_edits_are_local(face):
    img, _, info = face
    out = F.ATTACKS["attribute"](img, np.random.default_rng(0), info, D.DOMAINS["O"])
    d = np.abs(out - img).mean(-1)
    lips = A._ellipse_mask(64, info.mouth, (8, 4)) > 0.5
    assert d[lips].mean() > 3 * d[-4:].mean()


def test_attack_without_landmarks_and_bad_shape(face):
    img = face[0]
    out = F.ATTACKS["mask3d"](img, np.random.default_rng(0))  # default centred face geometry
    assert out.shape == img.shape
    with pytest.raises(ValueError, match="H, W, 3"):
        F.ATTACKS["print"](img[..., 0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown attack"):
        F.get_attack("deepfake")


def test_domains_differ_in_capture_style(face):
    img = face[0]
    outs = {d: D.camera(img, D.DOMAINS[d], np.random.default_rng(0)) for d in F.MCIO}
    # M (strong JPEG, blur) loses more high frequencies than O
    assert (_hf(outs["M"]) ** 2).mean() < (_hf(outs["O"]) ** 2).mean()
    # colour casts: I is bluish, M yellowish
    assert outs["I"][..., 2].mean() - outs["I"][..., 0].mean() > outs["M"][..., 2].mean() - outs["M"][..., 0].mean()
    assert len(F.DOMAINS) >= 4
