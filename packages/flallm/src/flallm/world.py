"""The synthetic sign world of the embedded default.

Twelve gloss words in three groups (4 subjects, 4 objects, 4 verbs). Each word is a
"sign": a glyph with a unique (shape, colour) pair out of 4 shapes x 4 colours, moving with
one of 5 motions (left->right, right->left, down, up, static). A clip is the glyph
sequence of the gloss order SUBJ OBJ VERB (object dropped with p=0.2), 6-10 frames per
glyph, 0-2 blank frames after each glyph, Gaussian noise sigma=0.05, on 32x32 frames.
The spoken sentence is "the S V the O" (or "the S V"), so translating needs reordering
and inserted function words that have no sign of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (0.95, 0.15, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.15, 0.3, 0.95), "yellow": (0.95, 0.9, 0.1)}
MOTIONS = ("left_right", "right_left", "down", "up", "static")
SUBJECTS = ("man", "woman", "child", "dog")
OBJECTS = ("ball", "apple", "book", "car")
VERBS = ("sees", "likes", "takes", "wants")
WORDS = SUBJECTS + OBJECTS + VERBS


@dataclass(frozen=True)
class Sign:
    """The look of one gloss word: glyph shape, colour and motion."""

    shape: str
    colour: str
    motion: str


def lexicon() -> dict[str, Sign]:
    """The fixed word -> sign table: 12 distinct (shape, colour) pairs, motions cycling."""
    pairs = [(s, c) for s in SHAPES for c in COLOURS]
    order = [0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13]  # spread words over shapes and colours
    return {w: Sign(pairs[order[i]][0], pairs[order[i]][1], MOTIONS[i % len(MOTIONS)]) for i, w in enumerate(WORDS)}


def _mask(shape: str, cx: float, cy: float, size: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
    if shape == "cross":
        t = r * 0.35
        return ((np.abs(dx) <= t) & (np.abs(dy) <= r)) | ((np.abs(dy) <= t) & (np.abs(dx) <= r))
    raise ValueError(shape)


def render_sign(sign: Sign, n_frames: int, size: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """Frames of one sign, float32 (n_frames, size, size, 3) in [0, 1] (no noise yet)."""
    rng = rng or np.random.default_rng(0)
    r = size * 0.2
    lo, hi = size * 0.28, size * 0.72
    jitter = rng.uniform(-size * 0.06, size * 0.06, size=2)
    out = np.zeros((n_frames, size, size, 3), np.float32)
    for t in range(n_frames):
        a = t / max(1, n_frames - 1)
        cx, cy = size / 2, size / 2
        if sign.motion == "left_right":
            cx = lo + (hi - lo) * a
        elif sign.motion == "right_left":
            cx = hi - (hi - lo) * a
        elif sign.motion == "down":
            cy = lo + (hi - lo) * a
        elif sign.motion == "up":
            cy = hi - (hi - lo) * a
        m = _mask(sign.shape, cx + jitter[0], cy + jitter[1], size, r)
        out[t][m] = COLOURS[sign.colour]
    return out


def sample_glosses(rng: np.random.Generator, p_drop_object: float = 0.2) -> list[str]:
    """Gloss order SUBJ OBJ VERB; the object is dropped with probability ``p_drop_object``."""
    s, o, v = rng.choice(SUBJECTS), rng.choice(OBJECTS), rng.choice(VERBS)
    return [str(s), str(v)] if rng.random() < p_drop_object else [str(s), str(o), str(v)]


def gloss_to_sentence(glosses: list[str]) -> str:
    """SUBJ [OBJ] VERB -> "the S V the O" / "the S V" (reordering + function words)."""
    if len(glosses) == 3:
        s, o, v = glosses
        return f"the {s} {v} the {o}"
    s, v = glosses
    return f"the {s} {v}"


def render_clip(glosses: list[str], rng: np.random.Generator, size: int = 32, noise: float = 0.05,
                frames_per_sign: tuple[int, int] = (6, 10), blanks: tuple[int, int] = (0, 2)) -> np.ndarray:
    """A clip as uint8 (T, size, size, 3): the signs in gloss order, blanks between, noise."""
    lex = lexicon()
    parts = []
    for g in glosses:
        parts.append(render_sign(lex[g], int(rng.integers(frames_per_sign[0], frames_per_sign[1] + 1)), size, rng))
        nb = int(rng.integers(blanks[0], blanks[1] + 1))
        if nb:
            parts.append(np.zeros((nb, size, size, 3), np.float32))
    clip = np.concatenate(parts, 0)
    clip = clip + rng.normal(0.0, noise, clip.shape).astype(np.float32)
    return (np.clip(clip, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def make_split(n: int, seed: int, size: int = 32, noise: float = 0.05, p_drop_object: float = 0.2) -> list[dict]:
    """``n`` deterministic samples: ``{"id", "glosses", "text", "frames" (T,H,W,3) uint8}``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        g = sample_glosses(rng, p_drop_object)
        out.append({"id": f"synth-{seed}-{i:05d}", "glosses": g, "text": gloss_to_sentence(g),
                    "frames": render_clip(g, rng, size=size, noise=noise)})
    return out


def make_world(n_train: int = 256, n_dev: int = 64, n_test: int = 64, seed: int = 0, size: int = 32,
               noise: float = 0.05, p_drop_object: float = 0.2) -> dict[str, list[dict]]:
    """Train/dev/test splits, each from its own seed derived from ``seed``."""
    return {
        "train": make_split(n_train, seed * 1000 + 1, size, noise, p_drop_object),
        "dev": make_split(n_dev, seed * 1000 + 2, size, noise, p_drop_object),
        "test": make_split(n_test, seed * 1000 + 3, size, noise, p_drop_object),
    }
