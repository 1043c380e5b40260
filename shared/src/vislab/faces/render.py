"""Live faces: procedural faces and the face images scikit-image ships, with pose/lighting/expression jitter.

Every function here works on float32 ``(H, W, 3)`` arrays in [0, 1] (numpy, channels last) and is
deterministic given its ``numpy.random.Generator``. A rendered face comes with a :class:`FaceInfo`
(landmarks in pixels, the face ellipse and a face mask) that the attack transforms use to find the
face, eyes and mouth, and with a pseudo-depth map (a dome over the face ellipse plus a nose bump,
in [0, 1]), the label that depth-supervised methods (despoofdiff) need for live faces.

Identity = a parameter vector (:class:`Identity`): procedural (skin tone, face shape, eye spacing,
brows, nose, mouth, hair) or "real" (one of the 100 faces of ``skimage.data.lfw_subset()`` -- 25 x 25
grey crops, colourised with the identity's skin tone -- or the face of ``skimage.data.astronaut()``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.92, 0.74, 0.60],
        [0.86, 0.66, 0.52],
        [0.78, 0.57, 0.42],
        [0.66, 0.46, 0.33],
        [0.52, 0.36, 0.25],
        [0.40, 0.27, 0.19],
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.30, 0.16], [0.70, 0.55, 0.30], [0.55, 0.22, 0.10], [0.6, 0.6, 0.6]],
    dtype=np.float32,
)
EYE_COLOURS = np.array([[0.25, 0.15, 0.08], [0.2, 0.35, 0.55], [0.3, 0.45, 0.25], [0.1, 0.07, 0.05]], dtype=np.float32)
CLOTH_COLOURS = np.array(
    [[0.15, 0.2, 0.45], [0.6, 0.1, 0.1], [0.2, 0.2, 0.2], [0.85, 0.85, 0.8], [0.2, 0.45, 0.25], [0.5, 0.35, 0.6]],
    dtype=np.float32,
)

# the astronaut's face in skimage.data.astronaut() (found with skimage's LBP cascade: r=70, c=175, 93 px),
# taken with a margin so the crop is framed like the procedural faces
ASTRONAUT_CROP = (46, 186, 151, 291)  # rows, cols


@dataclass
class Identity:
    """One person: a procedural parameter vector, or a real face (``source`` = "lfw:<i>" / "astronaut")."""

    key: str
    source: str  # "procedural" | "lfw:<index>" | "astronaut"
    skin: np.ndarray
    hair: np.ndarray
    eye: np.ndarray
    cloth: np.ndarray
    face_a: float  # half width of the face ellipse (normalised coords, image spans [-1, 1])
    face_b: float  # half height
    eye_sep: float
    eye_y: float
    eye_w: float
    eye_h: float
    brow_gap: float
    brow_thick: float
    nose_len: float
    mouth_y: float
    mouth_w: float
    lip: np.ndarray
    hairline: float
    long_hair: bool
    texture_amp: float


@dataclass
class Pose:
    """Per-frame jitter: head pose, lighting and expression."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    light: tuple[float, float, float] = (0.3, -0.4, 0.85)
    ambient: float = 0.45
    smile: float = 0.2
    mouth_open: float = 0.0
    blink: float = 1.0
    brow_raise: float = 0.0


@dataclass
class FaceInfo:
    """Where the face is, in pixels of the rendered image (after pose)."""

    size: int
    center: tuple[float, float]  # (x, y) of the face ellipse
    axes: tuple[float, float]  # (a, b) half axes in pixels
    angle_deg: float
    eyes: np.ndarray  # (2, 2) x, y
    nose: np.ndarray  # (2,)
    mouth: np.ndarray  # (2,)
    mask: np.ndarray = field(repr=False)  # (H, W) float32 face-ellipse alpha in [0, 1]


def random_identity(rng: np.random.Generator, key: str = "", source: str = "procedural") -> Identity:
    """Draw a procedural identity (also used for the colouring of real faces)."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    return Identity(
        key=key,
        source=source,
        skin=np.clip(skin, 0, 1).astype(np.float32),
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))].copy(),
        eye=EYE_COLOURS[rng.integers(len(EYE_COLOURS))].copy(),
        cloth=CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))].copy(),
        face_a=float(rng.uniform(0.44, 0.56)),
        face_b=float(rng.uniform(0.60, 0.74)),
        eye_sep=float(rng.uniform(0.17, 0.25)),
        eye_y=float(rng.uniform(-0.14, -0.04)),
        eye_w=float(rng.uniform(0.065, 0.09)),
        eye_h=float(rng.uniform(0.032, 0.048)),
        brow_gap=float(rng.uniform(0.07, 0.12)),
        brow_thick=float(rng.uniform(0.014, 0.03)),
        nose_len=float(rng.uniform(0.14, 0.24)),
        mouth_y=float(rng.uniform(0.30, 0.42)),
        mouth_w=float(rng.uniform(0.13, 0.22)),
        lip=np.array([0.72, 0.32, 0.32], np.float32) * rng.uniform(0.8, 1.05),
        hairline=float(rng.uniform(0.45, 0.7)),
        long_hair=bool(rng.random() < 0.4),
        texture_amp=float(rng.uniform(0.02, 0.04)),
    )


def random_pose(rng: np.random.Generator, light_range: tuple[float, float] = (-0.8, 0.8)) -> Pose:
    """Pose jitter of one frame; ``light_range`` bounds the horizontal light direction (a domain's lighting)."""
    lx = float(rng.uniform(*light_range))
    ly = float(rng.uniform(-0.7, 0.1))
    lz = 0.9
    n = (lx * lx + ly * ly + lz * lz) ** 0.5
    return Pose(
        yaw=float(rng.uniform(-0.22, 0.22)),
        pitch=float(rng.uniform(-0.1, 0.1)),
        roll_deg=float(rng.uniform(-9, 9)),
        scale=float(rng.uniform(0.92, 1.06)),
        shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        light=(lx / n, ly / n, lz / n),
        ambient=float(rng.uniform(0.35, 0.6)),
        smile=float(rng.uniform(-0.3, 1.0)),
        mouth_open=float(max(0.0, rng.uniform(-0.4, 0.6))),
        blink=float(rng.choice([1.0, 1.0, 1.0, 0.6, 0.25])),
        brow_raise=float(rng.uniform(-0.01, 0.03)),
    )


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return _grid_cached(size)


@functools.lru_cache(maxsize=8)
def _grid_cached(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    v.setflags(write=False)
    u.setflags(write=False)
    return u, v


def _ellipse_alpha(u, v, cx, cy, a, b, px):
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return np.clip(0.5 - (r - 1.0) * min(a, b) / px, 0.0, 1.0), r


def _gauss(u, v, cx, cy, sx, sy):
    return np.exp(-(((u - cx) / sx) ** 2 + ((v - cy) / sy) ** 2) * 0.5)


def _blend(img, colour, alpha):
    """In place: ``img = img + alpha * (colour - img)``, only inside alpha's support (speed)."""
    rows = np.flatnonzero(alpha.max(1) > 1e-3)
    if rows.size == 0:
        return img
    cols = np.flatnonzero(alpha.max(0) > 1e-3)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = img[r0:r1, c0:c1]
    col = colour[r0:r1, c0:c1] if np.ndim(colour) == 3 else colour
    sub += alpha[r0:r1, c0:c1, None] * (col - sub)
    return img


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Low-pass noise with correlation length ~``sigma`` px, unit std: small noise up-sampled (cheap for large sigma)."""
    if sigma <= 3:
        n = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
    else:
        k = max(2, int(round(size / (1.5 * sigma))))
        n = cv2.resize(rng.standard_normal((k, k)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    n = n - n.mean()
    return n / (n.std() + 1e-6)


def band_noise(rng: np.random.Generator, size: int, sigma_lo: float, sigma_hi: float) -> np.ndarray:
    """Band-pass white noise (difference of Gaussians), unit std, float32 (H, W); ``sigma_hi=0``: low-pass only."""
    if sigma_hi <= 0:
        return smooth_noise(rng, size, sigma_lo)
    n = rng.standard_normal((size, size)).astype(np.float32)
    lo = cv2.GaussianBlur(n, (0, 0), sigma_lo)
    if sigma_hi > 3:
        k = max(3, int(size / (2 * sigma_hi)))
        hi = cv2.resize(cv2.resize(lo, (k, k), interpolation=cv2.INTER_AREA), (size, size), interpolation=cv2.INTER_LINEAR)
    else:
        hi = cv2.GaussianBlur(n, (0, 0), sigma_hi)
    out = lo - hi
    return out / (out.std() + 1e-6)


def render_procedural(ident: Identity, pose: Pose, size: int, background: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a frontal procedural face (before the pose's roll/scale/shift).

    Returns ``(image (H,W,3) float32 in [0,1], depth (H,W) float32 in [0,1])``.
    """
    u, v = _grid(size)
    px = 2.0 / size
    img = background.astype(np.float32, copy=True)
    a = ident.face_a * (1 - 0.25 * abs(pose.yaw))
    b = ident.face_b
    cx, cy = 0.0 + 0.15 * pose.yaw, 0.04 + pose.pitch * 0.3
    fx = cx + pose.yaw * a * 0.55  # features shift with yaw
    fy = cy + pose.pitch * 0.4

    # shoulders / clothes and neck
    shoulder = np.clip((v - (0.78 + 0.25 * (u - cx) ** 2)) / px + 0.5, 0, 1)
    _blend(img, ident.cloth, shoulder)
    neck = np.clip(0.5 - (np.abs(u - cx) - a * 0.55) / px, 0, 1) * np.clip((v - cy) / px, 0, 1) * (1 - shoulder)
    _blend(img, ident.skin * 0.72, neck)
    if ident.long_hair:
        back, _ = _ellipse_alpha(u, v, cx, cy - 0.02, a * 1.22, b * 1.08, px)
        back *= np.clip((cy + b * 0.75 - v) / px, 0, 1)
        _blend(img, ident.hair * 0.85, back)

    # face ellipse, Lambertian shading on the dome
    face, r = _ellipse_alpha(u, v, cx, cy, a, b, px)
    xr, yr = (u - cx) / a, (v - cy) / b
    z = np.sqrt(np.clip(1 - r * r, 0, 1))
    nose_bump = 0.18 * _gauss(u, v, fx, fy + ident.nose_len * 0.35, 0.05, ident.nose_len * 0.5)
    nz = z + 1e-3
    lx, ly, lz = pose.light
    lam = np.clip((xr * lx + yr * ly + nz * lz) / np.sqrt(xr * xr + yr * yr + nz * nz), 0, 1)
    shade = pose.ambient + (1 - pose.ambient) * lam
    tex = band_noise(rng, size, max(0.5, size / 128), max(1.5, size / 40))
    skin = ident.skin[None, None, :] * (shade * (1 + ident.texture_amp * tex))[..., None]
    fa = face[..., None]
    img = img * (1 - fa) + skin * fa
    def win(x0, y0, rx, ry):
        """Pixel window around (x0, y0) +- (rx, ry) in normalised coordinates (features are local)."""
        r0 = max(0, int((y0 - ry + 1) * 0.5 * size) - 1)
        r1 = min(size, int((y0 + ry + 1) * 0.5 * size) + 2)
        c0 = max(0, int((x0 - rx + 1) * 0.5 * size) - 1)
        c1 = min(size, int((x0 + rx + 1) * 0.5 * size) + 2)
        w = (slice(r0, max(r0, r1)), slice(c0, max(c0, c1)))
        return w, u[w], v[w]

    # cheeks
    for sd in (-1, 1):
        w, U, V = win(fx + sd * a * 0.55, fy + 0.18, 0.3, 0.21)
        blush = 0.12 * _gauss(U, V, fx + sd * a * 0.55, fy + 0.18, 0.1, 0.07) * face[w]
        _blend(img[w], np.array([0.85, 0.35, 0.35], np.float32), blush)

    # eyes and brows
    ey = fy + ident.eye_y
    eh = max(ident.eye_h * pose.blink, 0.004)
    for sd in (-1, 1):
        ex = fx + sd * ident.eye_sep
        w, U, V = win(ex, ey, ident.eye_w + 2 * px, ident.eye_h + 2 * px)
        I, S = img[w], shade[w]
        white, _ = _ellipse_alpha(U, V, ex, ey, ident.eye_w, eh, px)
        _blend(I, np.array([0.93, 0.92, 0.9], np.float32) * (0.6 + 0.4 * S[..., None]), white)
        iris, _ = _ellipse_alpha(U, V, ex + pose.yaw * 0.03, ey, ident.eye_h * 0.95, ident.eye_h * 0.95, px)
        _blend(I, ident.eye, iris * white)
        pupil, _ = _ellipse_alpha(U, V, ex + pose.yaw * 0.03, ey, ident.eye_h * 0.4, ident.eye_h * 0.4, px)
        _blend(I, np.zeros(3, np.float32), pupil * white)
        lid = np.clip(0.5 - (np.abs(((U - ex) / ident.eye_w) ** 2 + ((V - ey) / eh) ** 2 - 1) * 0.02) / px, 0, 1)
        lid *= (V < ey).astype(np.float32)
        _blend(I, ident.skin * 0.35, lid * 0.8)
        by = ey - ident.brow_gap - pose.brow_raise
        bx = ex + sd * 0.01
        w, U, V = win(bx, by + 0.02, ident.eye_w * 1.3 + 2 * px, ident.brow_thick + 0.05)
        brow = np.clip(0.5 - (np.abs(V - (by + 0.6 * ((U - bx) / (ident.eye_w * 1.5)) ** 2 * 0.04)) - ident.brow_thick) / px, 0, 1)
        brow *= np.clip(0.5 - (np.abs(U - bx) - ident.eye_w * 1.3) / px, 0, 1)
        _blend(img[w], ident.hair * 0.9, brow * face[w])

    # nose: shadow on the side away from the light, nostrils, bridge highlight
    ny = fy + ident.nose_len * 0.5
    sx, sy = fx - 0.035 * np.sign(lx + 1e-6), fy + ident.nose_len * 0.3
    w, U, V = win(sx, sy, 0.06, ident.nose_len * 1.2)
    _blend(img[w], ident.skin * 0.45, 0.35 * _gauss(U, V, sx, sy, 0.018, ident.nose_len * 0.4) * face[w])
    for sd in (-1, 1):
        w, U, V = win(fx + sd * 0.035, ny + 0.02, 0.045, 0.03)
        _blend(img[w], ident.skin * 0.25, 0.7 * _gauss(U, V, fx + sd * 0.035, ny + 0.02, 0.014, 0.009))
    hx, hy = fx + 0.01 * lx, fy + ident.nose_len * 0.2
    w, U, V = win(hx, hy, 0.04, ident.nose_len * 0.9)
    _blend(img[w], np.ones(3, np.float32), 0.25 * _gauss(U, V, hx, hy, 0.012, ident.nose_len * 0.3) * face[w])

    # mouth: lips between two parabolas, open mouth dark inside
    my = fy + ident.mouth_y
    w, U, V = win(fx, my, ident.mouth_w + 2 * px, 0.09)
    t = (U - fx) / ident.mouth_w
    curve = -pose.smile * 0.035 * (t * t)
    op = pose.mouth_open * 0.035
    inside_w = np.clip(0.5 - (np.abs(U - fx) - ident.mouth_w) / px, 0, 1)
    upper = my + curve - 0.016 - op * 0.5
    lower = my + curve + 0.02 + op * 0.5 + 0.01 * (1 - t * t)
    lips = np.clip((V - upper) / px + 0.5, 0, 1) * np.clip((lower - V) / px + 0.5, 0, 1) * inside_w
    _blend(img[w], ident.lip * (0.7 + 0.3 * shade[w][..., None]), lips)
    if op > 0:
        gap = np.clip(0.5 - (np.abs(V - (my + curve)) - op * 0.5) / px, 0, 1) * np.clip(0.5 - (np.abs(U - fx) - ident.mouth_w * 0.8) / px, 0, 1)
        _blend(img[w], np.array([0.2, 0.05, 0.05], np.float32), gap)

    # hair cap above the hairline, with strands
    cap, _ = _ellipse_alpha(u, v, cx, cy - 0.03, a * 1.1, b * 1.08, px)
    hairline = cy - b * ident.hairline + 0.04 * np.sin((u - cx) * 9.0 + ident.face_a * 40)
    cap *= np.clip((hairline - v) / px + 0.5, 0, 1)
    strands = 0.88 + 0.12 * np.sin((u - cx) * 24 + 2.0 * band_noise(rng, size, max(1.0, size / 20), 0))
    img = img * (1 - cap[..., None]) + (ident.hair[None, None, :] * strands[..., None]) * cap[..., None]

    depth = np.clip((z + nose_bump) * face, 0, None)
    depth = depth / max(float(depth.max()), 1e-6)
    return np.clip(img, 0, 1).astype(np.float32), depth.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _lfw_faces() -> np.ndarray:
    """The 100 face crops of ``skimage.data.lfw_subset()`` (the other 100 images are non-faces)."""
    from skimage import data

    return data.lfw_subset()[:100].astype(np.float32)


@functools.lru_cache(maxsize=1)
def _astronaut_face() -> np.ndarray:
    from skimage import data

    r0, r1, c0, c1 = ASTRONAUT_CROP
    return (data.astronaut()[r0:r1, c0:c1].astype(np.float32) / 255.0).copy()


N_REAL_FACES = 101  # 100 LFW crops + the astronaut


def real_face_source(index: int) -> str:
    index = index % N_REAL_FACES
    return "astronaut" if index == 100 else f"lfw:{index}"


def render_real(ident: Identity, pose: Pose, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A real face (LFW crop colourised with the identity's skin tone, or the astronaut), lit by ``pose``."""
    u, v = _grid(size)
    px = 2.0 / size
    if ident.source == "astronaut":
        img = cv2.resize(_astronaut_face(), (size, size), interpolation=cv2.INTER_AREA)
    else:
        g = _lfw_faces()[int(ident.source.split(":")[1])]
        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        g = np.clip(g, 0, 1)
        # colourise: dark -> hair/shadow colour, mid -> skin, bright -> highlight
        dark = ident.hair * 0.6
        lo = np.clip(g / 0.55, 0, 1)[..., None]
        hi = np.clip((g - 0.55) / 0.45, 0, 1)[..., None]
        img = dark * (1 - lo) + ident.skin * lo
        img = img * (1 - hi) + np.minimum(ident.skin * 1.25, 1.0) * hi
    cx, cy, a, b = 0.0, 0.05, 0.62, 0.8
    face, r = _ellipse_alpha(u, v, cx + 0.1 * pose.yaw, cy, a, b, px)
    z = np.sqrt(np.clip(1 - r * r, 0, 1))
    lx, ly, _ = pose.light
    light = 1 + 0.35 * (lx * u + ly * v) * (0.5 + 0.5 * pose.ambient)
    tex = band_noise(rng, size, max(0.5, size / 128), max(1.5, size / 40))
    img = img * (light * (1 + ident.texture_amp * tex * face))[..., None]
    nose_bump = 0.15 * _gauss(u, v, 0.0, 0.15, 0.07, 0.15)
    depth = np.clip((z + nose_bump) * face, 0, None)
    depth = depth / max(float(depth.max()), 1e-6)
    # expression-like warp: lift mouth corners (smile) and squeeze the eyes (blink)
    img, depth = expression_warp(img, depth, pose, (0.0, 0.5), (0.0, -0.22))
    return np.clip(img, 0, 1).astype(np.float32), depth.astype(np.float32)


def expression_warp(img: np.ndarray, depth: np.ndarray, pose: Pose, mouth: tuple[float, float], eyes: tuple[float, float]):
    """Local displacement fields: mouth corners up by ``pose.smile``, eyes squeezed by ``pose.blink``."""
    size = img.shape[0]
    u, v = _grid(size)
    mx, my = mouth
    ex, ey = eyes
    g_m = _gauss(u, v, mx, my, 0.3, 0.12)
    dv = -pose.smile * 0.04 * g_m * np.clip(np.abs(u - mx) / 0.2, 0, 1)  # corners rise
    g_e = _gauss(u, v, ex, ey, 0.45, 0.08)
    dv += (1 - pose.blink) * 0.03 * g_e * np.sign(v - ey)
    mapx = ((u + 1) * 0.5 * size - 0.5).astype(np.float32)
    mapy = ((v - dv + 1) * 0.5 * size - 0.5).astype(np.float32)
    img = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    depth = cv2.remap(depth, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return img, depth


PROCEDURAL_ZOOM = 1.22  # procedural faces are drawn with margin, then zoomed to a tight crop like the benchmarks'


def _pose_matrix(pose: Pose, size: int, zoom: float = 1.0) -> np.ndarray:
    c = size / 2.0
    m = cv2.getRotationMatrix2D((c, c), pose.roll_deg, pose.scale * zoom)
    m[0, 2] += pose.shift[0] * size
    m[1, 2] += pose.shift[1] * size
    return m.astype(np.float64)


def render_face(ident: Identity, pose: Pose, size: int, background: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, FaceInfo]:
    """Render ``ident`` under ``pose``: ``(image (H,W,3), depth (H,W), FaceInfo)``, all in pixels of ``size``."""
    if ident.source == "procedural":
        img, depth = render_procedural(ident, pose, size, background, rng)
        a = ident.face_a * (1 - 0.25 * abs(pose.yaw))
        b = ident.face_b
        cx, cy = 0.15 * pose.yaw, 0.04 + pose.pitch * 0.3
        fx, fy = cx + pose.yaw * a * 0.55, cy + pose.pitch * 0.4
        eyes = [(fx - ident.eye_sep, fy + ident.eye_y), (fx + ident.eye_sep, fy + ident.eye_y)]
        nose = (fx, fy + ident.nose_len * 0.5)
        mouth = (fx, fy + ident.mouth_y)
        zoom = PROCEDURAL_ZOOM
    else:
        img, depth = render_real(ident, pose, size, rng)
        a, b, cx, cy = 0.6, 0.78, 0.1 * pose.yaw, 0.05
        eyes = [(-0.3, -0.2), (0.3, -0.2)]
        nose = (0.0, 0.12)
        mouth = (0.0, 0.5)
        zoom = 1.0
    m = _pose_matrix(pose, size, zoom)
    img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    depth = cv2.warpAffine(depth, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def to_px(p):
        x = (p[0] + 1) * 0.5 * size
        y = (p[1] + 1) * 0.5 * size
        return m @ np.array([x, y, 1.0])

    center = to_px((cx, cy))
    axes = (a * 0.5 * size * pose.scale * zoom, b * 0.5 * size * pose.scale * zoom)
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (int(round(center[0])), int(round(center[1]))), (max(1, int(axes[0])), max(1, int(axes[1]))), -pose.roll_deg, 0, 360, 1.0, -1, cv2.LINE_AA)
    info = FaceInfo(
        size=size,
        center=(float(center[0]), float(center[1])),
        axes=(float(axes[0]), float(axes[1])),
        angle_deg=-pose.roll_deg,
        eyes=np.stack([to_px(e) for e in eyes]).astype(np.float32),
        nose=to_px(nose).astype(np.float32),
        mouth=to_px(mouth).astype(np.float32),
        mask=mask,
    )
    return np.clip(img, 0, 1), np.clip(depth, 0, 1), info
