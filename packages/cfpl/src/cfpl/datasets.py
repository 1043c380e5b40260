"""Protocol -> datasets: toy faces (embedded default) and the real MCIO / WCS layouts.

A protocol string ``A-B-C@D`` means sources A, B, C -> unseen target D (spec §8).

Real layouts (frames already face-cropped and aligned):
  layout ``flip`` (A): ``<root>/<dataset>/{train,test}/{real,fake}/*.png``; optional lists
      ``<root>/<dataset>/<dataset>_{real,fake}_{train,test}.txt`` (one relative path per line) take
      precedence over the folder listing. Frames ``<video>_frame<k>.png`` share the video ``<video>``.
  layout ``lab`` (B, the authors' CASIA-FAS-Benchmark): ``<root>/<DATASET>/<video_dir>/<frames>`` with
      ``<root>/dg_protocol/<DATASET>_video_{train,dev,test}.txt`` lines ``relative/video/dir label``
      (label 0 live, 1 attack), read by :func:`vislab.faces.readers.mcio_dataset`; 2 frames per video.
Sources use their ``train`` split, the target its ``test`` split.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from vislab.errors import ConfigError, InputError
from vislab.io import IMAGE_SUFFIXES, load_image


def parse_protocol(protocol: str) -> tuple[list[str], str]:
    """``"O-C-I@M"`` -> (["O", "C", "I"], "M")."""
    if "@" not in protocol:
        raise ConfigError(f"protocol {protocol!r} must look like SOURCE-SOURCE@TARGET, e.g. O-C-I@M")
    src, tgt = protocol.split("@", 1)
    sources = [s for s in src.split("-") if s]
    if not sources or not tgt or tgt in sources:
        raise ConfigError(f"protocol {protocol!r}: need at least one source and a target that is not a source")
    return sources, tgt


class FrameList(Dataset):
    """Face frames from files: records ``(paths, live, domain, video)``; a record with several
    paths is a video (train: one random frame, test: the first and last frames as two items)."""

    def __init__(self, records: list[tuple[list[Path], int, str, str]], train: bool, name: str):
        if not records:
            raise InputError(name, "empty dataset: no frames found")
        self.train = train
        self.name = name
        if train:
            self.items = records
        else:
            self.items = []
            for paths, live, dom, vid in records:
                pick = [paths[0], paths[-1]] if len(paths) > 1 else paths[:1]
                self.items.extend(([p], live, dom, vid) for p in pick)
        self.live = np.array([int(r[1]) for r in self.items])
        self.domain_names = [r[2] for r in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        paths, live, dom, vid = self.items[i]
        p = random.choice(paths) if self.train else paths[0]
        img = torch.from_numpy(load_image(p)).permute(2, 0, 1).float() / 255.0
        return {"image": img, "live": live, "domain": dom, "video": vid, "path": str(p)}


def _frames_in(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []


def flip_records(root: Path, dataset: str, split: str) -> list[tuple[list[Path], int, str, str]]:
    """Layout A records of one dataset and split, grouped into videos by the ``_frame<k>`` suffix."""
    base = root / dataset
    videos: dict[str, tuple[list[Path], int]] = {}
    for cls, live in (("real", 1), ("fake", 0)):
        lst = base / f"{dataset}_{cls}_{split}.txt"
        if lst.is_file():
            files = []
            for line in lst.read_text().splitlines():
                if line.strip():
                    rel = line.split()[0]
                    p = Path(rel) if Path(rel).is_absolute() else base / rel
                    if not p.is_file():
                        p = root / rel
                    files.append(p)
        else:
            files = _frames_in(base / split / cls)
        for f in files:
            vid = re.sub(r"_frame\d+$", "", f.stem)
            key = f"{dataset}/{cls}/{vid}"
            videos.setdefault(key, ([], live))[0].append(f)
    return [(sorted(ps), live, dataset, key) for key, (ps, live) in videos.items()]


def build_datasets(d: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Train (sources) and test (target) datasets for ``d['protocol']`` from ``d['source']``."""
    sources, target = parse_protocol(str(d["protocol"]))
    kind = str(d.get("source", "toy"))
    if kind == "toy":
        from vislab.faces.toy import ToyFaces

        t = dict(d.get("toy") or {})
        common = dict(attacks=tuple(t.get("attacks", ("print", "replay"))), identities=int(t.get("identities", 12)),
                      frames=int(t.get("frames", 2)), size=int(t.get("size", 64)), seed=int(t.get("seed", seed)), with_depth=False)
        train = ToyFaces(domains=sources, **common)
        test = ToyFaces(domains=[target], **common)
        for ds in (train, test):
            ds.materialize()
        if len(train) == 0 or len(test) == 0:
            raise ConfigError("toy protocol gives an empty dataset (check data.toy.identities / attacks)")
        return {"train": train, "test": test, "sources": sources, "target": target}
    if kind in ("flip", "lab"):
        if not d.get("root"):
            raise ConfigError(f"data.source={kind} needs data.root (the folder holding the datasets)")
        root = Path(str(d["root"])).expanduser()
        if not root.is_dir():
            raise InputError(root, "dataset root not found")
        if kind == "lab":
            from vislab.faces.readers import mcio_dataset

            size = int(d.get("image_size") or 224)
            train = mcio_dataset(root, str(d["protocol"]), "train", frames=int(d.get("frames", 2)), size=size)
            test = mcio_dataset(root, str(d["protocol"]), "test", frames=2, size=size)
            for name, ds in (("train", train), ("test", test)):
                if len(ds) == 0:
                    raise InputError(root, f"empty dataset: no {name} frames for protocol {d['protocol']} ({'; '.join(ds.errors[:3])})")
            return {"train": train, "test": test, "sources": sources, "target": target}
        tr = [r for s in sources for r in flip_records(root, s, "train")]
        te = flip_records(root, target, "test")
        return {"train": FrameList(tr, True, f"{root} sources {sources}"), "test": FrameList(te, False, f"{root}/{target}"),
                "sources": sources, "target": target}
    raise ConfigError(f"data.source must be toy, flip or lab, not {kind!r}")
