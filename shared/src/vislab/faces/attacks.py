"""Attack transforms: physical (print, replay, 3D mask), adversarial (sign noise, DCT quantisation,
smooth colour shift) and digital editing (face swap, reenactment, generated-face artefacts, attribute
editing). Each is a seedable function ``fn(img, rng, info, domain, donor) -> img`` on a float32
``(H, W, 3)`` image in [0, 1], wrapped in an :class:`Attack` with its UniAttackData label
(0 live, 1 physical, 2 adversarial, 3 digital editing).

Where an attack acts in the pipeline (:attr:`Attack.stage`):

* ``"scene"`` -- physical attacks change what is in front of the camera; the domain's camera
  (:func:`vislab.faces.domains.camera`) then captures the result.
* ``"capture"`` -- digital attacks edit the captured frame; editing results are re-encoded with the
  domain's JPEG quality, adversarial images are stored losslessly at half resolution and up-sampled
  (UniAttackData's adversarial images are 112 x 112).

Instrument parameters given in pixels refer to a 64 px image and scale with the image size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vislab.faces.domains import DOMAINS, Domain, rescale
from vislab.faces.render import HAIR_COLOURS, FaceInfo, band_noise

LABEL_NAMES = ("live", "physical", "adversarial", "digital")
LIVE, PHYSICAL_LABEL, ADVERSARIAL_LABEL, DIGITAL_LABEL = 0, 1, 2, 3


@dataclass(frozen=True)
class Attack:
    """One attack type: ``name``, UniAttackData ``label`` (1/2/3), ``kind``, pipeline ``stage``."""

    name: str
    label: int
    kind: str  # "physical" | "adversarial" | "digital"
    stage: str  # "scene" | "capture"
    fn: Callable
    description: str

    def __call__(self, img: np.ndarray, rng: np.random.Generator, info: FaceInfo | None = None, domain: Domain | None = None, donor: np.ndarray | None = None) -> np.ndarray:
        img = np.asarray(img, dtype=np.float32)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"attack {self.name}: expected an (H, W, 3) image, got {img.shape}")
        if info is None:
            info = default_info(img.shape[0])
        out = self.fn(img, rng, info, domain or DOMAINS["U"], donor)
        return np.clip(out, 0, 1).astype(np.float32)


def default_info(size: int) -> FaceInfo:
    """Face geometry of a centred, tight face crop (for images that came without landmarks)."""
    mask = np.zeros((size, size), np.float32)
    c = size / 2
    cv2.ellipse(mask, (int(c), int(c * 1.05)), (int(size * 0.3), int(size * 0.4)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    return FaceInfo(
        size=size, center=(c, c * 1.05), axes=(size * 0.3, size * 0.4), angle_deg=0.0,
        eyes=np.array([[size * 0.35, size * 0.42], [size * 0.65, size * 0.42]], np.float32),
        nose=np.array([c, size * 0.56], np.float32), mouth=np.array([c, size * 0.72], np.float32), mask=mask,
    )


# ----------------------------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=8)
def _pix(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _scale(img: np.ndarray) -> float:
    return img.shape[0] / 64.0


def _ellipse_mask(size: int, center, axes, angle: float = 0.0, feather: float = 0.0) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.ellipse(m, (int(round(center[0])), int(round(center[1]))), (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))), angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    if feather > 0:
        m = cv2.GaussianBlur(m, (0, 0), feather)
    return m


def _saturate(img: np.ndarray, factor: float) -> np.ndarray:
    g = img.mean(-1, keepdims=True)
    return g + (img - g) * factor


def _warp(img: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Backward warp: out(x, y) = img(x + dx, y + dy)."""
    x, y = _pix(img.shape[0])
    return cv2.remap(img, x + dx.astype(np.float32), y + dy.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _radial_warp(size: int, center, radius: float, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Displacement that magnifies (strength > 0) or shrinks a disc around ``center``."""
    x, y = _pix(size)
    rx, ry = x - center[0], y - center[1]
    r2 = (rx * rx + ry * ry) / (radius * radius)
    w = np.exp(-r2) * strength
    return -rx * w, -ry * w


# ----------------------------------------------------------------------------------------------- physical
def print_attack(img, rng, info, domain, donor):
    """Printed photo: gamut shrink (saturation x0.6-0.8, ink/paper range), CMY halftone (rotated dot
    screens at the domain's pitch) blended at 0.4-0.8, content blur before screening, paper tint and
    grain, ink spread, bend/perspective warp."""
    s = _scale(img)
    size = img.shape[0]
    x = _saturate(img, rng.uniform(0.6, 0.8))
    x = 0.07 + 0.86 * x
    x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 0.9) * s)  # the printer's limited resolution of the content
    pitch = rng.uniform(*domain.halftone_pitch) * s
    px, py = _pix(size)
    cmy = 1 - x
    dots = np.empty_like(cmy)
    for ch, ang in enumerate((15.0, 75.0, 0.0)):
        th = np.deg2rad(ang + rng.uniform(-4, 4))
        xr = np.cos(th) * px + np.sin(th) * py + rng.uniform(0, pitch)
        yr = -np.sin(th) * px + np.cos(th) * py + rng.uniform(0, pitch)
        screen = 0.5 + 0.25 * (np.cos(2 * np.pi * xr / pitch) + np.cos(2 * np.pi * yr / pitch))
        dots[..., ch] = np.clip((cmy[..., ch] - screen) * 4.0 + 0.5, 0, 1)
    mix = rng.uniform(0.4, 0.8)
    x = 1 - (mix * dots + (1 - mix) * cmy)
    tint = np.array([1.0, 0.985, 0.93], np.float32) * rng.uniform(0.95, 1.02)
    x = x * tint
    grain = 0.03 * band_noise(rng, size, 0.6 * s, 3 * s) + 0.02 * band_noise(rng, size, 6 * s, 0)
    x = x * (1 + grain[..., None])
    x = cv2.GaussianBlur(x, (0, 0), 0.3 * s)  # ink spread
    # the sheet is slightly bent (cylinder) and tilted (perspective)
    bend = rng.uniform(-0.04, 0.04) * size
    u = (px / size) * 2 - 1
    dy = bend * (1 - u * u)
    x = _warp(x, np.zeros_like(dy), dy - dy.mean())
    j = 0.03 * size
    src = np.float32([[0, 0], [size, 0], [size, size], [0, size]])
    dst = src + rng.uniform(-j, j, (4, 2)).astype(np.float32)
    x = cv2.warpPerspective(x, cv2.getPerspectiveTransform(src, dst), (size, size), borderMode=cv2.BORDER_REFLECT)
    return x


def replay_attack(img, rng, info, domain, donor):
    """Replayed video on a screen: display gamma 1.8-2.6, cool tint, RGB sub-pixel column grid (the
    domain's period and strength), moire (product of two close gratings), specular glare, blur."""
    s = _scale(img)
    size = img.shape[0]
    x = np.clip(img, 0, 1) ** (rng.uniform(1.8, 2.6) / 2.2)
    x = x * np.array([0.93, 0.98, 1.08], np.float32) * rng.uniform(1.0, 1.12)
    px, py = _pix(size)
    period = rng.uniform(*domain.screen_period) * s
    strength = rng.uniform(*domain.screen_strength)
    grid = np.empty_like(x)
    for c in range(3):
        grid[..., c] = 1 + strength * np.cos(2 * np.pi * (px / period - c / 3.0))
    grid *= (1 - strength * 0.6 * (np.cos(2 * np.pi * py / period) > 0.6))[..., None]
    x = x * grid
    f1 = rng.uniform(*domain.moire_freq) / s
    f2 = f1 * (1 + rng.uniform(0.04, 0.12))
    a1 = rng.uniform(0, np.pi)
    a2 = a1 + np.deg2rad(rng.uniform(2, 8))
    g = np.cos(2 * np.pi * f1 * (np.cos(a1) * px + np.sin(a1) * py)) * np.cos(2 * np.pi * f2 * (np.cos(a2) * px + np.sin(a2) * py))
    x = x * (1 + rng.uniform(0.08, 0.2) * g)[..., None]
    gx, gy = rng.uniform(0.1, 0.9, 2) * size
    sig = rng.uniform(0.12, 0.3) * size
    glare = rng.uniform(0.12, 0.35) * np.exp(-((px - gx) ** 2 + (py - gy) ** 2) / (2 * sig * sig))
    x = x + glare[..., None]
    return cv2.GaussianBlur(x, (0, 0), 0.35 * s)


def mask3d_attack(img, rng, info, domain, donor):
    """3D mask: smooth skin without micro-texture, flatter material colour with a plastic sheen,
    seams along the mask's edge and around the eye holes (the wearer's real eyes show through)."""
    s = _scale(img)
    size = img.shape[0]
    face = info.mask
    eye_r = max(2.0, 0.09 * size)
    holes = np.zeros_like(face)
    for ex, ey in info.eyes:
        holes = np.maximum(holes, _ellipse_mask(size, (ex, ey), (eye_r * 1.1, eye_r * 0.6)))
    inside = face * (1 - holes)
    smooth = cv2.bilateralFilter(img, 5, 0.15, 3 * s)
    smooth = cv2.GaussianBlur(smooth, (0, 0), 1.2 * s)
    mean = (smooth * inside[..., None]).sum((0, 1)) / (inside.sum() + 1e-6)
    mat = mean + (smooth - mean) * rng.uniform(0.55, 0.8)
    mat = _saturate(mat, rng.uniform(0.7, 0.9)) * np.array(domain.mask_tint, np.float32)
    px, py = _pix(size)
    hx = info.center[0] + rng.uniform(-0.3, 0.3) * info.axes[0]
    hy = info.center[1] - rng.uniform(0.1, 0.4) * info.axes[1]
    sheen = rng.uniform(0.08, 0.2) * np.exp(-((px - hx) ** 2 + (py - hy) ** 2) / (2 * (0.25 * size) ** 2))
    mat = mat + sheen[..., None]
    x = img * (1 - inside[..., None]) + mat * inside[..., None]
    sig = 0.8 * s
    fb = cv2.GaussianBlur(face, (0, 0), sig)
    hb = cv2.GaussianBlur(holes, (0, 0), sig)
    seam = np.clip(4 * fb * (1 - fb) + 4 * hb * (1 - hb) * face, 0, 1)
    x = x * (1 - rng.uniform(0.25, 0.45) * seam[..., None])
    return x


# ----------------------------------------------------------------------------------------------- adversarial
def _half_res(img, fn):
    size = img.shape[0]
    small = cv2.resize(img, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    small = np.clip(fn(small), 0, 1)
    small = np.round(small * 255) / 255  # stored as 8-bit PNG
    return cv2.resize(small.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def adv_sign_attack(img, rng, info, domain, donor):
    """FGSM/FGTM-like: eps * sign of a spatially correlated 'gradient' field, eps = 2-6/255, at half resolution."""
    eps = rng.uniform(2, 6) / 255

    def f(x):
        g = cv2.GaussianBlur(rng.standard_normal(x.shape).astype(np.float32), (0, 0), 0.7)
        return x + eps * np.sign(g)

    return _half_res(img, f)


@functools.lru_cache(maxsize=2)
def _dct_matrix(n: int = 8) -> np.ndarray:
    k = np.arange(n)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def adv_dct_attack(img, rng, info, domain, donor):
    """AdvDrop-like: quantise 8x8 block-DCT coefficients (high frequencies coarser), at half resolution."""
    step_hi = rng.uniform(0.06, 0.14)

    def f(x):
        h, w, _ = x.shape
        ph, pw = (-h) % 8, (-w) % 8
        xp = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
        H, W = xp.shape[:2]
        d = _dct_matrix(8)
        blocks = xp.reshape(H // 8, 8, W // 8, 8, 3).transpose(0, 2, 4, 1, 3)
        coef = d @ blocks @ d.T
        k = np.arange(8)
        q = 0.01 + step_hi * (k[:, None] + k[None, :]) / 14.0
        coef = np.round(coef / q) * q
        rec = d.T @ coef @ d
        out = rec.transpose(0, 3, 1, 4, 2).reshape(H, W, 3)
        return out[:h, :w]

    return _half_res(img, f)


def adv_smooth_attack(img, rng, info, domain, donor):
    """SSAH/Demiguise-like: a smooth colour-shift field (eps 4-8/255) plus a weaker perturbation hidden in
    textured regions (scaled by the local gradient magnitude), at half resolution."""
    eps = rng.uniform(4, 8) / 255

    def f(x):
        n = cv2.GaussianBlur(rng.standard_normal(x.shape).astype(np.float32), (0, 0), 3.0)
        n = n / (np.abs(n).max() + 1e-6)
        g = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        mag = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
        mag = np.clip(mag / (mag.max() + 1e-6) * 2, 0, 1)[..., None]
        hf = np.sign(rng.standard_normal(x.shape).astype(np.float32))
        return x + eps * n + eps * 0.6 * mag * hf

    return _half_res(img, f)


# ----------------------------------------------------------------------------------------------- digital editing
def _inner_face(info: FaceInfo, size: int, feather: float) -> np.ndarray:
    eyes = info.eyes
    c = (eyes.mean(0) * 0.45 + info.mouth * 0.55)
    ex = float(np.linalg.norm(eyes[1] - eyes[0]))
    ey = float(info.mouth[1] - eyes.mean(0)[1])
    return _ellipse_mask(size, c, (ex * 0.95, max(ey * 0.95, 2.0)), info.angle_deg, feather)


def faceswap_attack(img, rng, info, domain, donor):
    """Face swap: the donor's inner face (eyes-nose-mouth), generated at half resolution, pasted with
    only partial colour matching and a narrow feather, so a seam and a colour step remain."""
    s = _scale(img)
    size = img.shape[0]
    if donor is None:  # no second identity given: mirror and re-tone the face itself
        donor = img[:, ::-1] * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    donor = rescale(np.asarray(donor, np.float32), 0.5)
    m = _inner_face(info, size, rng.uniform(0.6, 1.2) * s)
    w = m[..., None]
    tm = (img * w).sum((0, 1)) / (w.sum() + 1e-6)
    dm = (donor * w).sum((0, 1)) / (w.sum() + 1e-6)
    donor = donor + (tm - dm) * rng.uniform(0.3, 0.7)
    x = img * (1 - w) + donor * w
    edge = 4 * m * (1 - m)
    return x * (1 - 0.12 * edge[..., None])


def reenact_attack(img, rng, info, domain, donor):
    """Reenactment (DaGAN/SAFA-like): smooth warps that move the mouth and eyes (a new expression),
    re-rendered slightly blurred inside the edited region."""
    s = _scale(img)
    size = img.shape[0]
    px, py = _pix(size)
    r = 0.16 * size
    mx, my = info.mouth
    gm = np.exp(-((px - mx) ** 2 + (py - my) ** 2) / (2 * r * r))
    open_ = rng.uniform(0.04, 0.09) * size
    dy = -open_ * gm * np.sign(py - my) * np.clip(np.abs(py - my) / (0.05 * size), 0, 1)
    dx = rng.uniform(-0.04, 0.04) * size * gm
    for ex, ey in info.eyes:
        ge = np.exp(-((px - ex) ** 2 + (py - ey) ** 2) / (2 * (0.08 * size) ** 2))
        dx += rng.uniform(-0.03, 0.03) * size * ge
        dy += rng.uniform(-0.03, 0.03) * size * ge
    x = _warp(img, dx, dy)
    region = np.clip((gm + sum(np.exp(-((px - ex) ** 2 + (py - ey) ** 2) / (2 * (0.1 * size) ** 2)) for ex, ey in info.eyes)) * 1.5, 0, 1)
    blurred = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.7, 1.2) * s)
    return x * (1 - region[..., None]) + blurred * region[..., None]


def gan_attack(img, rng, info, domain, donor):
    """Generated face (GAN-like): over-smoothed skin, nearest-neighbour up-sampling, the transposed-conv
    checkerboard (period 2 px) and periodic spectral peaks (period 4 or 8 px)."""
    s = _scale(img)
    size = img.shape[0]
    x = cv2.bilateralFilter(img, 5, 0.1, 2 * s)
    small = cv2.resize(x, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    x = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
    x = cv2.GaussianBlur(x, (0, 0), 0.4)
    px, py = _pix(size)
    checker = np.where(((px.astype(np.int32) + py.astype(np.int32)) % 2) == 0, 1.0, -1.0).astype(np.float32)
    lum = x.mean(-1)
    x = x + (rng.uniform(0.015, 0.035) * checker * (0.5 + lum))[..., None]
    period = float(rng.choice([4.0, 8.0]))
    peaks = np.cos(2 * np.pi * px / period) + np.cos(2 * np.pi * py / period)
    x = x + rng.uniform(0.008, 0.02) * peaks[..., None]
    return x


def attribute_attack(img, rng, info, domain, donor):
    """Attribute editing: local geometric edits (bigger eyes, slimmer nose/cheeks) and colour edits
    (lip colour, hair colour, skin tone), each edited region slightly re-rendered (blurred)."""
    s = _scale(img)
    size = img.shape[0]
    x = img
    dx = np.zeros((size, size), np.float32)
    dy = np.zeros((size, size), np.float32)
    for ex, ey in info.eyes:
        a, b = _radial_warp(size, (ex, ey), 0.09 * size, rng.uniform(0.15, 0.35))
        dx += a
        dy += b
    a, b = _radial_warp(size, tuple(info.nose), 0.12 * size, -rng.uniform(0.1, 0.25))
    dx += a
    dy += b
    x = _warp(x, dx, dy)
    region = np.zeros((size, size), np.float32)
    face = info.mask
    lips = _ellipse_mask(size, info.mouth, (0.14 * size, 0.06 * size), info.angle_deg, 1.0 * s)
    lip_col = np.array([rng.uniform(0.5, 0.9), rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.6)], np.float32)
    x = x * (1 - 0.6 * lips[..., None]) + (x.mean(-1, keepdims=True) * 0.5 + lip_col * 0.5) * 0.6 * lips[..., None]
    region = np.maximum(region, lips)
    choice = rng.integers(2)
    if choice == 0:  # hair colour: above the face ellipse
        px, py = _pix(size)
        top = np.clip((info.center[1] - 0.55 * info.axes[1] - py) / (2 * s), 0, 1) * (1 - face)
        top = cv2.GaussianBlur(top, (0, 0), 1.5 * s)
        new = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.9, 1.3)  # dye: another natural colour
        lum = x.mean(-1, keepdims=True) / (x.mean() + 1e-6)
        x = x * (1 - 0.6 * top[..., None]) + np.clip(lum * new, 0, 1) * 0.6 * top[..., None]
        region = np.maximum(region, top)
    else:  # skin tone shift inside the face
        shift = rng.uniform(-0.05, 0.05, 3).astype(np.float32)
        fb = cv2.GaussianBlur(face, (0, 0), 1.0 * s)
        x = x + shift * fb[..., None]
        region = np.maximum(region, fb * 0.5)
    blurred = cv2.GaussianBlur(x, (0, 0), 0.8 * s)
    warped = np.clip(np.sqrt(dx * dx + dy * dy) / (0.5 * s), 0, 1)
    region = np.maximum(region, warped)
    return x * (1 - region[..., None]) + blurred * region[..., None]


# ----------------------------------------------------------------------------------------------- registry
ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in [
        Attack("print", 1, "physical", "scene", print_attack, print_attack.__doc__.split("\n")[0]),
        Attack("replay", 1, "physical", "scene", replay_attack, replay_attack.__doc__.split("\n")[0]),
        Attack("mask3d", 1, "physical", "scene", mask3d_attack, mask3d_attack.__doc__.split("\n")[0]),
        Attack("adv_sign", 2, "adversarial", "capture", adv_sign_attack, adv_sign_attack.__doc__.split("\n")[0]),
        Attack("adv_dct", 2, "adversarial", "capture", adv_dct_attack, adv_dct_attack.__doc__.split("\n")[0]),
        Attack("adv_smooth", 2, "adversarial", "capture", adv_smooth_attack, adv_smooth_attack.__doc__.split("\n")[0]),
        Attack("faceswap", 3, "digital", "capture", faceswap_attack, faceswap_attack.__doc__.split("\n")[0]),
        Attack("reenact", 3, "digital", "capture", reenact_attack, reenact_attack.__doc__.split("\n")[0]),
        Attack("gan", 3, "digital", "capture", gan_attack, gan_attack.__doc__.split("\n")[0]),
        Attack("attribute", 3, "digital", "capture", attribute_attack, attribute_attack.__doc__.split("\n")[0]),
    ]
}
PHYSICAL = tuple(n for n, a in ATTACKS.items() if a.kind == "physical")
ADVERSARIAL = tuple(n for n, a in ATTACKS.items() if a.kind == "adversarial")
DIGITAL_EDITING = tuple(n for n, a in ATTACKS.items() if a.kind == "digital")
DIGITAL = ADVERSARIAL + DIGITAL_EDITING  # UniAttackData's "digital attacks" = adversarial + editing
ALL_ATTACKS = tuple(ATTACKS)


def attack_label(name: str) -> int:
    """UniAttackData label of an attack name ("live" -> 0)."""
    if name == "live":
        return 0
    return get_attack(name).label


def get_attack(name: str) -> Attack:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: live, {', '.join(ATTACKS)}") from None
