"""Data for both stages.

Every source is adapted to :class:`FaceItems`, a Dataset of dicts

    x      (3,R,R) float in [-1,1]  the aligned face crop at the model resolution R
    live   int 1 live / 0 spoof
    depth  (1,R,R) float in [0,1]   pseudo-depth of a live face (the source's, else the dome prior)
    attack str, domain str, key str (cache key: the frame's path (+ index) or the image's content hash),
    video str (frames of one video share it; test scores are also averaged per video)

Sources: vislab's toy faces (the embedded default), the CSV frame-folder layout
(``<root>/<dataset>/frames|depth|protocols``), and OULU-NPU / CASIA-FASD / Replay-Attack / MSU-MFSD /
SiW through vislab.faces' readers. Stage 1 reads :class:`DiffusionDataset` (live-only or
spoof-only training frames); stage 2 reads :class:`ClassifierDataset` (x, raw N, depth target, live).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from vislab.errors import InputError, VislabError


def dome_depth(size: int, cx: float = 0.0, cy: float = 0.0, a: float = 0.55, b: float = 0.7) -> torch.Tensor:
    """Ellipse "dome" pseudo-depth sqrt(1 - r^2) inside the face ellipse, 0 outside; (1,size,size) in [0,1].

    Fallback when no PRNet/3DDFA depth is available (weaker than a real 3-D fit): centred ellipse
    with half axes a, b in normalised coordinates (the crop spans [-1,1]).
    """
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    r2 = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    return (1 - r2).clamp_min(0).sqrt().unsqueeze(0)


def _to_chw(img: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(img) if not torch.is_tensor(img) else img).float()
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim == 3 and t.shape[0] not in (1, 3) and t.shape[-1] in (1, 3):
        t = t.permute(2, 0, 1)
    if t.max() > 1.5:  # uint8 range
        t = t / 255.0
    return t


def _resize(t: torch.Tensor, size: int) -> torch.Tensor:
    if t.shape[-1] == size and t.shape[-2] == size:
        return t
    return F.interpolate(t.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=True).squeeze(0)


class FaceItems(Dataset):
    """Adapter: any face dataset -> the dicts above at ``resolution``.

    ``base[i]`` may be a dict with ``image`` ((3,H,W) in [0,1] or (H,W,3) uint8/float), ``live``
    (or ``label`` with 1 = live in ``label_live_is_one`` datasets), optional ``depth``, ``attack``,
    ``domain``, ``key``/``video_id``+``frame``. Items whose image cannot be read raise InputError.
    """

    def __init__(self, base: Dataset, resolution: int, name: str = "data"):
        self.base = base
        self.resolution = int(resolution)
        self.name = name
        if len(base) == 0:  # type: ignore[arg-type]
            raise VislabError(f"{name}: the dataset is empty")
        self._dome = dome_depth(self.resolution)
        self._lives: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.base[i]
        img = _resize(_to_chw(it["image"])[:3], self.resolution)
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        x = img.clamp(0, 1) * 2 - 1
        live = int(it["live"])
        depth = it.get("depth")
        if depth is not None:
            depth = _resize(_to_chw(depth)[:1], self.resolution).clamp(0, 1)
        else:
            depth = self._dome
        key = it.get("key")
        if key is None and it.get("path") is not None:  # real frames: the file (+ frame index of a video)
            key = f"{it['path']}/{it.get('frame', 0)}"
        if key is None:
            from despoofdiff.cache import content_key

            key = content_key(x)
        video = str(it.get("video") or it.get("video_id") or key)
        return {"x": x, "live": live, "depth": depth, "attack": str(it.get("attack", "live" if live else "spoof")), "domain": str(it.get("domain", "")), "key": f"r{self.resolution}/{key}", "video": video}

    def lives(self) -> np.ndarray:
        """(n,) live labels without decoding images where the base dataset exposes them."""
        if getattr(self, "_lives", None) is not None:
            return self._lives
        base = self.base
        for attr in ("live", "lives"):
            v = getattr(base, attr, None)
            if v is not None and not callable(v) and len(v) == len(self):
                return np.asarray(v, dtype=np.int64)
        return np.array([int(base[i]["live"]) for i in range(len(self))], dtype=np.int64)

    def groups(self) -> list[str]:
        """(n,) group of every item for cross-fitting: the person (``identity``/``subject``) where the source
        gives one, else the video."""
        out = []
        for i in range(len(self)):
            it = self.base[i]
            g = it.get("identity", it.get("subject"))
            out.append(f"id:{g}" if g is not None else f"video:{it.get('video') or it.get('video_id') or it.get('key') or i}")
        return out

    def subset(self, index: Sequence[int], name: str | None = None) -> FaceItems:
        """The items at ``index`` (labels carried over without decoding)."""
        from torch.utils.data import Subset

        index = [int(i) for i in index]
        sub = FaceItems(Subset(self.base, index), self.resolution, name=name or self.name)
        sub._lives = self.lives()[index]
        return sub


class ImagesView(Sequence):
    """``items[i]['x']`` as a sequence (what :func:`despoofdiff.cache.compute_noise` reads)."""

    def __init__(self, items: FaceItems):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[i]["x"]


class DiffusionDataset(Dataset):
    """Stage 1: the live (``live=True``, for eps_G) or spoof (for eps_S) training frames, (3,R,R) in [-1,1], h-flip."""

    def __init__(self, items: FaceItems, live: bool, hflip: bool = True):
        self.items = items
        self.index = np.flatnonzero(items.lives() == (1 if live else 0))
        if len(self.index) == 0:
            raise VislabError(f"{items.name}: no {'live' if live else 'spoof'} training frames for the {'genuine' if live else 'spoof'} diffusion model")
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.items[int(self.index[i])]["x"]
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x


class ClassifierDataset(Dataset):
    """Stage 2 samples: x, raw spoof noise N, the depth target at ``depth_size`` and the live label.

    Depth target: the pseudo-depth average-pooled to depth_size for live faces, zeros for spoofs.
    Augmentation (``train=True``): h-flip applied identically to x, N and D; colour jitter
    (brightness/contrast) on x only, never on N.
    """

    def __init__(self, items: FaceItems, noise: torch.Tensor, depth_size: int, train: bool = False, hflip: bool = True, color_jitter: float = 0.0):
        if len(noise) != len(items):
            raise ValueError(f"{len(noise)} noise maps for {len(items)} items")
        self.items = items
        self.noise = noise
        self.depth_size = int(depth_size)
        self.train = train
        self.hflip = hflip
        self.color_jitter = float(color_jitter)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        x, n = it["x"], self.noise[i]
        d = F.adaptive_avg_pool2d(it["depth"], self.depth_size) if it["live"] else torch.zeros(1, self.depth_size, self.depth_size)
        if self.train:
            if self.hflip and torch.rand(()) < 0.5:
                x, n, d = x.flip(-1), n.flip(-1), d.flip(-1)
            if self.color_jitter > 0:
                j = self.color_jitter
                b = (torch.rand(()) * 2 - 1) * j
                c = 1 + (torch.rand(()) * 2 - 1) * j
                m = x.mean()
                x = ((x - m) * c + m + b).clamp(-1, 1)
        return {"x": x, "noise": n, "depth": d, "live": torch.tensor(it["live"]), "attack": it["attack"], "video": it["video"]}


def _loader(ds: Dataset, batch_size: int, shuffle: bool, num_workers: int, drop_last: bool = False) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last, persistent_workers=num_workers > 0)


class DiffusionDataModule(pl.LightningDataModule):
    """Stage-1 data: live-only (genuine DM) or spoof-only (spoof DM) frames of the protocol's training split."""

    def __init__(self, train: FaceItems, live: bool, batch_size: int = 32, num_workers: int = 0, hflip: bool = True):
        super().__init__()
        self.ds = DiffusionDataset(train, live, hflip)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        bs = min(self.batch_size, len(self.ds))
        return _loader(self.ds, bs, True, self.num_workers, drop_last=len(self.ds) >= bs)


class ClassifierDataModule(pl.LightningDataModule):
    """Stage-2 data: (x, N, depth, live) for train / dev / test (N precomputed and cached)."""

    def __init__(self, train: ClassifierDataset, dev: ClassifierDataset | None = None, test: ClassifierDataset | None = None, batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        self.train_ds, self.dev_ds, self.test_ds = train, dev, test
        self.batch_size = batch_size
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_ds, min(self.batch_size, len(self.train_ds)), True, self.num_workers, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return _loader(self.dev_ds, self.batch_size, False, self.num_workers) if self.dev_ds is not None else []

    def test_dataloader(self) -> DataLoader | list:
        return _loader(self.test_ds, self.batch_size, False, self.num_workers) if self.test_ds is not None else []


# --------------------------------------------------------------------------- frame-folder layout


class FrameListDataset(Dataset):
    """The CSV frame-folder layout: ``<root>/<dataset>/protocols/<name>/<split>.csv`` with columns
    ``path,label,video_id,attack_type,domain`` (label 1 live, 0 spoof; ``path`` relative to
    ``<root>/<dataset>/frames``), pseudo-depth in ``<root>/<dataset>/depth/<same path>`` when present.
    """

    def __init__(self, root: str | Path, dataset: str, protocol: str, split: str):
        base = Path(root).expanduser() / dataset
        self.frames = base / "frames"
        self.depth = base / "depth"
        lst = base / "protocols" / protocol / f"{split}.csv"
        if not lst.is_file():
            raise InputError(lst, "protocol list not found")
        with open(lst, newline="") as f:
            rows = list(csv.DictReader(f))
        need = {"path", "label"}
        if rows and not need <= set(rows[0]):
            raise InputError(lst, f"protocol list needs columns {sorted(need)}, has {sorted(rows[0])}")
        if not rows:
            raise InputError(lst, "protocol list is empty")
        self.rows = rows
        self.live = [1 if str(r["label"]).strip() in ("1", "live", "real") else 0 for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from vislab.io import load_image

        r = self.rows[i]
        img = load_image(self.frames / r["path"])
        dp = self.depth / r["path"]
        depth = load_image(dp, mode="L") if dp.is_file() else None
        vid = r.get("video_id") or str(Path(r["path"]).parent)
        return {
            "image": img,
            "live": self.live[i],
            "depth": depth,
            "attack": r.get("attack_type") or ("live" if self.live[i] else "spoof"),
            "domain": r.get("domain") or "",
            "key": f"{vid}/{Path(r['path']).stem}",
        }
