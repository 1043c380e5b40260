"""Readers for the real face anti-spoofing layouts (users bring the data; nothing is downloaded).

Supported layouts:

* **List files** ``relative/path label`` per line (:func:`read_list_dataset`), where a path is a
  frame folder, a video file (.avi/.mov/.mp4/...), or an image; the label format is one of
  ``"binary"`` (0 live, 1 attack: the CASIA-FAS-Benchmark ``dg_protocol`` lists), ``"uniattack"``
  (0 live, 1 physical, 2 adversarial, 3 digital editing), ``"live1"`` (1 live, 0 spoof) or ``"oulu"``
  (``+1,<name>`` / ``-1,<name>`` ... : +1 live, -1/-2 print, -3/-4 replay; comma separated, label first).
* **CASIA-FAS-Benchmark / MCIO** (:func:`mcio_dataset`): ``<root>/<DATASET>/<video_dir>/<frames>``
  and ``<root>/dg_protocol/<DATASET>_video_{train,dev,test}.txt``; a protocol string ``"O-C-I@M"``
  (or full names ``"OULU-CASIA-REPLAY@MSU"``) selects sources (train/dev split) or the target (test).
* **FLIP MCIO** (:func:`flip_dataset`): ``<root>/<dataset>/{train,test}/{real,fake}/<video>_frame<k>.png``.
* **OULU-NPU** (:func:`oulu_dataset`): ``<root>/Protocols/Protocol_<p>/<Train|Dev|Test>[_<fold>].txt``
  and the videos ``<root>/<Train|Dev|Test>_files/<name>.avi`` (or frame folders of that name).
* **UniAttackData** (:func:`uniattack_dataset`): ``<root>/protocol/UniAttackData@<p>_<image|video>_<split>.txt``
  with paths relative to ``<root>`` (``Data/live/...``) and detailed labels 0-3.

Frames: ``frames=N`` evenly spaced frames per video, one item each (``sampling="uniform"``), or one
item per video with a random frame at every access (``sampling="random"``, for training).
Face crop: ``crop=None`` (frames are already aligned crops, the common benchmark layout), ``"boxes"``
(per-video box files: ``<video>.face``, ``<video_dir>.face`` or ``<video_dir>/boxes.txt``, lines
``frame x y w h`` or ``x y w h`` as Replay-Attack's face-locations files), or ``"detect"`` (the LBP
frontal-face cascade that scikit-image ships, in OpenCV's XML format; the largest detection; a
centre crop, counted in ``stats["no_face"]``, when none is found).

Bad input: every malformed list line or unreadable/missing file gives **one** clear message
(``file:line: problem``) in ``dataset.errors`` (also logged as a warning); the rest is still loaded and
counted in ``dataset.stats``. A dataset with nothing usable raises :class:`vislab.errors.InputError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vislab.errors import InputError
from vislab.io import IMAGE_SUFFIXES

log = logging.getLogger("vislab.faces")

VIDEO_SUFFIXES = {".avi", ".mov", ".mp4", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"}
LABEL_FORMATS = ("binary", "uniattack", "live1", "oulu")
MCIO_NAMES = {"O": "OULU", "C": "CASIA", "I": "REPLAY", "M": "MSU"}
UNIATTACK_NAMES = ("live", "physical", "adversarial", "digital")


@dataclass
class VideoEntry:
    """One list line that resolved to a video: a frame folder, a video file or a single image."""

    path: Path
    label: int  # detailed: 0 live, 1 physical, 2 adversarial, 3 digital editing
    attack: str
    domain: str
    source: str  # "list_file:line"
    kind: str = "folder"  # "folder" | "video" | "image" | "files" (frames listed in ``frames`` already)
    frames: list = field(default_factory=list)  # frame files (folder/image) or frame indices (video)
    boxes: dict | None = None  # frame index -> (x, y, w, h)

    @property
    def live(self) -> int:
        return int(self.label == 0)


def parse_label(token: str, fmt: str) -> tuple[int, str]:
    """``(detailed label 0-3, attack name)`` from a list file's label token."""
    t = token.strip()
    if fmt == "binary":
        if t not in ("0", "1"):
            raise ValueError(f"label {t!r} is not 0 (live) or 1 (attack)")
        return (0, "live") if t == "0" else (1, "attack")
    if fmt == "live1":
        if t not in ("0", "1"):
            raise ValueError(f"label {t!r} is not 1 (live) or 0 (spoof)")
        return (0, "live") if t == "1" else (1, "attack")
    if fmt == "uniattack":
        if t not in ("0", "1", "2", "3"):
            raise ValueError(f"label {t!r} is not one of 0 (live), 1 (physical), 2 (adversarial), 3 (digital)")
        v = int(t)
        return v, UNIATTACK_NAMES[v]
    if fmt == "oulu":
        if not re.fullmatch(r"[+-]?\d+", t) or int(t) == 0:
            raise ValueError(f"label {t!r} is not +1 (live) or a negative attack code")
        v = int(t)
        if v > 0:
            return 0, "live"
        return 1, {-1: "print", -2: "print", -3: "replay", -4: "replay"}.get(v, "attack")
    raise ValueError(f"unknown label format {fmt!r}; known: {', '.join(LABEL_FORMATS)}")


def _resolve(rel: str, bases: Sequence[Path]) -> Path | None:
    for b in bases:
        p = (b / rel).expanduser()
        if p.exists():
            return p
        if not p.suffix:
            for suf in sorted(VIDEO_SUFFIXES):
                q = p.with_suffix(suf)
                if q.is_file():
                    return q
    return None


def read_box_file(path: Path, errors: list[str]) -> dict[int, tuple[float, float, float, float]]:
    """Boxes per frame from ``frame x y w h`` / ``x y w h`` lines (comma or whitespace separated)."""
    boxes: dict[int, tuple[float, float, float, float]] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        errors.append(f"{path}: cannot read box file ({e.__class__.__name__})")
        return boxes
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = re.split(r"[,\s]+", s)
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            errors.append(f"{path}:{n}: box line {s!r} is not numbers")
            continue
        if len(vals) == 4:
            f, (x, y, w, h) = len(boxes), vals
        elif len(vals) == 5:
            f, x, y, w, h = int(vals[0]), *vals[1:]
        else:
            errors.append(f"{path}:{n}: box line needs 'frame x y w h' or 'x y w h', got {len(vals)} numbers")
            continue
        if w <= 0 or h <= 0:
            continue  # no face in this frame (Replay-Attack writes zeros)
        boxes[int(f)] = (x, y, w, h)
    return boxes


def _box_file_for(path: Path) -> Path | None:
    for cand in (path.with_suffix(".face"), Path(str(path) + ".face"), path / "boxes.txt" if path.is_dir() else None, path.with_suffix(".txt") if path.suffix else None):
        if cand is not None and cand.is_file() and cand != path:
            return cand
    return None


def _video_frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return -1
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:  # some containers do not store it: count by reading
            n = 0
            while cap.grab():
                n += 1
        return n
    finally:
        cap.release()


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video file as uint8 RGB (H, W, 3); InputError if it cannot be decoded."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(path, "cannot open video")
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(path, f"cannot decode frame {index}")
        return np.ascontiguousarray(frame[..., ::-1])
    finally:
        cap.release()


def sample_indices(n: int, k: int) -> list[int]:
    """``k`` evenly spaced indices of ``n`` (all of them when ``k <= 0`` or ``k >= n``)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return [int(round(x)) for x in np.linspace(0, n - 1, k)]


def parse_list_file(
    list_file: str | Path,
    root: str | Path | None = None,
    label_format: str = "binary",
    domain: str = "",
    errors: list[str] | None = None,
    label: int | None = None,
    extra_bases: Sequence[str | Path] = (),
) -> tuple[list[VideoEntry], list[str], int]:
    """Parse one protocol list: ``(entries, errors, number of non-empty lines)``.

    Paths are resolved against ``root`` (default: the list's folder), then ``root``'s parent, the
    list's folder and ``extra_bases``. A list of bare paths needs ``label`` (0 live, 1 attack) for all its lines.
    """
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"unknown label format {label_format!r}; known: {', '.join(LABEL_FORMATS)}")
    errors = [] if errors is None else errors
    lf = Path(list_file).expanduser()
    if not lf.is_file():
        raise InputError(lf, "protocol list file not found")
    try:
        text = lf.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(lf, f"cannot read protocol list ({e.__class__.__name__})") from None
    base = Path(root).expanduser() if root is not None else lf.parent
    bases = [base, base.parent, lf.parent, *(Path(b) for b in extra_bases)]
    entries: list[VideoEntry] = []
    n_lines = 0
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        n_lines += 1
        where = f"{lf}:{n}"
        if label_format == "oulu":
            parts = [p.strip() for p in s.split(",")]
            if len(parts) != 2:
                errors.append(f"{where}: expected '<label>,<video name>', got {s!r}")
                continue
            tok, rel = parts
        else:
            parts = s.split()
            if len(parts) == 1 and label is not None:
                rel, tok = parts[0], None
            elif len(parts) == 2:
                rel, tok = parts
            else:
                errors.append(f"{where}: expected '<path> <label>', got {s!r}")
                continue
        try:
            lab, attack = parse_label(tok, label_format) if tok is not None else ((0, "live") if label == 0 else (1, "attack"))
        except ValueError as e:
            errors.append(f"{where}: {e}")
            continue
        p = _resolve(rel, bases)
        if p is None:
            errors.append(f"{where}: {rel} not found (looked under {base})")
            continue
        if p.is_dir():
            kind = "folder"
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            kind = "video"
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            kind = "image"
        else:
            errors.append(f"{where}: {p} is neither a frame folder, a video nor an image")
            continue
        entries.append(VideoEntry(path=p, label=lab, attack=attack, domain=domain, source=where, kind=kind))
    return entries, errors, n_lines


class FaceFrames(Dataset):
    """Frames of real videos (see the module docstring); items like :class:`vislab.faces.ToyFaces`'.

    Items: ``image`` float32 (3, size, size) in [0, 1]; ``label`` (0-3); ``live`` (1/0); ``attack``;
    ``domain``; ``video`` (path); ``frame`` (index in the video); ``path`` (the frame file or video).
    Attributes: ``errors`` (one message per problem), ``stats`` (counts), ``entries``.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        frames: int = 2,
        sampling: str = "uniform",
        size: int = 224,
        crop: str | None = None,
        margin: float = 0.2,
        verify: str = "open",
        errors: Sequence[str] = (),
        n_lines: int | None = None,
        name: str = "dataset",
        transform=None,
    ):
        if sampling not in ("uniform", "random"):
            raise ValueError(f"sampling must be 'uniform' or 'random', got {sampling!r}")
        if crop not in (None, "none", "boxes", "detect"):
            raise ValueError(f"crop must be None, 'boxes' or 'detect', got {crop!r}")
        if verify not in ("none", "open", "decode"):
            raise ValueError(f"verify must be 'none', 'open' or 'decode', got {verify!r}")
        self.frames_per_video = int(frames)
        self.sampling = sampling
        self.size = int(size)
        self.crop = None if crop == "none" else crop
        self.margin = float(margin)
        self.transform = transform
        self.errors: list[str] = list(errors)
        self.stats = {"lines": n_lines if n_lines is not None else len(entries), "videos": 0, "frames": 0, "skipped": 0, "no_face": 0}
        self._no_face_seen: set = set()
        ok: list[VideoEntry] = []
        for e in entries:
            if self._prepare(e, verify):
                ok.append(e)
        self.entries = ok
        self.stats["videos"] = len(ok)
        self.stats["skipped"] = self.stats["lines"] - len(ok)
        self.items: list[tuple[int, int]] = []
        for vi, e in enumerate(ok):
            if sampling == "random":
                self.items.append((vi, -1))
            else:
                self.items.extend((vi, k) for k in range(len(e.frames)))
        self.stats["frames"] = sum(len(e.frames) for e in ok)
        for msg in self.errors:
            log.warning(msg)
        if self.errors:
            log.warning("%s: %d problem(s); loaded %d of %d entries", name, len(self.errors), len(ok), self.stats["lines"])
        if not self.items:
            first = f" (first problem: {self.errors[0]})" if self.errors else ""
            raise InputError(name, f"no usable videos or frames: {len(self.errors)} problem(s){first}")

    def _prepare(self, e: VideoEntry, verify: str) -> bool:
        if e.kind == "folder":
            files = sorted(f for f in e.path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                self.errors.append(f"{e.source}: frame folder {e.path} has no images")
                return False
            chosen = [files[i] for i in sample_indices(len(files), self.frames_per_video)] if self.sampling == "uniform" else files
        elif e.kind == "image":
            chosen = [e.path]
        elif e.kind == "files":
            files = list(e.frames)
            chosen = [files[i] for i in sample_indices(len(files), self.frames_per_video)] if self.sampling == "uniform" else files
        else:
            n = _video_frame_count(e.path)
            if n <= 0:
                self.errors.append(f"{e.source}: cannot read video {e.path}" if n < 0 else f"{e.source}: video {e.path} has no frames")
                return False
            chosen = sample_indices(n, self.frames_per_video) if self.sampling == "uniform" else list(range(n))
        if verify != "none" and e.kind != "video":
            good = []
            for f in chosen:
                problem = _check_image(f, decode=verify == "decode")
                if problem:
                    self.errors.append(f"{e.source}: {f}: {problem}")
                else:
                    good.append(f)
            chosen = good
            if not chosen:
                return False
        e.frames = chosen
        if self.crop == "boxes":
            bf = _box_file_for(e.path)
            if bf is None:
                self.errors.append(f"{e.source}: no face box file for {e.path} (expected {e.path.with_suffix('.face').name} or boxes.txt)")
                return False
            e.boxes = read_box_file(bf, self.errors)
            if not e.boxes:
                self.errors.append(f"{e.source}: box file {bf} has no usable boxes")
                return False
        return True

    def __len__(self) -> int:
        return len(self.items)

    @property
    def live(self) -> np.ndarray:
        return np.array([self.entries[v].live for v, _ in self.items], dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return np.array([self.entries[v].label for v, _ in self.items], dtype=np.int64)

    @property
    def videos(self) -> list[str]:
        return [str(self.entries[v].path) for v, _ in self.items]

    def _frame(self, e: VideoEntry, k: int) -> tuple[np.ndarray, int, Path]:
        from vislab.io import load_image

        if e.kind == "video":
            idx = int(e.frames[k])
            return read_video_frame(e.path, idx), idx, e.path
        f = e.frames[k]
        return load_image(f), k, f

    def __getitem__(self, i: int) -> dict:
        vi, k = self.items[i]
        e = self.entries[vi]
        if k < 0:
            k = int(torch.randint(len(e.frames), ()).item())
        img, fidx, path = self._frame(e, k)
        if self.crop == "boxes":
            img = crop_box(img, _nearest_box(e.boxes, fidx), self.margin)
        elif self.crop == "detect":
            box = detect_face(img)
            if box is None:
                if (vi, k) not in self._no_face_seen:
                    self._no_face_seen.add((vi, k))
                    self.stats["no_face"] += 1
                h, w = img.shape[:2]
                s = min(h, w)
                box = ((w - s) / 2, (h - s) / 2, s, s)
            img = crop_box(img, box, self.margin)
        image = to_tensor(img, self.size)
        if self.transform is not None:
            image = self.transform(image)
        return {
            "image": image,
            "label": e.label,
            "live": e.live,
            "attack": e.attack,
            "domain": e.domain,
            "video": str(e.path),
            "frame": fidx,
            "path": str(path),
        }


def _check_image(path: Path, decode: bool) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if decode:
                im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return f"cannot read image ({e.__class__.__name__})"
    return None


def _nearest_box(boxes: dict, frame: int):
    if frame in boxes:
        return boxes[frame]
    keys = np.array(sorted(boxes))
    return boxes[int(keys[np.argmin(np.abs(keys - frame))])]


def crop_box(img: np.ndarray, box, margin: float = 0.2) -> np.ndarray:
    """Square crop around ``box = (x, y, w, h)`` enlarged by ``margin``; outside pixels replicate the edge."""
    import cv2

    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1 + margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    H, W = img.shape[:2]
    pad = max(0, -x0, -y0, x0 + s - W, y0 + s - H)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0 += pad
        y0 += pad
    return img[y0 : y0 + s, x0 : x0 + s]


_CASCADE = None


def detect_face(img: np.ndarray):
    """Largest face ``(x, y, w, h)`` found by scikit-image's LBP frontal-face cascade, or None."""
    global _CASCADE
    from skimage import data
    from skimage.color import rgb2gray
    from skimage.feature import Cascade

    if _CASCADE is None:
        _CASCADE = Cascade(data.lbp_frontal_face_cascade_filename())
    h, w = img.shape[:2]
    scale = 1.0
    g = rgb2gray(img) if img.ndim == 3 else img.astype(np.float64) / 255.0
    if max(h, w) > 320:  # detection on a reduced copy: seconds -> tens of ms
        import cv2

        scale = 320.0 / max(h, w)
        g = cv2.resize(g, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    m = min(g.shape)
    dets = _CASCADE.detect_multi_scale(img=g, scale_factor=1.2, step_ratio=1, min_size=(max(12, m // 6), max(12, m // 6)), max_size=(m, m))
    if not dets:
        return None
    d = max(dets, key=lambda r: r["width"] * r["height"])
    return (d["c"] / scale, d["r"] / scale, d["width"] / scale, d["height"] / scale)


def to_tensor(img: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, size, size) in [0, 1] (area down-sampling, bilinear up-sampling)."""
    import cv2

    if img.shape[0] != size or img.shape[1] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


# --------------------------------------------------------------------------------------------- layouts
def read_list_dataset(list_files: str | Path | Sequence[str | Path], root: str | Path | None = None, label_format: str = "binary", domain: str = "", **kwargs) -> FaceFrames:
    """Any ``path label`` list file(s) -> :class:`FaceFrames` (kwargs: frames, sampling, size, crop, ...)."""
    files = [list_files] if isinstance(list_files, (str, Path)) else list(list_files)
    entries, errors, n = [], [], 0
    for lf in files:
        e, _, k = parse_list_file(lf, root, label_format, domain, errors)
        entries += e
        n += k
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(files[0]) if len(files) == 1 else f"{len(files)} list files", **kwargs)


def _mcio_name(root: Path, short: str) -> str:
    for cand in (short, MCIO_NAMES.get(short, short), short.upper()):
        if (root / "dg_protocol" / f"{cand}_video_train.txt").is_file() or (root / "dg_protocol" / f"{cand}_video_test.txt").is_file():
            return cand
    return MCIO_NAMES.get(short, short)


def mcio_dataset(root: str | Path, protocol: str, split: str, **kwargs) -> FaceFrames:
    """CASIA-FAS-Benchmark layout: ``"O-C-I@M"`` + split "train"/"dev" (sources) or "test" (target).

    Domain letters map to the lab's dataset names (O OULU, C CASIA, I REPLAY, M MSU) unless a list
    named after the letter itself exists; full names work too.
    """
    from vislab.faces.protocols import parse_protocol

    r = Path(root).expanduser()
    if not (r / "dg_protocol").is_dir():
        raise InputError(r, "not a CASIA-FAS-Benchmark root (no dg_protocol/ folder)")
    sources, target = parse_protocol(protocol)
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    names = [target] if split == "test" else sources
    entries, errors, n = [], [], 0
    for short in names:
        ds = _mcio_name(r, short)
        lf = r / "dg_protocol" / f"{ds}_video_{split}.txt"
        if not lf.is_file():
            errors.append(f"{lf}: protocol list not found")
            continue
        e, _, k = parse_list_file(lf, r, "binary", short, errors, extra_bases=[r / ds])  # or relative to <root>/<DATASET>
        entries += e
        n += k
    return FaceFrames(entries, errors=errors, n_lines=n, name=f"{r} {protocol} {split}", **kwargs)


def oulu_dataset(root: str | Path, protocol: str | int = 1, split: str = "train", fold: int | None = None, **kwargs) -> FaceFrames:
    """OULU-NPU: ``Protocols/Protocol_<p>/<Split>[_<fold>].txt`` (``+1,1_1_01_1`` lines) over ``<Split>_files/``."""
    r = Path(root).expanduser()
    sp = {"train": "Train", "dev": "Dev", "test": "Test"}.get(split.lower())
    if sp is None:
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    name = f"{sp}_{fold}.txt" if fold is not None else f"{sp}.txt"
    lf = r / "Protocols" / f"Protocol_{protocol}" / name
    entries, errors, n = parse_list_file(lf, r / f"{sp}_files", "oulu", "O")
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(lf), **kwargs)


def uniattack_dataset(root: str | Path, protocol: str = "p1", split: str = "train", kind: str = "image", **kwargs) -> FaceFrames:
    """UniAttackData: ``<root>/protocol/UniAttackData@<protocol>_<kind>_<split>.txt``, labels 0-3."""
    r = Path(root).expanduser()
    p = protocol.lower().removeprefix("uniattackdata@")
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    lf = r / "protocol" / f"UniAttackData@{p}_{kind}_{split}.txt"
    entries, errors, n = parse_list_file(lf, r, "uniattack", "U")
    kwargs.setdefault("frames", 1 if kind == "image" else 2)
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(lf), **kwargs)


def flip_dataset(root: str | Path, dataset: str, split: str, **kwargs) -> FaceFrames:
    """FLIP's MCIO layout: ``<root>/<dataset>/<split>/{real,fake}/<video>_frame<k>.png`` (split "train" or
    "test"); frames of one video share the name before ``_frame<k>``."""
    r = Path(root).expanduser() / dataset / split
    if not r.is_dir():
        raise InputError(r, "FLIP-layout folder not found (expected <root>/<dataset>/<split>/{real,fake})")
    entries: list[VideoEntry] = []
    errors: list[str] = []
    for cls, (lab, attack) in (("real", (0, "live")), ("fake", (1, "attack"))):
        d = r / cls
        if not d.is_dir():
            errors.append(f"{d}: folder not found")
            continue
        videos: dict[str, list[Path]] = {}
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                videos.setdefault(re.sub(r"_frame\d+$", "", f.stem), []).append(f)
        for name, files in videos.items():
            entries.append(VideoEntry(path=d / name, label=lab, attack=attack, domain=dataset, source=str(d / name), kind="files", frames=files))
    return FaceFrames(entries, errors=errors, n_lines=len(entries) + len(errors), name=str(r), **kwargs)
