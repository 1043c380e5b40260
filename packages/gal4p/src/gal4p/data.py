"""Data of GAL: the official ``init.json`` layout, the weighted DreamBooth dataset, class images, toy concepts.

Official layout (a user of GAL4Personalization can point gal4p at the same files)::

    data/object/cat/init.json     [{"instance_prompt": "A <cute-cat> cat on the stairs",
                                    "plain_prompt": "A cat on the stairs",
                                    "instance_data_path": "./data/object/cat/imgs/0.jpg", "weight": 1.0}, ...]
    data/style/cat/init.json      [{"instance_prompt": "A cat in watercolor painting style",
                                    "instance_data_path": "./data/style/cat/original.jpg", "weight": 1.0}]
    <class_dir>/*.jpg             class images for prior preservation (objects)
    data/test_prompts/<concept>.txt   one evaluation prompt per line

Relative ``instance_data_path`` values are resolved against the JSON's folder, then its parents, then
the working directory (the official files use paths relative to the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from vislab.errors import InputError, VislabError
from vislab.io import list_images, load_image, require_file, write_json

# ----------------------------------------------------------------------------------------- init.json


def resolve_path(p: str, json_path: Path) -> Path:
    """An ``instance_data_path`` as a real path (see module docstring)."""
    q = Path(p).expanduser()
    if q.is_absolute():
        return q
    for base in [json_path.parent, *json_path.parent.parents, Path.cwd()]:
        if (base / q).exists():
            return (base / q).resolve()
    return (json_path.parent / q).resolve()


def read_records(path: str | Path, mode: str) -> list[dict[str, Any]]:
    """Read an official ``init.json`` / ``<mode>_add.json``: a list of records with ``instance_data_path``,
    ``instance_prompt``, ``weight`` (default 1.0) and, for objects, ``plain_prompt``. Paths come back resolved."""
    p = require_file(path, "init.json")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(p, f"not valid JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise InputError(p, "expected a non-empty JSON list of records")
    out = []
    for i, r in enumerate(data):
        if not isinstance(r, dict) or "instance_data_path" not in r or "instance_prompt" not in r:
            raise InputError(p, f"record {i} needs 'instance_data_path' and 'instance_prompt'")
        if mode == "object" and "plain_prompt" not in r:
            raise InputError(p, f"record {i} has no 'plain_prompt' (object concepts need the prompt without the identifier)")
        rec = dict(r)
        rec["instance_data_path"] = str(resolve_path(str(r["instance_data_path"]), p))
        rec["weight"] = float(r.get("weight", 1.0))
        out.append(rec)
    return out


def reference_captions(records: list[dict[str, Any]], mode: str) -> list[str]:
    """Reference captions C: object = the distinct ``plain_prompt`` values; style = the init ``instance_prompt``(s)."""
    key = "plain_prompt" if mode == "object" else "instance_prompt"
    return list(dict.fromkeys(r[key] for r in records))


def concept_descriptor(records: list[dict[str, Any]], mode: str, identifier: str | None, class_word: str | None) -> str:
    """Object: ``"a <identifier> <class>"``; style: ``"in <style>"`` from the init prompt."""
    from gal4p.directions import style_descriptor

    if mode == "style":
        return style_descriptor(records[0]["instance_prompt"])
    if not identifier or not class_word:
        raise VislabError("object concepts need data.identifier and data.class_word (e.g. '<cute-cat>' and 'cat')")
    return f"a {identifier} {class_word}"


def personalize_prompt(prompt: str, class_word: str, identifier: str) -> str:
    """Insert the identifier before the first whole-word occurrence of the class word ("cat" -> "<id> cat"),
    as the official evaluation does; prompts without the class word get ``"<id> <class>"`` appended."""
    words = prompt.split(" ")
    for i, w in enumerate(words):
        if w.lower().strip(".,!?") == class_word.lower():
            words.insert(i, identifier)
            return " ".join(words)
    return f"{prompt} {identifier} {class_word}"


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line."""
    p = require_file(path, "prompt list")
    prompts = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    if not prompts:
        raise InputError(p, "the prompt list is empty")
    return prompts


# ----------------------------------------------------------------------------------------- images


def load_pixels(path: str | Path, resolution: int, center_crop: bool = True, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Image -> (3, R, R) in [-1, 1]: shorter side resized to R (bilinear), then a centre or random R x R crop."""
    img = torch.from_numpy(load_image(path)).permute(2, 0, 1).float() / 255.0
    h, w = img.shape[-2:]
    s = resolution / min(h, w)
    nh, nw = max(resolution, round(h * s)), max(resolution, round(w * s))
    img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    if center_crop or rng is None:
        top, left = (nh - resolution) // 2, (nw - resolution) // 2
    else:
        top, left = int(rng.integers(nh - resolution + 1)), int(rng.integers(nw - resolution + 1))
    img = img[:, top : top + resolution, left : left + resolution]
    return (img.clamp(0, 1) * 2 - 1).contiguous()


def save_png(path: str | Path, image: torch.Tensor) -> Path:
    """Save a (3, H, W) image in [0, 1] as PNG, atomically."""
    from PIL import Image
    from vislab.io import atomic_path

    arr = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return Path(path)


class PersonalizationDataset(Dataset):
    """The weighted training set of one round: init records plus accepted samples (each with its weight),
    and (with prior preservation) class images paired by index.

    Length = max(#class, #instance) with prior, else #instance; instance ``i mod N``, class ``i mod M``.
    Items: ``pixel_values`` (3, R, R) in [-1, 1], ``prompt`` str, ``weight`` float and, with prior,
    ``class_pixel_values``, ``class_prompt``. Images are read once and kept in memory.
    """

    def __init__(self, records: list[dict[str, Any]], resolution: int, class_images: list[Path] | None = None,
                 class_prompt: str | None = None, center_crop: bool = False, seed: int = 0):
        if not records:
            raise VislabError("the training set is empty (no instance images)")
        self.records = records
        self.resolution = resolution
        self.center_crop = center_crop
        self.rng = np.random.default_rng(seed)
        self.images = [self._read(r["instance_data_path"]) for r in records]
        self.class_images = [self._read(p) for p in (class_images or [])]
        self.class_prompt = class_prompt
        if class_images is not None and not self.class_images:
            raise VislabError("prior preservation is on but there are no class images")

    def _read(self, path) -> torch.Tensor:
        # keep one up-scaled copy; random crops are taken per item
        img = torch.from_numpy(load_image(path)).permute(2, 0, 1).float() / 255.0
        h, w = img.shape[-2:]
        s = self.resolution / min(h, w)
        nh, nw = max(self.resolution, round(h * s)), max(self.resolution, round(w * s))
        return F.interpolate(img[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)

    def _crop(self, img: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        nh, nw = img.shape[-2:]
        if self.center_crop:
            top, left = (nh - r) // 2, (nw - r) // 2
        else:
            top, left = int(self.rng.integers(nh - r + 1)), int(self.rng.integers(nw - r + 1))
        return img[:, top : top + r, left : left + r] * 2 - 1

    def __len__(self) -> int:
        return max(len(self.class_images), len(self.records)) if self.class_images else len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i % len(self.records)]
        item = {"pixel_values": self._crop(self.images[i % len(self.records)]), "prompt": r["instance_prompt"],
                "weight": torch.tensor(float(r.get("weight", 1.0)))}
        if self.class_images:
            item["class_pixel_values"] = self._crop(self.class_images[i % len(self.class_images)])
            item["class_prompt"] = self.class_prompt
        return item


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in batch[0]:
        vals = [b[k] for b in batch]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


class PersonalizationDataModule(pl.LightningDataModule):
    """Shuffled loader over :class:`PersonalizationDataset` (one per round)."""

    def __init__(self, records: list[dict[str, Any]], resolution: int, batch_size: int = 1, class_images: list[Path] | None = None,
                 class_prompt: str | None = None, center_crop: bool = False, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.kw = dict(records=records, resolution=resolution, class_images=class_images, class_prompt=class_prompt,
                       center_crop=center_crop, seed=seed)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.dataset: PersonalizationDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = PersonalizationDataset(**self.kw)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, collate_fn=collate,
                          num_workers=self.num_workers, drop_last=False)


# ----------------------------------------------------------------------------------------- class images


def class_image_paths(class_dir: str | Path | None, num: int) -> list[Path]:
    """The first ``num`` images of ``class_dir`` (fewer if it holds fewer; none if it does not exist)."""
    if class_dir is None or not Path(class_dir).is_dir():
        return []
    from vislab.io import IMAGE_SUFFIXES

    return sorted(f for f in Path(class_dir).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:num]


# ----------------------------------------------------------------------------------------- toy concept


def make_toy_concept(out_dir: str | Path, color: str = "pink", shape: str = "star", texture: str = "solid", n_images: int = 4,
                     resolution: int = 32, identifier: str = "sks", seed: int = 0, position: str = "centre") -> Path:
    """Render ``n_images`` toy-world references of one (colour, shape, texture) object at ``position``
    (random size, jitter and background) into ``out_dir/imgs`` and write an official-style ``init.json``
    (``"a <id> <shape> <position phrase>"`` / ``"a <shape> <position phrase>"``). Returns the JSON's path."""
    from vislab.toy import world

    if color not in world.COLORS or shape not in world.SHAPES or texture not in world.TEXTURES:
        raise VislabError(f"unknown toy concept {color} {texture} {shape}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    phrase = world.POSITION_PHRASES[position]
    records = []
    for i in range(n_images):
        size = list(world.SIZES)[int(rng.integers(len(world.SIZES)))]
        px, py = world.POSITIONS[position]
        obj = {"shape": shape, "color": color, "texture": texture, "size": size, "position": position,
               "cx": float(px + rng.uniform(-0.04, 0.04)), "cy": float(py + rng.uniform(-0.04, 0.04)),
               "radius": float(world.SIZES[size] * rng.uniform(0.92, 1.08))}
        bg = {"kind": world.BACKGROUNDS[int(rng.integers(len(world.BACKGROUNDS)))], "level": float(rng.uniform(0.25, 0.55)),
              "delta": float(rng.uniform(-0.15, 0.15)), "seed": int(rng.integers(2**31))}
        img, _ = world.render_scene({"background": bg, "objects": [obj]}, resolution)
        path = save_png(out / "imgs" / f"{i}.png", torch.from_numpy(img))
        records.append({"instance_prompt": f"a {identifier} {shape} {phrase}", "plain_prompt": f"a {shape} {phrase}",
                        "instance_data_path": str(path), "weight": 1.0})
    return write_json(out / "init.json", records)


def toy_eval_prompts(shape: str) -> list[str]:
    """Held-out evaluation prompts of a toy object concept (contexts not among the toy anchor directions)."""
    return [f"a {shape}", f"a large {shape} on the left", f"a small {shape} on the right", f"a {shape} at the top",
            f"a {shape} at the bottom", f"a {shape} and a cyan square", f"a {shape} and a purple circle", f"a small {shape}"]


def check_images(paths: list[Path]) -> None:
    """Read every image once so a corrupt file fails before training (error names the file)."""
    for p in paths:
        load_image(p)


__all__ = ["read_records", "reference_captions", "concept_descriptor", "personalize_prompt", "read_prompts",
           "PersonalizationDataset", "PersonalizationDataModule", "class_image_paths", "make_toy_concept",
           "toy_eval_prompts", "save_png", "load_pixels", "list_images", "check_images"]
