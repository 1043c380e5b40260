"""Capture domains: each fixes a camera (white balance, gamma, contrast, blur, resolution, noise, JPEG),
a background palette, a lighting range, and its own attack-instrument ranges (printer halftone pitch,
screen grid, moire frequency ...), so leave-one-domain-out tests unseen style *and* unseen instruments,
as O/C/I/M (OULU-NPU, CASIA-FASD, Replay-Attack, MSU-MFSD) do. Live and spoof are balanced inside every
domain, so style is never a label shortcut.

The names mirror the datasets only loosely (what their cameras are known for); "U" is a fifth,
UniAttackData-like domain (CeFA RealSense captures: clean, neutral, high quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    wb: tuple[float, float, float]  # white-balance gains (colour cast)
    gamma: float
    contrast: float
    blur: tuple[float, float]  # Gaussian sigma range, in px at 64 px
    downscale: tuple[float, float]  # resolution factor range (1 = full resolution)
    noise: tuple[float, float]  # (signal-dependent a, constant b) of Poisson-Gaussian noise: var = a*x + b^2
    jpeg: tuple[int, int]  # JPEG quality range
    light_x: tuple[float, float]  # horizontal light-direction range
    bg: tuple[tuple[float, float, float], ...]  # background palette
    # attack instruments of this domain (in px at 64 px; scaled with the image size)
    halftone_pitch: tuple[float, float] = (2.0, 3.5)
    screen_period: tuple[float, float] = (3.0, 3.0)
    screen_strength: tuple[float, float] = (0.08, 0.15)
    moire_freq: tuple[float, float] = (0.15, 0.3)  # cycles per px of the beat's carrier gratings at 64 px
    mask_tint: tuple[float, float, float] = (1.0, 0.97, 0.92)


DOMAINS: dict[str, Domain] = {
    "O": Domain(
        "O", "OULU-NPU-like: phone cameras, sharp, varied indoor light, high JPEG quality",
        wb=(1.04, 1.0, 0.94), gamma=1.0, contrast=1.05, blur=(0.2, 0.5), downscale=(1.0, 1.0),
        noise=(0.0003, 0.006), jpeg=(85, 95), light_x=(-0.9, 0.9),
        bg=((0.75, 0.72, 0.68), (0.55, 0.5, 0.45), (0.85, 0.85, 0.88)),
        halftone_pitch=(2.0, 3.0), screen_period=(3.0, 3.0), screen_strength=(0.08, 0.14), moire_freq=(0.18, 0.3),
    ),
    "C": Domain(
        "C", "CASIA-FASD-like: low-resolution webcam, soft, noisy, greenish",
        wb=(0.95, 1.05, 0.95), gamma=1.1, contrast=0.95, blur=(0.5, 0.8), downscale=(0.7, 0.85),
        noise=(0.0008, 0.012), jpeg=(70, 85), light_x=(-0.5, 0.5),
        bg=((0.3, 0.35, 0.3), (0.45, 0.5, 0.42), (0.2, 0.22, 0.25)),
        halftone_pitch=(2.5, 3.5), screen_period=(3.0, 4.0), screen_strength=(0.1, 0.18), moire_freq=(0.15, 0.25),
    ),
    "I": Domain(
        "I", "Replay-Attack-like: controlled and adverse light, bluish, lower contrast",
        wb=(0.92, 0.98, 1.1), gamma=0.9, contrast=0.9, blur=(0.4, 0.7), downscale=(0.8, 0.9),
        noise=(0.0005, 0.008), jpeg=(75, 90), light_x=(-1.0, -0.2),
        bg=((0.4, 0.42, 0.5), (0.62, 0.64, 0.7), (0.3, 0.3, 0.35)),
        halftone_pitch=(2.0, 2.8), screen_period=(2.8, 3.2), screen_strength=(0.08, 0.14), moire_freq=(0.2, 0.35),
    ),
    "M": Domain(
        "M", "MSU-MFSD-like: laptop camera, blurred, strong JPEG, yellowish (the hardest domain)",
        wb=(1.08, 1.02, 0.86), gamma=1.05, contrast=1.0, blur=(0.6, 0.9), downscale=(0.7, 0.85),
        noise=(0.0005, 0.008), jpeg=(45, 60), light_x=(0.0, 0.9),
        bg=((0.7, 0.62, 0.45), (0.5, 0.4, 0.3), (0.8, 0.75, 0.6)),
        halftone_pitch=(3.0, 4.0), screen_period=(3.5, 4.5), screen_strength=(0.1, 0.2), moire_freq=(0.12, 0.22),
    ),
    "U": Domain(
        "U", "UniAttackData-like: CeFA RealSense captures, neutral colour, clean, high quality",
        wb=(1.0, 1.0, 1.0), gamma=1.0, contrast=1.0, blur=(0.2, 0.4), downscale=(1.0, 1.0),
        noise=(0.0002, 0.004), jpeg=(90, 97), light_x=(-0.6, 0.6),
        bg=((0.6, 0.6, 0.6), (0.35, 0.35, 0.38), (0.8, 0.78, 0.75)),
        halftone_pitch=(2.0, 3.5), screen_period=(3.0, 3.5), screen_strength=(0.08, 0.16), moire_freq=(0.15, 0.3),
    ),
}

MCIO = ("O", "C", "I", "M")


def get_domain(name: str | Domain) -> Domain:
    if isinstance(name, Domain):
        return name
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown face domain {name!r}; known: {', '.join(DOMAINS)}") from None


def background(domain: Domain, size: int, rng: np.random.Generator) -> np.ndarray:
    """A scene background from the domain's palette: a tilted two-colour gradient with soft blobs."""
    pal = np.array(domain.bg, np.float32)
    c1 = pal[rng.integers(len(pal))] * rng.uniform(0.85, 1.1)
    c2 = pal[rng.integers(len(pal))] * rng.uniform(0.7, 1.0)
    ang = rng.uniform(0, 2 * np.pi)
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    t = np.clip(0.5 + 0.5 * (np.cos(ang) * u + np.sin(ang) * v), 0, 1)[..., None]
    img = c1 * (1 - t) + c2 * t
    blobs = cv2.resize(rng.standard_normal((5, 5)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = img * (1 + 0.6 * blobs[..., None] / (np.abs(blobs).max() + 1e-6) * 0.15)
    return np.clip(img, 0, 1).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a float (H,W,3) image in [0,1]."""
    u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out.astype(np.float32) / 255.0


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """Down-sample by ``factor`` (area) and back up (bilinear): the loss of resolution of a cheaper camera."""
    if factor >= 0.999:
        return img
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(4, int(round(w * factor))), max(4, int(round(h * factor)))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def camera(img: np.ndarray, domain: Domain, rng: np.random.Generator, compress: bool = True) -> np.ndarray:
    """The domain's capture pipeline: resolution, optics blur, white balance, contrast/gamma, sensor noise, JPEG."""
    size = img.shape[0]
    s = size / 64.0
    out = rescale(img, float(rng.uniform(*domain.downscale)))
    sigma = float(rng.uniform(*domain.blur)) * s
    if sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    wb = np.array(domain.wb, np.float32) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    out = out * wb
    out = np.clip((out - 0.5) * domain.contrast * rng.uniform(0.95, 1.05) + 0.5, 0, 1)
    out = out ** (1.0 / (domain.gamma * rng.uniform(0.95, 1.05)))
    a, b = domain.noise
    std = np.sqrt(a * out + b * b)
    out = out + std * rng.standard_normal(out.shape).astype(np.float32)
    out = np.clip(out, 0, 1)
    if compress:
        out = jpeg(out, int(rng.integers(domain.jpeg[0], domain.jpeg[1] + 1)))
    return out.astype(np.float32)
