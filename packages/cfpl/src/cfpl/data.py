"""Data for CFPL: frame transforms, the class/domain-balanced sampler and the LightningDataModule.

Items everywhere are dicts with ``image`` float (3, H, W) in [0, 1], ``live`` int (1 live,
0 attack), ``domain`` str and ``video`` str (frame scores are averaged per video at test time).
Sources: vislab's toy faces (leave-one-domain-out, the embedded default) and the real
MCIO/WCS layouts through :mod:`vislab.faces` readers (see ``build_datasets``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from vislab.errors import VislabError


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) -> same with H = W = size (bilinear, antialiased)."""
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.squeeze(0) if squeeze else x


class TrainAugment:
    """Training augmentation [P: random crop + horizontal flip; D: resize to size*256/224, crop size]."""

    def __init__(self, size: int, scale: float = 256 / 224, flip: bool = True):
        self.size, self.big, self.flip = size, max(size, round(size * scale)), flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = resize(x, self.big)
        if self.big > self.size:
            i = random.randint(0, self.big - self.size)
            j = random.randint(0, self.big - self.size)
            x = x[..., i : i + self.size, j : j + self.size]
        if self.flip and random.random() < 0.5:
            x = x.flip(-1)
        return x.contiguous()


class Frames(Dataset):
    """Wraps a face dataset: resizes (test) or augments (train) to ``size`` and keeps the fields CFPL uses."""

    def __init__(self, base: Dataset, size: int, train: bool = False, name: str = "", crop_scale: float = 256 / 224):
        if len(base) == 0:
            raise VislabError(f"dataset {name or base!r} is empty")
        self.base, self.size, self.train, self.name = base, size, train, name
        self.aug = TrainAugment(size, scale=crop_scale) if train else None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.base[i]
        img = torch.as_tensor(it["image"]).float()
        img = self.aug(img) if self.aug is not None else resize(img, self.size)
        return {
            "image": img,
            "live": int(it["live"]),
            "domain": str(it.get("domain", "")),
            "video": str(it.get("video", it.get("path", f"{self.name}:{i}"))),
        }

    def labels_and_domains(self) -> tuple[list[int], list[str]]:
        """(live, domain) of every item, without decoding images where the base dataset allows it."""
        base = self.base
        if hasattr(base, "live"):
            live = [int(v) for v in np.asarray(base.live)]
            if hasattr(base, "domain_names"):
                doms = [str(d) for d in base.domain_names]
            elif hasattr(base, "entries") and hasattr(base, "items"):  # vislab.faces.readers.FaceFrames
                doms = [str(base.entries[v].domain) for v, _ in base.items]
            else:
                doms = [""] * len(live)
            return live, doms
        items = [base[i] for i in range(len(base))]
        return [int(it["live"]) for it in items], [str(it.get("domain", "")) for it in items]


class BalancedSampler(Sampler[int]):
    """Index stream where each consecutive ``batch_size`` block is half live / half attack and
    the samples of each class cycle round-robin over the source domains (minority oversampled).

    live: (n,) 1/0; domains: (n,) names. ``num_samples`` indices per epoch.
    """

    def __init__(self, live: Sequence[int], domains: Sequence[str], num_samples: int, seed: int = 0):
        self.pools: dict[int, dict[str, list[int]]] = {0: defaultdict(list), 1: defaultdict(list)}
        for i, (y, d) in enumerate(zip(live, domains)):
            self.pools[int(y)][d].append(i)
        if not self.pools[0] or not self.pools[1]:
            raise VislabError("training data needs both live and attack samples")
        self.num_samples = int(num_samples)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _stream(self, rng: random.Random, y: int) -> Iterator[int]:
        doms = sorted(self.pools[y])
        queues = {d: [] for d in doms}
        k = 0
        while True:
            d = doms[k % len(doms)]
            if not queues[d]:
                queues[d] = self.pools[y][d][:]
                rng.shuffle(queues[d])
            yield queues[d].pop()
            k += 1

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + 1000 * self.epoch)
        self.epoch += 1
        live, att = self._stream(rng, 1), self._stream(rng, 0)
        for k in range(self.num_samples):
            yield next(live) if k % 2 == 0 else next(att)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "live": torch.tensor([it["live"] for it in items], dtype=torch.long),
        "domain": [it["domain"] for it in items],
        "video": [it["video"] for it in items],
    }


class FASDataModule(pl.LightningDataModule):
    """Source-domain training frames (balanced sampler) and target-domain evaluation frames."""

    def __init__(self, train: Dataset, val: Dataset, test: Dataset | None = None, image_size: int = 224, batch_size: int = 12,
                 steps_per_epoch: int | None = None, num_workers: int = 0, seed: int = 0, crop_scale: float = 256 / 224):
        super().__init__()
        self.train_set = Frames(train, image_size, train=True, name="train", crop_scale=crop_scale)
        self.val_set = Frames(val, image_size, name="val")
        self.test_set = Frames(test, image_size, name="test") if test is not None else self.val_set
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_live, self.train_domains = self.train_set.labels_and_domains()
        n = steps_per_epoch * batch_size if steps_per_epoch else len(self.train_set)
        self.sampler = BalancedSampler(self.train_live, self.train_domains, max(n, batch_size), seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.sampler, collate_fn=collate,
                          num_workers=self.num_workers, drop_last=True, persistent_workers=self.num_workers > 0)

    def _eval_loader(self, ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=max(self.batch_size, 32), shuffle=False, collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
