"""Data for UniAttack: UniAttackData protocols (toy faces by default, the real protocol files through
:mod:`vislab.faces.readers`), transforms and a class-balanced sampler.

Items: ``image`` float (3, H, W) in [0, 1], ``label`` 0 live / 1 physical / 2 adversarial / 3 digital,
``live`` 1/0, ``attack`` str, ``video`` str.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from vislab.errors import ConfigError, InputError, VislabError

PROTOCOLS = ("p1", "p2.1", "p2.2")


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) -> side ``size`` (bilinear, antialiased)."""
    sq = x.dim() == 3
    x = x.unsqueeze(0) if sq else x
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.squeeze(0) if sq else x


class TrainAugment:
    """The lab's ``resize_crop_rotate_flip_ColorJitter`` [D]: resize to size*300/224, random crop,
    flip p=0.5, rotation (+-10 deg) p=0.5, colour jitter (brightness/contrast/saturation 0.2) p=0.5."""

    def __init__(self, size: int, scale: float = 300 / 224, rotate: bool = True, jitter: bool = True):
        self.size, self.big, self.rotate, self.jitter = size, max(size, round(size * scale)), rotate, jitter

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = resize(x, self.big)
        if self.big > self.size:
            i, j = random.randint(0, self.big - self.size), random.randint(0, self.big - self.size)
            x = x[:, i : i + self.size, j : j + self.size]
        if random.random() < 0.5:
            x = x.flip(-1)
        if self.rotate and random.random() < 0.5:
            a = math.radians(random.uniform(-10, 10))
            theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]).unsqueeze(0)
            grid = F.affine_grid(theta, (1, *x.shape), align_corners=False)
            x = F.grid_sample(x.unsqueeze(0), grid, padding_mode="reflection", align_corners=False)[0]
        if self.jitter and random.random() < 0.5:
            b, c, s = (random.uniform(0.8, 1.2) for _ in range(3))
            x = x * b
            m = x.mean()
            x = (x - m) * c + m
            g = x.mean(0, keepdim=True)
            x = (x - g) * s + g
        return x.clamp(0, 1).contiguous()


class Faces(Dataset):
    """Wraps a face dataset (ToyFaces / FaceFrames): resize or augment to ``size``; keeps label fields."""

    def __init__(self, base: Dataset, size: int, train: bool = False, name: str = "", augment: bool = True,
                 crop_scale: float = 300 / 224, rotate: bool = True, jitter: bool = True):
        if len(base) == 0:
            raise VislabError(f"dataset {name or base!r} is empty")
        self.base, self.size, self.name = base, size, name
        self.aug = TrainAugment(size, crop_scale, rotate, jitter) if (train and augment) else None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.base[i]
        img = torch.as_tensor(it["image"]).float()
        img = self.aug(img) if self.aug is not None else resize(img, self.size)
        label = int(it["label"])
        return {"image": img, "label": label, "live": int(label == 0), "attack": str(it.get("attack", label)),
                "video": str(it.get("video", f"{self.name}:{i}"))}

    def labels(self) -> np.ndarray:
        if hasattr(self.base, "labels"):
            return np.asarray(self.base.labels, dtype=np.int64)
        return np.array([int(self.base[i]["label"]) for i in range(len(self.base))], dtype=np.int64)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "live": torch.tensor([it["live"] for it in items], dtype=torch.long),
        "attack": [it["attack"] for it in items],
        "video": [it["video"] for it in items],
    }


def build_protocol(d: dict[str, Any], protocol: str, seed: int = 0) -> dict[str, Dataset]:
    """``{"train", "dev", "test"}`` datasets of UniAttackData protocol ``protocol`` from ``d['source']``."""
    p = str(protocol).lower().removeprefix("uniattackdata@")
    if p not in PROTOCOLS:
        raise ConfigError(f"unknown UniAttackData protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    kind = str(d.get("source", "toy"))
    if kind == "toy":
        from vislab.faces.protocols import uniattack_protocol

        t = dict(d.get("toy") or {})
        splits = uniattack_protocol(p, domain=str(t.get("domain", "U")), identities=int(t.get("identities", 16)),
                                    frames=int(t.get("frames", 1)), size=int(t.get("size", 64)), seed=int(t.get("seed", seed)),
                                    with_depth=False)
        for ds in splits.values():
            ds.materialize()
        return splits
    if kind == "uniattackdata":
        from vislab.faces.layouts import uniattack_dataset

        if not d.get("root"):
            raise ConfigError("data.source=uniattackdata needs data.root (the UniAttackData folder holding protocol/ and Data/)")
        root = Path(str(d["root"])).expanduser()
        if not root.is_dir():
            raise InputError(root, "dataset root not found")
        out = {}
        for split in ("train", "dev", "test"):
            ds = uniattack_dataset(root, p, split, kind=str(d.get("list_kind", "image")), size=int(d.get("load_size", 224)))
            if len(ds) == 0:
                raise InputError(root, f"empty dataset: no {split} images for protocol {p} ({'; '.join(ds.errors[:3])})")
            out[split] = ds
        return out
    raise ConfigError(f"data.source must be toy or uniattackdata, not {kind!r}")


class UniAttackDataModule(pl.LightningDataModule):
    """Class-balanced training batches (live : attack = 1 : 1, minority oversampled); dev/test in order."""

    def __init__(self, splits: dict[str, Dataset], image_size: int, batch_size: int = 18, steps_per_epoch: int | None = None,
                 num_workers: int = 0, augment: bool = True, crop_scale: float = 300 / 224, rotate: bool = True, jitter: bool = True):
        super().__init__()
        self.train_set = Faces(splits["train"], image_size, train=True, name="train", augment=augment, crop_scale=crop_scale,
                               rotate=rotate, jitter=jitter)
        self.dev_set = Faces(splits["dev"], image_size, name="dev")
        self.test_set = Faces(splits["test"], image_size, name="test")
        self.batch_size, self.num_workers = batch_size, num_workers
        labels = self.train_set.labels()
        live = (labels == 0).astype(np.int64)
        if live.min() == live.max():
            raise VislabError("training data needs both live and attack samples")
        counts = np.bincount(live, minlength=2)
        self.weights = torch.as_tensor(1.0 / counts[live], dtype=torch.double)
        self.num_samples = (steps_per_epoch * batch_size) if steps_per_epoch else len(self.train_set)

    def train_dataloader(self) -> DataLoader:
        sampler = WeightedRandomSampler(self.weights, num_samples=max(self.num_samples, self.batch_size), replacement=True)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=self.num_workers, drop_last=True)

    def _eval(self, ds):
        return DataLoader(ds, batch_size=max(32, self.batch_size), shuffle=False, collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval(self.dev_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval(self.test_set)
