"""Data for CFPL: frame transforms, the rank-aware class/domain-balanced batch sampler and the LightningDataModule.

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


class BalancedBatchSampler(Sampler[list[int]]):
    """Class- and domain-balanced batches for one DDP rank.

    Every batch holds ``n_live = round(batch_size * live_fraction)`` live and ``batch_size - n_live`` attack
    samples (both at least 1); inside each class the samples cycle round-robin over the source domains, and each
    (class, domain) pool is drawn without replacement, reshuffled when exhausted (the minority is oversampled).
    All ranks draw the same global stream from ``seed`` and ``epoch``; global batch ``step * world_size + r``
    goes to rank ``r``, so within a pass over a pool the ranks get disjoint indices and every rank's batch is
    balanced (a per-rank shuffle of a balanced index stream, as Lightning's distributed wrapper does, is not).

    live: (n,) 1/0; domains: (n,) names; ``num_batches`` batches per rank and epoch; ``set_epoch`` reshuffles.
    ``rank`` / ``world_size`` default to ``torch.distributed``'s when it is initialised, else 0 / 1.
    """

    def __init__(self, live: Sequence[int], domains: Sequence[str], batch_size: int, num_batches: int,
                 live_fraction: float = 0.5, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        self.pools: dict[int, dict[str, list[int]]] = {0: defaultdict(list), 1: defaultdict(list)}
        for i, (y, d) in enumerate(zip(live, domains)):
            self.pools[int(y)][d].append(i)
        if not self.pools[0] or not self.pools[1]:
            raise VislabError("training data needs both live and attack samples")
        if batch_size < 2:
            raise VislabError(f"data.batch_size must be at least 2 (one live and one attack sample), got {batch_size}")
        if not 0.0 < float(live_fraction) < 1.0:
            raise VislabError(f"data.live_fraction must be between 0 and 1 (exclusive), got {live_fraction}")
        self.batch_size, self.num_batches, self.seed = int(batch_size), int(num_batches), int(seed)
        self.n_live = min(self.batch_size - 1, max(1, round(self.batch_size * float(live_fraction))))
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.world_size = int(world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1))
        self.rank = int(rank if rank is not None else (torch.distributed.get_rank() if dist else 0))
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size}")
        self.epoch = 0
        self.sampler = self  # Lightning calls ``dataloader.batch_sampler.sampler.set_epoch`` at every epoch

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _stream(self, rng: random.Random, y: int) -> Iterator[int]:
        doms = sorted(self.pools[y])
        queues: dict[str, list[int]] = {d: [] for d in doms}
        k = 0
        while True:
            d = doms[k % len(doms)]
            if not queues[d]:
                queues[d] = self.pools[y][d][:]
                rng.shuffle(queues[d])
            yield queues[d].pop()
            k += 1

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        live, att = self._stream(rng, 1), self._stream(rng, 0)
        for _ in range(self.num_batches):
            for r in range(self.world_size):
                batch = [next(live) for _ in range(self.n_live)] + [next(att) for _ in range(self.batch_size - self.n_live)]
                if r == self.rank:
                    yield batch


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
                 steps_per_epoch: int | None = None, num_workers: int = 0, seed: int = 0, crop_scale: float = 256 / 224,
                 live_fraction: float = 0.5):
        super().__init__()
        self.train_set = Frames(train, image_size, train=True, name="train", crop_scale=crop_scale)
        self.val_set = Frames(val, image_size, name="val")
        self.test_set = Frames(test, image_size, name="test") if test is not None else self.val_set
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_live, self.train_domains = self.train_set.labels_and_domains()
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else None
        self.live_fraction = float(live_fraction)
        BalancedBatchSampler(self.train_live, self.train_domains, batch_size, 1, live_fraction)  # check the inputs now

    def train_dataloader(self) -> DataLoader:
        """Balanced batches of this rank (built here, after DDP has started, so the rank is known). The Trainer
        must not wrap it in a distributed sampler (``use_distributed_sampler=False``, as ``cfpl.train`` sets)."""
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        world = torch.distributed.get_world_size() if dist else 1
        # an epoch = one pass over the training items, shared by the ranks; or steps_per_epoch steps per rank
        n = self.steps_per_epoch or max(1, len(self.train_set) // (self.batch_size * world))
        bs = BalancedBatchSampler(self.train_live, self.train_domains, self.batch_size, n, self.live_fraction, self.seed)
        return DataLoader(self.train_set, batch_sampler=bs, collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def _eval_loader(self, ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=max(self.batch_size, 32), shuffle=False, collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
