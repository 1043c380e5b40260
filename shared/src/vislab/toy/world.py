"""The toy image-text world: deterministic procedural scenes of 1-3 objects with captions,
multi-labels, boxes and masks.

A scene *spec* is a plain dict (``{"background": {...}, "objects": [{...}, ...]}``) drawn from a
seeded generator; :func:`render_scene` turns it into pixels at any resolution (4x supersampled,
so 32 px and 64 px renders of one spec show the same scene). Object attributes:

- shape: circle, square, triangle, star, ring, cross
- colour: red, green, blue, yellow, purple, orange, pink, cyan
- texture: solid, striped, dotted, checkered (cells of 3 px at 32 px, scaled with resolution;
  the "off" cells (stripes, squares, dots) show the colour at 45 % brightness)
- size: small, large; position: left, right, top, bottom, centre (distinct within a scene)

Backgrounds are grey (plain, vertical gradient or light noise). The colour-shape combinations
in :data:`HELD_OUT` never occur in the ``"pretrain"`` split; every ``"heldout"`` sample has one
as its first object, so a method can learn or compose a concept the toy models never saw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.60, 0.15, 0.80),
    "orange": (1.00, 0.55, 0.00),
    "pink": (1.00, 0.50, 0.75),
    "cyan": (0.10, 0.85, 0.90),
}
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted", "checkered")
SIZES: dict[str, float] = {"small": 0.16, "large": 0.24}  # radius as a fraction of the image side
POSITIONS: dict[str, tuple[float, float]] = {  # centre (x, y) as fractions of the image side
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
POSITION_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise")
HELD_OUT: tuple[tuple[str, str], ...] = (("pink", "star"), ("cyan", "cross"))
"""(colour, shape) combinations never shown in pretraining."""

SPLITS = {"pretrain": 0, "heldout": 1, "all": 2}
OFF_BRIGHTNESS = 0.45  # brightness of the "off" cells of a texture
KEEP = {"size": 0.5, "color": 0.9, "texture": 0.7, "position": 0.6}  # caption attribute keep rates
N_OBJECTS_P = {1: (1.0,), 2: (0.6, 0.4), 3: (0.6, 0.25, 0.15)}  # P(n objects) by max_objects
SUPERSAMPLE = 4
MIN_VISIBLE = 0.5  # resample a scene when an object keeps less than this share of its area


def label_names() -> list[str]:
    """The multi-label classes: every ``"<colour> <shape>"`` (48 names, colour-major)."""
    return [f"{c} {s}" for c in COLORS for s in SHAPES]


def attribute_names() -> list[str]:
    """Attribute words of the per-sample ``attributes`` multi-hot vector."""
    return [*SHAPES, *COLORS, *TEXTURES, *SIZES, *POSITIONS]


def is_held_out(obj: dict[str, Any]) -> bool:
    """Whether an object's (colour, shape) is one of :data:`HELD_OUT`."""
    return (obj["color"], obj["shape"]) in HELD_OUT


# ----------------------------------------------------------------------------- specs and captions


def object_phrase(obj: dict[str, Any], keep: dict[str, bool] | None = None) -> str:
    """``"a [size] [colour] [texture] shape [position]"``; ``keep`` says which attributes to say."""
    keep = keep or {k: True for k in KEEP}
    words = ["a"]
    if keep["size"]:
        words.append(obj["size"])
    if keep["color"]:
        words.append(obj["color"])
    if keep["texture"]:
        words.append(obj["texture"])
    words.append(obj["shape"])
    if keep["position"]:
        words.append(POSITION_PHRASES[obj["position"]])
    return " ".join(words)


def full_caption(objects: list[dict[str, Any]]) -> str:
    """The caption naming every attribute of every object."""
    return " and ".join(object_phrase(o) for o in objects)


def _sample_object(rng: np.random.Generator, position: str, held_out: bool | None) -> dict[str, Any]:
    """One object; ``held_out`` True: a HELD_OUT combo, False: never one, None: anything."""
    if held_out:
        color, shape = HELD_OUT[int(rng.integers(len(HELD_OUT)))]
    else:
        while True:
            color = list(COLORS)[int(rng.integers(len(COLORS)))]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if held_out is None or (color, shape) not in HELD_OUT:
                break
    size = list(SIZES)[int(rng.integers(len(SIZES)))]
    px, py = POSITIONS[position]
    return {
        "shape": shape,
        "color": color,
        "texture": TEXTURES[int(rng.integers(len(TEXTURES)))],
        "size": size,
        "position": position,
        "cx": float(px + rng.uniform(-0.04, 0.04)),
        "cy": float(py + rng.uniform(-0.04, 0.04)),
        "radius": float(SIZES[size] * rng.uniform(0.92, 1.08)),
    }


def sample_spec(seed: int, index: int, split: str = "pretrain", max_objects: int = 3) -> dict[str, Any]:
    """The scene spec of sample ``index`` (a pure function of its arguments).

    Returns ``{"background": {...}, "objects": [...], "caption": str}``; the caption drops
    attributes at random (keep rates :data:`KEEP`) but always names every object's shape.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if max_objects not in N_OBJECTS_P:
        raise ValueError(f"max_objects must be 1, 2 or 3, got {max_objects}")
    rng = np.random.default_rng([int(seed), SPLITS[split], int(max_objects), int(index)])
    n = 1 + int(rng.choice(max_objects, p=N_OBJECTS_P[max_objects]))
    bg = {
        "kind": BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        "level": float(rng.uniform(0.25, 0.55)),
        "delta": float(rng.uniform(-0.15, 0.15)),
        "seed": int(rng.integers(2**31)),
    }
    for _attempt in range(100):
        positions = [list(POSITIONS)[int(i)] for i in rng.permutation(len(POSITIONS))[:n]]
        objects: list[dict[str, Any]] = []
        for k, pos in enumerate(positions):
            ho = {"pretrain": False, "heldout": k == 0, "all": None}[split]
            if split == "heldout" and k > 0:
                ho = False
            for _ in range(100):
                obj = _sample_object(rng, pos, ho)
                if all((obj["color"], obj["shape"]) != (o["color"], o["shape"]) for o in objects):
                    break
            objects.append(obj)
        if n == 1 or _visible_enough(objects):
            break
    keeps = [{k: bool(rng.random() < p) for k, p in KEEP.items()} for _ in objects]
    caption = " and ".join(object_phrase(o, kp) for o, kp in zip(objects, keeps))
    return {"background": bg, "objects": objects, "caption": caption}


def _visible_enough(objects: list[dict[str, Any]], res: int = 32) -> bool:
    _, masks = render_scene({"background": {"kind": "plain", "level": 0.4, "delta": 0.0, "seed": 0}, "objects": objects}, res)
    for obj, m in zip(objects, masks):
        full = _coverage(obj, res, 1).sum()
        if m.sum() < MIN_VISIBLE * full:
            return False
    return True


# ----------------------------------------------------------------------------- rendering


def _grid(res: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centre coordinates in output-pixel units, each (res*ss, res*ss)."""
    t = (np.arange(res * ss, dtype=np.float32) + 0.5) / ss
    return np.meshgrid(t, t, indexing="xy")


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of points (u, v) in the unit shape (radius 1, y pointing down)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "triangle":  # apex up, base at v = 0.75
        return (v <= 0.75) & (v >= -1.0) & (np.abs(u) <= (v + 1.0) * (1.0 / 1.75) * 0.95)
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if shape == "star":  # five points, inner radius 0.45, one point up
        rho = np.sqrt(u * u + v * v)
        theta = np.arctan2(u, -v)  # 0 at the top
        sector = 2 * math.pi / 5
        phi = np.mod(theta, sector)
        phi = np.minimum(phi, sector - phi)
        ri = 0.45
        ax, ay = 1.0, 0.0
        bx, by = ri * math.cos(sector / 2), ri * math.sin(sector / 2)
        cross_ab = ax * by - ay * bx
        dx, dy = np.cos(phi), np.sin(phi)
        edge = cross_ab / (dx * (by - ay) - dy * (bx - ax))
        return rho <= edge
    raise ValueError(f"unknown shape {shape!r}")


def _texture_on(texture: str, x: np.ndarray, y: np.ndarray, cell: float) -> np.ndarray:
    """Which sub-pixels show the full colour (x, y relative to the object centre, in pixels)."""
    if texture == "solid":
        return np.ones_like(x, dtype=bool)
    gx, gy = np.floor(x / cell), np.floor(y / cell)
    if texture == "striped":
        return np.mod(gy, 2) == 0
    if texture == "checkered":
        return np.mod(gx + gy, 2) == 0
    if texture == "dotted":
        p = 2 * cell
        fx, fy = np.mod(x, p) - p / 2, np.mod(y, p) - p / 2
        return fx * fx + fy * fy > (0.55 * cell) ** 2  # dark dots on the full colour
    raise ValueError(f"unknown texture {texture!r}")


def _coverage(obj: dict[str, Any], res: int, ss: int = SUPERSAMPLE) -> np.ndarray:
    gx, gy = _grid(res, ss)
    r = obj["radius"] * res
    return _shape_inside(obj["shape"], (gx - obj["cx"] * res) / r, (gy - obj["cy"] * res) / r)


def render_scene(spec: dict[str, Any], resolution: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Render a scene spec.

    Returns ``image`` float32 (3, H, W) in [0, 1] and ``masks`` bool (n_objects, H, W): the
    visible part of each object (later objects are drawn over earlier ones), a pixel belonging
    to an object when more than half of its sub-pixels do.
    """
    res, ss = int(resolution), SUPERSAMPLE
    gx, gy = _grid(res, ss)
    bg = spec["background"]
    level = np.float32(bg["level"])
    if bg["kind"] == "gradient":
        base = level + np.float32(bg["delta"]) * (gy / res - 0.5) * 2
    else:
        base = np.full_like(gx, level)
    img = np.repeat(base[None], 3, axis=0).astype(np.float32)
    owner = np.full(gx.shape, -1, dtype=np.int16)
    cell = 3.0 * res / 32.0
    for k, obj in enumerate(spec["objects"]):
        inside = _coverage(obj, res, ss)
        on = _texture_on(obj["texture"], gx - obj["cx"] * res, gy - obj["cy"] * res, cell)
        rgb = np.asarray(COLORS[obj["color"]], dtype=np.float32)
        for c in range(3):
            img[c][inside] = np.where(on[inside], rgb[c], rgb[c] * OFF_BRIGHTNESS)
        owner[inside] = k
    img = img.reshape(3, res, ss, res, ss).mean(axis=(2, 4))
    if bg["kind"] == "noise":
        noise = np.random.default_rng(bg["seed"] + res).normal(0.0, 0.03, size=(res, res)).astype(np.float32)
        background = owner.reshape(res, ss, res, ss).max(axis=(1, 3)) < 0
        img = img + noise[None] * background[None]
    n = len(spec["objects"])
    frac = np.stack([(owner == k).reshape(res, ss, res, ss).mean(axis=(1, 3)) for k in range(n)]) if n else np.zeros((0, res, res))
    masks = frac > 0.5
    return np.clip(img, 0.0, 1.0).astype(np.float32), masks


def mask_box(mask: np.ndarray) -> np.ndarray:
    """``[x0, y0, x1, y1]`` (pixels, x1/y1 exclusive) of a mask; zeros for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


# ----------------------------------------------------------------------------- dataset


class ToyDataset(Dataset):
    """``n`` deterministic toy scenes.

    Item ``i`` is a pure function of ``(seed, split, max_objects, i)`` (and the resolution for
    its pixels). Items are dicts: ``image`` float (3, H, W) in [0, 1]; ``caption`` str;
    ``full_caption`` str (every attribute named); ``labels`` multi-hot float over
    :func:`label_names`; ``attributes`` multi-hot float over :func:`attribute_names`;
    ``masks`` float (max_objects, H, W) and ``boxes`` float (max_objects, 4) ``[x0, y0, x1, y1]``
    (rows past ``n_objects`` are zero); ``n_objects`` int; ``objects`` list of attribute dicts.
    Use :func:`collate` (or :class:`ToyDataModule`) to batch them.
    """

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, split: str = "pretrain", max_objects: int = 3):
        if n < 1:
            raise ValueError(f"a ToyDataset needs n >= 1 samples, got {n}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if max_objects not in N_OBJECTS_P:
            raise ValueError(f"max_objects must be 1, 2 or 3, got {max_objects}")
        self.n, self.resolution, self.seed, self.split, self.max_objects = int(n), int(resolution), int(seed), split, int(max_objects)
        self._labels = {name: i for i, name in enumerate(label_names())}
        self._attrs = {name: i for i, name in enumerate(attribute_names())}

    def __len__(self) -> int:
        return self.n

    def spec(self, index: int) -> dict[str, Any]:
        """The scene spec of item ``index``."""
        if not 0 <= index < self.n:
            raise IndexError(index)
        return sample_spec(self.seed, index, self.split, self.max_objects)

    def __getitem__(self, index: int) -> dict[str, Any]:
        spec = self.spec(index)
        image, masks = render_scene(spec, self.resolution)
        k, res = self.max_objects, self.resolution
        m = np.zeros((k, res, res), dtype=np.float32)
        boxes = np.zeros((k, 4), dtype=np.float32)
        labels = np.zeros(len(self._labels), dtype=np.float32)
        attrs = np.zeros(len(self._attrs), dtype=np.float32)
        for j, (obj, mask) in enumerate(zip(spec["objects"], masks)):
            m[j] = mask
            boxes[j] = mask_box(mask)
            labels[self._labels[f"{obj['color']} {obj['shape']}"]] = 1.0
            for key in ("shape", "color", "texture", "size", "position"):
                attrs[self._attrs[obj[key]]] = 1.0
        return {
            "image": torch.from_numpy(image),
            "caption": spec["caption"],
            "full_caption": full_caption(spec["objects"]),
            "labels": torch.from_numpy(labels),
            "attributes": torch.from_numpy(attrs),
            "masks": torch.from_numpy(m),
            "boxes": torch.from_numpy(boxes),
            "n_objects": len(spec["objects"]),
            "objects": [dict(o) for o in spec["objects"]],
        }

    def tensors(self, progress: str | None = None) -> tuple[torch.Tensor, list[str]]:
        """All images (n, 3, H, W) and captions, rendered once (``progress``: a bar title)."""
        images = torch.empty(self.n, 3, self.resolution, self.resolution)
        captions: list[str] = []
        idx = range(self.n)
        if progress:
            from vislab.run import track

            idx = track(idx, progress)
        for i in idx:
            spec = self.spec(i)
            images[i] = torch.from_numpy(render_scene(spec, self.resolution)[0])
            captions.append(spec["caption"])
        return images, captions


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep strings and object lists as lists."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if isinstance(vals[0], torch.Tensor):
            out[key] = torch.stack(vals)
        elif isinstance(vals[0], int):
            out[key] = torch.tensor(vals)
        else:
            out[key] = vals
    return out


try:
    import pytorch_lightning as _pl

    _Base = _pl.LightningDataModule
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[assignment,misc]


class ToyDataModule(_Base):  # type: ignore[misc,valid-type]
    """Train/val/test :class:`ToyDataset` loaders (disjoint seeds, same split and resolution)."""

    def __init__(
        self,
        n_train: int = 2048,
        n_val: int = 256,
        n_test: int = 256,
        resolution: int = 32,
        batch_size: int = 32,
        seed: int = 0,
        split: str = "pretrain",
        max_objects: int = 3,
        num_workers: int = 0,
    ):
        super().__init__()
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.resolution, self.batch_size, self.seed = resolution, batch_size, seed
        self.split, self.max_objects, self.num_workers = split, max_objects, num_workers

    def setup(self, stage: str | None = None) -> None:
        kw = {"resolution": self.resolution, "split": self.split, "max_objects": self.max_objects}
        self.train_set = ToyDataset(self.n_train, seed=self.seed, **kw)
        self.val_set = ToyDataset(self.n_val, seed=self.seed + 1_000_003, **kw)
        self.test_set = ToyDataset(self.n_test, seed=self.seed + 2_000_006, **kw)

    def _loader(self, ds: ToyDataset, shuffle: bool):
        from torch.utils.data import DataLoader

        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate, num_workers=self.num_workers, generator=g)

    def train_dataloader(self):
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return self._loader(self.val_set, False)

    def test_dataloader(self):
        return self._loader(self.test_set, False)


# ----------------------------------------------------------------------------- pictures


def image_grid(images: torch.Tensor | np.ndarray, ncol: int = 8, pad: int = 1, scale: int = 1) -> np.ndarray:
    """A uint8 (H, W, 3) grid of (N, 3, h, w) images in [0, 1]."""
    x = torch.as_tensor(images).detach().float().clamp(0, 1).cpu().numpy()
    n, _, h, w = x.shape
    nrow = math.ceil(n / ncol)
    grid = np.ones((3, nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[i]
    out = (grid.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def save_captioned_grid(path, images, captions: list[str], ncol: int = 6, title: str | None = None) -> None:
    """A PNG of images with their captions underneath (matplotlib, wrapped text)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.as_tensor(images).detach().float().clamp(0, 1).cpu().numpy()
    n = len(x)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 1.9, nrow * 2.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].transpose(1, 2, 0), interpolation="nearest")
            ax.set_title("\n".join(textwrap.wrap(captions[i], 22)), fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
