"""Data: the dataset layouts gloss-free SLT uses, frame sampling, the synthetic world.

A *sample* is a dict ``{"id", "text", "frames" | "frame_paths" | "video"}``: in-memory
uint8 frames (T, H, W, 3), a list of image files, or a video file. Frames are chosen
before anything is decoded: at most ``max_frames`` (uniform / random subset), then one in
``stride`` (paper: 4) from phase 0 at eval and a random phase in training.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from vislab.errors import InputError, VislabError
from vislab.io import IMAGE_SUFFIXES, list_images, load_image, require_dir, require_file, safe_unpickle

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg"}
MULTIFRAME_SUFFIXES = {".gif", ".webp", ".tif", ".tiff"}
SPLIT_ALIASES = {"train": "train", "dev": "dev", "val": "dev", "test": "test"}


# ----------------------------------------------------------------------------- frame sampling
def sample_indices(T: int, stride: int = 4, max_frames: int = 300, train: bool = False,
                   rng: random.Random | None = None) -> list[int]:
    """Indices of the frames a clip of ``T`` frames contributes: N = ceil(min(T, max)/stride).

    Longer clips are first cut to ``max_frames`` (sorted random subset in training, uniform
    at eval); then frames ``o, o+stride, ...`` with phase ``o`` random in training, 0 at eval.
    """
    if T <= 0:
        return []
    rng = rng or random.Random()
    idx = list(range(T))
    if T > max_frames:
        idx = sorted(rng.sample(idx, max_frames)) if train else [int(i) for i in np.linspace(0, T - 1, max_frames).round()]
    o = rng.randrange(min(stride, len(idx))) if train and stride > 1 else 0
    return idx[o::stride]


# ----------------------------------------------------------------------------- decoding
def read_video(path: str | Path, select: Callable[[int], list[int]] | None = None) -> np.ndarray:
    """Frames of a video or animated image as uint8 (N, H, W, 3).

    ``select(T)`` gets the clip's frame count and returns the indices to keep (all frames when None);
    only those frames are decoded to RGB and kept in memory (a 720p How2Sign clip of 300 frames would
    otherwise take about 0.8 GB). ``.npy`` arrays (memory-mapped), multi-frame images (GIF/WebP/TIFF, via
    PIL) and videos (mp4, avi, ..., via OpenCV). Unreadable files raise InputError naming the file.
    """
    p = require_file(path, "video")
    suf = p.suffix.lower()
    try:
        if suf == ".npy":
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
            if arr.ndim == 4 and select is not None:
                arr = arr[select(len(arr))]
            arr = np.asarray(arr)
        elif suf in MULTIFRAME_SUFFIXES:
            from PIL import Image, ImageSequence

            with Image.open(p) as im:
                keep = set(select(int(getattr(im, "n_frames", 1)))) if select is not None else None
                arr = np.stack([np.asarray(f.convert("RGB")) for t, f in enumerate(ImageSequence.Iterator(im)) if keep is None or t in keep])
        elif suf in VIDEO_SUFFIXES:
            arr = _read_video_cv2(p, select)
        elif suf in IMAGE_SUFFIXES:
            arr = load_image(p)[None]
        else:
            raise InputError(p, f"unsupported video type {suf!r} (videos {sorted(VIDEO_SUFFIXES)}, .gif, .npy, or a folder of frames)")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise InputError(p, f"cannot read video ({e.__class__.__name__}: {str(e)[:160]})") from None
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise InputError(p, f"expected frames of shape (T, H, W, 3), got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr.astype(np.uint8))


def _open_capture(p: Path) -> Any:
    import cv2

    return cv2.VideoCapture(str(p))


def _read_video_cv2(p: Path, select: Callable[[int], list[int]] | None = None) -> np.ndarray:
    """Decode a video with OpenCV (its bundled ffmpeg); RGB uint8 (N, H, W, 3) of the selected frames.

    Every frame is grabbed (demuxed and decoded, as inter-frame codecs need), but only the selected ones
    are retrieved (converted) and kept. The container's frame count picks the indices; if the stream turns
    out to have a different length, a second pass uses the counted length.
    """
    import cv2

    chosen: dict[int, set[int]] = {}

    def one_pass(T: int | None) -> tuple[list[np.ndarray], int, int]:
        cap = _open_capture(p)
        try:
            if not cap.isOpened():
                raise ValueError("no decodable video stream")
            T = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if T is None else T
            if select is not None and T not in chosen:
                chosen[T] = set(select(T)) if T > 0 else set()
            frames, t = [], 0
            while cap.grab():
                if select is None or t in chosen[T]:
                    ok, f = cap.retrieve()
                    if not ok:
                        break
                    frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
                t += 1
        finally:
            cap.release()
        return frames, T, t

    frames, expected, counted = one_pass(None)
    if select is not None and counted != expected and counted > 0:
        frames, _, _ = one_pass(counted)  # the header's frame count was wrong
    if not frames:
        raise ValueError("no frames decoded")
    return np.stack(frames)


def load_sample_frames(sample: dict[str, Any], stride: int, max_frames: int, train: bool, rng: random.Random) -> np.ndarray:
    """The sampled frames of one sample as uint8 (N, H, W, 3) (only those frames are decoded)."""
    if "frames" in sample:
        arr = sample["frames"]
        return arr[sample_indices(len(arr), stride, max_frames, train, rng)]
    if "frame_paths" in sample:
        paths = sample["frame_paths"]
        if not isinstance(paths, list):
            paths = list_images(paths)
        if not paths:
            raise InputError(sample.get("id", "?"), "no frames")
        return np.stack([load_image(paths[i]) for i in sample_indices(len(paths), stride, max_frames, train, rng)])
    if "video" in sample:
        return read_video(sample["video"], lambda T: sample_indices(T, stride, max_frames, train, rng))
    raise VislabError(f"sample {sample.get('id')!r} has no frames, frame_paths or video")


def load_input(path: str | Path) -> dict[str, Any]:
    """A user's input for inference: a folder of frames or a video/animated file."""
    p = Path(path).expanduser()
    if p.is_dir():
        return {"id": p.name, "text": "", "frame_paths": list_images(p)}
    require_file(p, "video")
    return {"id": p.stem, "text": "", "video": p}


# ----------------------------------------------------------------------------- image transform
class ClipTransform:
    """uint8 (N, H, W, 3) -> float (N, 3, S, S) in [0, 1]: resize (shorter side), crop, augment.

    Crop is random in training and central at eval. Augmentation (GFSLT-VLP, one transform
    for every frame of a clip), each with probability 0.5: rotation +-30 deg, scale +-20 %,
    translation +-10 px.
    """

    def __init__(self, size: int = 224, resize: int | None = 256, augment: bool = False):
        self.size, self.resize, self.augment = size, resize, augment

    def __call__(self, frames: np.ndarray, train: bool, rng: random.Random) -> torch.Tensor:
        import torchvision.transforms.v2.functional as TF

        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        if self.resize:
            x = TF.resize(x, [self.resize], antialias=True)
        H, W = x.shape[-2:]
        if H < self.size or W < self.size:
            x = TF.resize(x, [self.size, self.size], antialias=True)
            H, W = x.shape[-2:]
        if train:
            top, left = rng.randint(0, H - self.size), rng.randint(0, W - self.size)
        else:
            top, left = (H - self.size) // 2, (W - self.size) // 2
        x = x[..., top: top + self.size, left: left + self.size]
        if train and self.augment:
            angle = rng.uniform(-30, 30) if rng.random() < 0.5 else 0.0
            scale = rng.uniform(0.8, 1.2) if rng.random() < 0.5 else 1.0
            tr = [rng.randint(-10, 10), rng.randint(-10, 10)] if rng.random() < 0.5 else [0, 0]
            if angle or scale != 1.0 or any(tr):
                x = TF.affine(x, angle=angle, translate=tr, scale=scale, shear=[0.0])
        return x.contiguous()


# ----------------------------------------------------------------------------- readers
def _read_lines(path: Path, what: str) -> list[str]:
    p = require_file(path, what)
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text ({e})") from None


def read_phoenix14t(root: str | Path, split: str) -> list[dict[str, Any]]:
    """PHOENIX-2014-T: ``annotations/manual/PHOENIX-2014-T.{split}.corpus.csv`` ('|', header
    name|video|start|end|speaker|orth|translation), frames in
    ``features/fullFrame-210x260px/{split}/<name>/*.png``."""
    root = require_dir(root, "PHOENIX-2014-T folder")
    csv_path = root / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"
    lines = _read_lines(csv_path, "PHOENIX-2014-T annotation file")
    header = ["name", "video", "start", "end", "speaker", "orth", "translation"]
    if not lines or lines[0].strip().split("|") != header:
        raise InputError(csv_path, f"line 1: expected header {'|'.join(header)}")
    frames_root = root / "features" / "fullFrame-210x260px" / split
    out = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) != len(header) or not f[0] or not f[6].strip():
            raise InputError(csv_path, f"line {n}: expected 7 '|'-separated fields with a name and a translation, got {line[:80]!r}")
        out.append({"id": f[0], "text": f[6].strip(), "frame_paths": frames_root / f[0]})
    return out


def read_gfslt(label_file: str | Path, image_root: str | Path) -> list[dict[str, Any]]:
    """GFSLT-VLP ``labels.{split}``: gzip pickle dict name -> {name, text, imgs_path, ...}."""
    p = require_file(label_file, "GFSLT label file")
    root = require_dir(image_root, "image root")
    try:
        with gzip.open(p, "rb") as fh:
            data = safe_unpickle(fh)
    except Exception as e:  # noqa: BLE001
        raise InputError(p, f"not a gzip pickle of labels ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(p, "expected a dict name -> record")
    out = []
    for k, rec in data.items():
        if not isinstance(rec, dict) or "text" not in rec or "imgs_path" not in rec:
            raise InputError(p, f"record {k!r} lacks 'text' or 'imgs_path'")
        out.append({"id": str(rec.get("name", k)), "text": str(rec["text"]), "frame_paths": [root / x for x in rec["imgs_path"]]})
    return out


def read_csl_daily(root: str | Path, split: str) -> list[dict[str, Any]]:
    """CSL-Daily: ``sentence_label/csl2020ct_v2.pkl`` ({'info': [{name, label_char|label_word, ...}]}),
    ``sentence_label/split_1.txt`` (name|split), frames in ``sentence/frames_512x512/<name>/``.
    The target is the joined characters (scored per character)."""
    root = require_dir(root, "CSL-Daily folder")
    pkl = require_file(root / "sentence_label" / "csl2020ct_v2.pkl", "CSL-Daily label pickle")
    split_file = root / "sentence_label" / "split_1.txt"
    lines = _read_lines(split_file, "CSL-Daily split file")
    names = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip() or (n == 1 and line.strip().lower().startswith("name")):
            continue
        f = line.strip().split("|")
        if len(f) != 2:
            raise InputError(split_file, f"line {n}: expected name|split, got {line[:80]!r}")
        if SPLIT_ALIASES.get(f[1].strip()) == split:
            names.add(f[0].strip())
    try:
        with open(pkl, "rb") as fh:
            info = safe_unpickle(fh)["info"]
    except Exception as e:  # noqa: BLE001
        raise InputError(pkl, f"not a CSL-Daily label pickle ({e.__class__.__name__})") from None
    out = []
    for rec in info:
        if rec.get("name") in names:
            chars = rec.get("label_char") or rec.get("label_word")
            if not chars:
                raise InputError(pkl, f"record {rec.get('name')!r} has no label_char/label_word")
            out.append({"id": rec["name"], "text": "".join(chars),
                        "frame_paths": root / "sentence" / "frames_512x512" / rec["name"]})
    return out


def read_how2sign(root: str | Path, split: str) -> list[dict[str, Any]]:
    """How2Sign: ``how2sign_realigned_{train,val,test}.csv`` (tab-separated, columns VIDEO_ID,
    VIDEO_NAME, SENTENCE_ID, SENTENCE_NAME, START_REALIGNED, END_REALIGNED, SENTENCE), clips
    ``{split}_rgb_front_clips/raw_videos/<SENTENCE_NAME>.mp4``."""
    root = require_dir(root, "How2Sign folder")
    s = {"dev": "val"}.get(split, split)
    p = require_file(root / f"how2sign_realigned_{s}.csv", "How2Sign annotation file")
    lines = _read_lines(p, "How2Sign annotation file")
    cols = ["VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED", "SENTENCE"]
    if not lines or [c.strip() for c in lines[0].split("\t")] != cols:
        raise InputError(p, f"line 1: expected the tab-separated header {' '.join(cols)}")
    out = []
    for n, row in enumerate(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE), start=2):
        if not row:
            continue
        if len(row) != len(cols) or not row[3] or not row[6].strip():
            raise InputError(p, f"line {n}: expected 7 tab-separated fields with a sentence name and sentence")
        out.append({"id": row[3], "text": row[6].strip(), "video": root / f"{s}_rgb_front_clips" / "raw_videos" / f"{row[3]}.mp4"})
    return out


def read_manifest(path: str | Path, split: str) -> list[dict[str, Any]]:
    """Generic ``manifest.jsonl``: one ``{"id", "frames_dir" | "video", "text", "split"}`` per line
    (relative paths from the manifest's folder)."""
    p = require_file(path, "manifest")
    out = []
    for n, line in enumerate(_read_lines(p, "manifest"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            assert isinstance(rec, dict) and "text" in rec and ("frames_dir" in rec or "video" in rec)
        except Exception:  # noqa: BLE001
            raise InputError(p, f"line {n}: expected a JSON object with text and frames_dir or video") from None
        if SPLIT_ALIASES.get(str(rec.get("split", "train"))) != split:
            continue
        s: dict[str, Any] = {"id": str(rec.get("id", f"line{n}")), "text": str(rec["text"])}
        if "frames_dir" in rec:
            s["frame_paths"] = p.parent / rec["frames_dir"]
        else:
            s["video"] = p.parent / rec["video"]
        out.append(s)
    return out


def read_split(data_cfg: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """Samples of ``split`` (train/dev/test) from the configured source."""
    src = data_cfg["source"]
    root = data_cfg.get("root")
    if src != "synthetic" and not root:
        raise VislabError(f"data.root must be set for data.source={src}")
    if src == "phoenix14t":
        s = read_phoenix14t(root, split)
    elif src == "csl_daily":
        s = read_csl_daily(root, split)
    elif src == "how2sign":
        s = read_how2sign(root, split)
    elif src == "gfslt":
        s = read_gfslt(Path(root) / f"labels.{split}", data_cfg.get("image_root") or root)
    elif src == "manifest":
        s = read_manifest(Path(root) / "manifest.jsonl" if Path(root).is_dir() else root, split)
    else:
        raise VislabError(f"unknown data.source {src!r} (synthetic, phoenix14t, csl_daily, how2sign, gfslt, manifest)")
    if data_cfg.get("limit"):
        s = s[: int(data_cfg["limit"])]
    if not s:
        raise InputError(root, f"no {split} samples found for data.source={src}")
    return s


def synthetic_splits(data_cfg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The synthetic sign world's splits (cached per config inside this process)."""
    from flallm.world import make_world

    sc = data_cfg["synthetic"]
    key = json.dumps(sc, sort_keys=True)
    if key not in _WORLD_CACHE:
        _WORLD_CACHE[key] = make_world(sc["n_train"], sc["n_dev"], sc["n_test"], sc["seed"], sc["size"], sc["noise"], sc["p_drop_object"])
    return _WORLD_CACHE[key]


_WORLD_CACHE: dict[str, dict[str, list[dict[str, Any]]]] = {}


def load_splits(data_cfg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """train/dev/test samples of the configured source."""
    if data_cfg["source"] == "synthetic":
        return synthetic_splits(data_cfg)
    return {s: read_split(data_cfg, s) for s in ("train", "dev", "test")}


# ----------------------------------------------------------------------------- datasets
class SignVideoDataset(Dataset):
    """Samples -> ``{"id", "text", "frames" (N, 3, S, S) float}`` with the paper's frame sampling."""

    def __init__(self, samples: list[dict[str, Any]], data_cfg: dict[str, Any], train: bool, seed: int = 0):
        if not samples:
            raise VislabError("empty dataset")
        self.samples, self.train = samples, train
        self.stride, self.max_frames = int(data_cfg["stride"]), int(data_cfg["max_frames"])
        self.transform = ClipTransform(int(data_cfg["image_size"]), data_cfg.get("resize"), bool(data_cfg.get("augment")) and train)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        # training: fresh randomness from torch's (seeded, per-worker) generator; eval: fixed per item
        rng = random.Random(int(torch.randint(0, 2**62, (1,)))) if self.train else random.Random(i)
        frames = load_sample_frames(s, self.stride, self.max_frames, self.train, rng)
        return {"id": s["id"], "text": s.get("text", ""), "frames": self.transform(frames, self.train, rng)}


class VideoCollator:
    """List of items -> batch: ``frames`` (B, N, 3, S, S) zero-padded, ``lengths`` (B,), ``labels`` (B, L)
    (pad = -100), ``decoder_input_ids`` (B, L) (mBART shift-right), ``texts``, ``ids``."""

    def __init__(self, tokenizer: Any | None = None, max_label_len: int | None = None):
        self.tok, self.max_label_len = tokenizer, max_label_len

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        key = "frames" if "frames" in items[0] else "feats"
        lengths = torch.tensor([it[key].shape[0] for it in items], dtype=torch.long)
        N = int(lengths.max())
        x = items[0][key].new_zeros((len(items), N, *items[0][key].shape[1:]))
        for b, it in enumerate(items):
            x[b, : it[key].shape[0]] = it[key]
        batch = {key: x, "lengths": lengths, "texts": [it["text"] for it in items], "ids": [it["id"] for it in items]}
        if self.tok is not None:
            labels = self.tok.encode_targets(batch["texts"], self.max_label_len)
            batch["decoder_input_ids"] = self.tok.shift_right(labels)
            batch["labels"] = labels.masked_fill(labels.eq(self.tok.pad_id), -100)
        return batch


class FeatureDataset(Dataset):
    """Cached sign-wise features ``{"id", "text", "feats" (N, C)}`` (stage 2)."""

    def __init__(self, items: list[dict[str, Any]]):
        if not items:
            raise VislabError("empty dataset")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class SignDataModule(pl.LightningDataModule):
    """Stage-1 data: videos of one source, train (random phase, crop, optional augmentation)
    and dev/test (phase 0, center crop)."""

    def __init__(self, splits: dict[str, list[dict[str, Any]]], data_cfg: dict[str, Any], tokenizer: Any,
                 batch_size: int, eval_batch_size: int | None = None, seed: int = 0):
        super().__init__()
        self.splits, self.cfg, self.tok = splits, data_cfg, tokenizer
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size or batch_size, seed
        self.collate = VideoCollator(tokenizer, data_cfg.get("max_label_len"))

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = SignVideoDataset(self.splits[split], self.cfg, train, self.seed)
        return DataLoader(ds, batch_size=self.batch_size if train else self.eval_batch_size, shuffle=train,
                          num_workers=int(self.cfg.get("num_workers", 0)), collate_fn=self.collate,
                          drop_last=train and len(ds) > self.batch_size, persistent_workers=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class FeatureDataModule(pl.LightningDataModule):
    """Stage-2 data: sign-wise features cached once per video by the frozen visual encoder."""

    def __init__(self, features: dict[str, list[dict[str, Any]]], tokenizer: Any, batch_size: int,
                 eval_batch_size: int | None = None, max_label_len: int | None = None):
        super().__init__()
        self.features, self.batch_size = features, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.collate = VideoCollator(tokenizer, max_label_len)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = FeatureDataset(self.features[split])
        return DataLoader(ds, batch_size=self.batch_size if train else self.eval_batch_size, shuffle=train,
                          collate_fn=self.collate, drop_last=train and len(ds) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


def n_sampled(T: int, stride: int, max_frames: int) -> int:
    """N = ceil(min(T, max_frames) / stride)."""
    return math.ceil(min(T, max_frames) / stride)
