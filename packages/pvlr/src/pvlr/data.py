"""Multi-label datasets: the toy world (embedded default) and the layouts the field uses.

Every dataset yields ``(image (3,H,W) float in [0,1], target (C,) float)`` with targets 1 positive,
0 negative, -1 ignored (VOC difficult-only); class names come from the dataset itself.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from vislab.errors import InputError, VislabError
from vislab.io import load_image, require_dir, require_file


class ImageListDataset(Dataset):
    """Images from paths with a target matrix.

    An image that turns out unreadable mid-epoch (truncated, corrupt) does not stop training: it is
    reported once (a warning naming the file) and yields a black image whose targets are all -1, which
    the loss and mAP ignore. Missing files are dropped up front by :class:`MultiLabelDataModule`.
    """

    def __init__(self, paths: list[Path], targets: np.ndarray, classnames: list[str], image_size: int, train: bool = False):
        if len(paths) == 0:
            raise VislabError("the dataset is empty: no images with labels were found")
        self.paths, self.targets, self.classnames = list(paths), torch.as_tensor(targets, dtype=torch.float32), list(classnames)
        self.image_size, self.train = image_size, train
        self.dead: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            img = torch.from_numpy(load_image(self.paths[i], size=self.image_size)).permute(2, 0, 1).float() / 255.0
        except (InputError, OSError) as e:
            if self.paths[i] not in self.dead:
                self.dead.add(self.paths[i])
                warnings.warn(f"{self.paths[i]}: unreadable image skipped (all its labels ignored): {e}", stacklevel=1)
            return torch.zeros(3, self.image_size, self.image_size), torch.full_like(self.targets[i], -1.0)
        if self.train and torch.rand(()) < 0.5:
            img = img.flip(-1)
        return img, self.targets[i]


# ----------------------------------------------------------------------------- real layouts
def read_coco(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """COCO 2014: ``annotations/instances_{split}2014.json`` + ``{split}2014/``. Sorted category ids map to
    0..C-1, names from the json; images without annotations are dropped (and counted in the message)."""
    ann = require_file(root / "annotations" / f"instances_{split}2014.json", "COCO annotation file")
    try:
        data = json.loads(ann.read_text())
        cats = sorted(data["categories"], key=lambda c: c["id"])
        images = {im["id"]: im["file_name"] for im in data["images"]}
        annotations = data["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(ann, f"not a COCO instances file ({e.__class__.__name__}: {e})") from None
    index = {c["id"]: i for i, c in enumerate(cats)}
    labels: dict[int, set[int]] = {}
    for a in annotations:
        labels.setdefault(a["image_id"], set()).add(index[a["category_id"]])
    ids = sorted(labels)
    targets = np.zeros((len(ids), len(cats)), np.float32)
    for r, i in enumerate(ids):
        targets[r, sorted(labels[i])] = 1
    return [root / f"{split}2014" / images[i] for i in ids], targets, [c["name"] for c in cats]


VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
               "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def read_voc(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """VOC 2007: ``VOCdevkit/VOC2007/{Annotations, ImageSets/Main/<split>.txt, JPEGImages}``; root may be the folder
    holding ``VOCdevkit``, ``VOCdevkit`` itself or ``VOC2007``. 1 positive, -1 when every instance of the class is
    difficult, 0 negative."""
    base = next((b for b in (root / "VOCdevkit" / "VOC2007", root / "VOC2007") if b.is_dir()), root)
    ids_file = require_file(base / "ImageSets" / "Main" / f"{split}.txt", "VOC image list")
    ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    cls = {n: i for i, n in enumerate(VOC_CLASSES)}
    targets = np.zeros((len(ids), len(VOC_CLASSES)), np.float32)
    for r, i in enumerate(ids):
        xml = require_file(base / "Annotations" / f"{i}.xml", "VOC annotation")
        try:
            objects = ET.parse(xml).getroot().findall("object")
        except ET.ParseError as e:
            raise InputError(xml, f"malformed XML ({e})") from None
        for o in objects:
            k = cls.get(o.findtext("name", "").strip())
            if k is None:
                raise InputError(xml, f"unknown VOC class {o.findtext('name')!r}")
            difficult = o.findtext("difficult", "0").strip() == "1"
            if not difficult:
                targets[r, k] = 1
            elif targets[r, k] == 0:
                targets[r, k] = -1
    return [base / "JPEGImages" / f"{i}.jpg" for i in ids], targets, list(VOC_CLASSES)


_NUS_PREFIX = re.compile(r"^.*?\bflickr[\\/]", re.IGNORECASE)


def nus_wide_relpath(line: str) -> str:
    """An image-list entry as a path under ``Flickr/``: ``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``
    (``Imagelist.txt``) and ``actor\\0001_2124494179.jpg`` (``{Train,Test}Imagelist.txt``) both give
    ``actor/0001_2124494179.jpg``."""
    return _NUS_PREFIX.sub("", line.strip()).replace("\\", "/")


def _first_file(root: Path, names: list[str], what: str) -> Path:
    for n in names:
        if (root / n).is_file():
            return root / n
    return require_file(root / names[0], what)


def read_nus_wide(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """NUS-WIDE as distributed (ConceptsList.zip, ImageList.zip, Groundtruth.zip, Flickr images):
    ``[ConceptsList/]Concepts81.txt``, ``ImageList/{Train,Test}Imagelist.txt`` (Windows paths, optionally with the
    ``C:\\ImageData\\Flickr\\`` prefix), ``[Groundtruth/]TrainTestLabels/Labels_<concept>_{Train,Test}.txt`` (one 0/1
    per line, aligned with the list), images under ``Flickr/``. The official test list is the validation split."""
    s = {"train": "Train", "test": "Test", "val": "Test"}[split]
    cfile = _first_file(root, ["Concepts81.txt", "ConceptsList/Concepts81.txt"], "NUS-WIDE concept list")
    concepts = [c.strip() for c in cfile.read_text().splitlines() if c.strip()]
    lst = require_file(root / "ImageList" / f"{s}Imagelist.txt", "NUS-WIDE image list")
    rel = [nus_wide_relpath(line) for line in lst.read_text().splitlines() if line.strip()]
    labels_dir = next((d for d in (root / "TrainTestLabels", root / "Groundtruth" / "TrainTestLabels") if d.is_dir()),
                      root / "TrainTestLabels")
    targets = np.zeros((len(rel), len(concepts)), np.float32)
    for k, c in enumerate(concepts):
        f = require_file(labels_dir / f"Labels_{c}_{s}.txt", "NUS-WIDE label file")
        col = [line.strip() for line in f.read_text().splitlines() if line.strip()]
        if len(col) != len(rel):
            raise InputError(f, f"has {len(col)} labels but the image list has {len(rel)} images")
        try:
            targets[:, k] = np.asarray(col, dtype=np.float32)
        except ValueError:
            raise InputError(f, "labels must be 0 or 1, one per line") from None
    return [root / "Flickr" / r for r in rel], targets, concepts


def read_generic(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """A CSV ``labels.csv`` (columns ``image, labels, split``; labels ';'-separated names) and ``classes.txt``."""
    classes = [c.strip() for c in require_file(root / "classes.txt", "class list").read_text().splitlines() if c.strip()]
    index = {c: i for i, c in enumerate(classes)}
    f = require_file(root / "labels.csv", "label table")
    paths, rows = [], []
    with f.open(newline="") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            if row.get("split", split) != split:
                continue
            t = np.zeros(len(classes), np.float32)
            for name in filter(None, (n.strip() for n in (row.get("labels") or "").split(";"))):
                if name not in index:
                    raise InputError(f, f"line {line_no}: unknown class {name!r} (not in classes.txt)")
                t[index[name]] = 1
            paths.append(root / row["image"])
            rows.append(t)
    return paths, np.stack(rows) if rows else np.zeros((0, len(classes)), np.float32), classes


READERS = {"coco": read_coco, "voc": read_voc, "nus_wide": read_nus_wide, "generic": read_generic}
SPLITS = {"coco": ("train", "val"), "voc": ("trainval", "test"), "nus_wide": ("train", "test"), "generic": ("train", "val")}


# ----------------------------------------------------------------------------- toy world
def toy_classnames(labels: str) -> list[str]:
    """``objects``: the 48 "<colour> <shape>" names; ``attributes``: the 6 shapes and 8 colours."""
    from vislab.toy.world import COLORS, SHAPES, label_names

    if labels == "objects":
        return label_names()
    if labels == "attributes":
        return [*SHAPES, *COLORS]
    raise VislabError(f"data.toy_labels must be objects or attributes, got {labels!r}")


def toy_tensors(n: int, resolution: int, seed: int, labels: str = "attributes") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` toy-world scenes of 1-3 objects (every colour-shape combination, held-out ones included):
    images (n,3,H,W), multi-hot targets over :func:`toy_classnames`, and those names."""
    from vislab.toy.world import ToyDataset

    names = toy_classnames(labels)
    index = {name: i for i, name in enumerate(names)}
    ds = ToyDataset(n, resolution=resolution, seed=seed, split="all", max_objects=3)
    images, _ = ds.tensors()
    targets = torch.zeros(n, len(names))
    for i in range(n):
        for o in ds.spec(i)["objects"]:
            keys = [f"{o['color']} {o['shape']}"] if labels == "objects" else [o["shape"], o["color"]]
            for k in keys:
                targets[i, index[k]] = 1
    return images, targets, names


class MultiLabelDataModule(pl.LightningDataModule):
    """``source``: ``toy`` (the embedded default) or one of coco | voc | nus_wide | generic under ``root``."""

    def __init__(self, source: str = "toy", root: str | None = None, image_size: int = 32, batch_size: int = 32,
                 num_workers: int = 0, n_train: int = 1024, n_val: int = 256, toy_labels: str = "attributes", seed: int = 0):
        super().__init__()
        if source != "toy" and source not in READERS:
            raise VislabError(f"data.source must be toy, {', '.join(READERS)}; got {source!r}")
        self.source, self.root, self.image_size = source, root, image_size
        self.batch_size, self.num_workers, self.n_train, self.n_val, self.seed = batch_size, num_workers, n_train, n_val, seed
        self.toy_labels = toy_labels
        self.classnames: list[str] = []
        self.report: list[str] = []
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._load()

    def _load(self) -> None:
        if self.source == "toy":
            xi, yi, names = toy_tensors(self.n_train, self.image_size, self.seed, self.toy_labels)
            xv, yv, _ = toy_tensors(self.n_val, self.image_size, self.seed + 1, self.toy_labels)
            self.train_set, self.val_set, self.classnames = TensorDataset(xi, yi), TensorDataset(xv, yv), names
            return
        if not self.root:
            raise VislabError(f"data.root is required for data.source={self.source}")
        root = require_dir(self.root, f"{self.source} dataset root")
        sets = []
        for split in SPLITS[self.source]:
            p, t, names = READERS[self.source](root, split)
            p, t = self._checked(split, p, t)
            sets.append(ImageListDataset(p, t, names, self.image_size, train=not sets))
        self.train_set, self.val_set = sets
        self.classnames = names

    def _checked(self, split: str, paths: list[Path], targets: np.ndarray) -> tuple[list[Path], np.ndarray]:
        """Drop listed images that do not exist and (NUS-WIDE, as the field does) images without any label;
        both counts go to ``self.report`` (printed by the training run)."""
        exists = np.array([p.is_file() for p in paths], bool)
        labelled = (targets > 0).any(1) if self.source == "nus_wide" else np.ones(len(paths), bool)
        keep = exists & labelled
        line = f"{self.source} {split}: {len(paths)} listed, {int((~exists).sum())} missing images dropped"
        if self.source == "nus_wide":
            line += f", {int((exists & ~labelled).sum())} unlabelled images dropped"
        self.report.append(f"{line}, {int(keep.sum())} kept")
        if len(paths) and not keep.any():
            raise InputError(paths[0].parent, f"none of the {len(paths)} {split} images listed for {self.source} exist "
                                              f"(first expected: {paths[0].name})")
        return [p for p, k in zip(paths, keep) if k], targets[keep]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, self.batch_size, shuffle=True, num_workers=self.num_workers, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, self.batch_size, shuffle=False, num_workers=self.num_workers)

    test_dataloader = val_dataloader
