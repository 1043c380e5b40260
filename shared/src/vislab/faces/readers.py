"""Core of the real-data readers: list parsing, :class:`FaceFrames`, face boxes and crops.

The per-dataset layouts (each with its source) live in :mod:`vislab.faces.layouts`; nothing is downloaded.

List formats understood here:

* **List files** ``relative/path label`` per line (:func:`parse_list_file`), where a path is a
  frame folder, a video file (.avi/.mov/.mp4/...), or an image; the label format is one of
  ``"binary"`` (0 live, 1 attack: the CASIA-FAS-Benchmark ``dg_protocol`` lists), ``"uniattack"``
  (0 live, 1 physical, 2 adversarial, 3 digital editing), ``"live1"`` (1 live, 0 spoof) or ``"oulu"``
  (``+1,<name>`` / ``-1,<name>`` ... : +1 live, -1/-2 print, -3/-4 replay; comma separated, label first).

Frames: ``frames=N`` evenly spaced frames per video, one item each (``sampling="uniform"``), or one
item per video with a random frame at every access (``sampling="random"``, for training).
Face crop: ``crop=None`` (frames are already aligned crops, the common benchmark layout), ``"boxes"``
(the layout's face-location file, see :func:`read_box_file`; elsewhere ``<video>.face`` or
``<video_dir>/boxes.txt`` with ``frame x y w h`` lines), or ``"detect"`` (the LBP
frontal-face cascade that scikit-image ships, in OpenCV's XML format; the largest detection; a
centre crop, counted in ``stats["no_face"]``, when none is found).

Bad input: every malformed list line, missing video or video without frames gives one message
(``file:line: problem``) in ``dataset.errors``. When at most a minority of the entries is bad, one
warning gives their count and the first messages and the rest is loaded (counted in ``dataset.stats``);
when half or more are bad, :class:`vislab.errors.InputError` names the first bad line.
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
    box_file: Path | None = None  # the layout's face-location file for this video (None: look beside it)
    box_format: str = "xywh"  # "xywh" (frame x y w h), "xyxy" (x1 y1 x2 y2 per frame) or "eyes" (frame, xL, yL, xR, yR)
    max_frame: int | None = None  # only frames before this index (SiW protocol 1 trains on the first 60)

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


def eyes_to_box(xl: float, yl: float, xr: float, yr: float) -> tuple[float, float, float, float]:
    """Face box ``(x, y, w, h)`` from two eye centres: a square of side 2.5 d (d = inter-ocular distance)
    centred 0.4 d below the eyes' midpoint (our choice; the crop then adds its margin)."""
    d = float(np.hypot(xr - xl, yr - yl))
    cx, cy = (xl + xr) / 2, (yl + yr) / 2 + 0.4 * d
    side = 2.5 * d
    return cx - side / 2, cy - side / 2, side, side


def read_box_file(path: Path, errors: list[str], fmt: str = "xywh") -> dict[int, tuple[float, float, float, float]]:
    """Face boxes ``{frame: (x, y, w, h)}`` from a face-location file (comma or whitespace separated).

    ``fmt``: ``"xywh"`` -- ``frame x y w h`` or ``x y w h`` lines (Idiap Replay-Attack's ``face-locations``);
    ``"xyxy"`` -- ``x1 y1 x2 y2`` per frame, line k = frame k (SiW's ``.face`` files);
    ``"eyes"`` -- ``frame, xL, yL, xR, yR`` eye centres (OULU-NPU's per-video ``.txt``), turned into a box
    by :func:`eyes_to_box`. Rows of zeros (no face found) are skipped.
    """
    boxes: dict[int, tuple[float, float, float, float]] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        errors.append(f"{path}: cannot read face-location file ({e.__class__.__name__})")
        return boxes
    k = -1
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        k += 1
        try:
            vals = [float(p) for p in re.split(r"[,\s]+", s)]
        except ValueError:
            errors.append(f"{path}:{n}: face-location line {s!r} is not numbers")
            continue
        if fmt == "eyes":
            if len(vals) != 5:
                errors.append(f"{path}:{n}: eye-position line needs 'frame, xL, yL, xR, yR', got {len(vals)} numbers")
                continue
            f, xl, yl, xr, yr = vals
            if xl == xr and yl == yr:
                continue
            boxes[int(f)] = eyes_to_box(xl, yl, xr, yr)
            continue
        if fmt == "xyxy":
            if len(vals) != 4:
                errors.append(f"{path}:{n}: face line needs 'x1 y1 x2 y2', got {len(vals)} numbers")
                continue
            x1, y1, x2, y2 = vals
            f, x, y, w, h = k, x1, y1, x2 - x1, y2 - y1
        elif len(vals) == 4:
            f, (x, y, w, h) = k, vals
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
    """A generic box file beside a video: ``<video>.face``, ``<video>.<ext>.face`` or ``<folder>/boxes.txt``
    (a ``<video>.txt`` is not taken: in OULU-NPU it holds eye positions, read by :func:`oulu_dataset`)."""
    for cand in (path.with_suffix(".face"), Path(str(path) + ".face"), path / "boxes.txt" if path.is_dir() else None):
        if cand is not None and cand.is_file() and cand != path:
            return cand
    return None


def frame_dir(path: Path) -> Path:
    """The folder holding a video's frames: ``<video>/crop/``, else ``<video>/color/``, else ``<video>/``
    (the CASIA-FAS-Benchmark loader's order)."""
    for sub in ("crop", "color"):
        if (path / sub).is_dir():
            return path / sub
    return path


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
        if not self.items:
            first = f" (first problem: {self.errors[0]})" if self.errors else ""
            raise InputError(name, f"no usable videos or frames: {len(self.errors)} problem(s){first}")
        bad = self.stats["skipped"]
        if bad > 0 and self.errors and bad * 2 >= self.stats["lines"]:
            raise InputError(name, f"{bad} of {self.stats['lines']} entries unusable; first problem: {self.errors[0]}")
        if self.errors:
            shown = "; ".join(self.errors[:3]) + (f"; ... {len(self.errors) - 3} more" if len(self.errors) > 3 else "")
            log.warning("%s: %d problem(s), %d of %d entries skipped: %s", name, len(self.errors), bad, self.stats["lines"], shown)

    def _prepare(self, e: VideoEntry, verify: str) -> bool:
        if e.kind == "folder":
            d = frame_dir(e.path)
            files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                self.errors.append(f"{e.source}: video {e.path} has no frames (no images in {d})")
                return False
            if e.max_frame is not None:
                files = files[: e.max_frame]
            chosen = [files[i] for i in sample_indices(len(files), self.frames_per_video)] if self.sampling == "uniform" else files
        elif e.kind == "image":
            chosen = [e.path]
        elif e.kind == "files":
            files = list(e.frames)
            chosen = [files[i] for i in sample_indices(len(files), self.frames_per_video)] if self.sampling == "uniform" else files
        else:
            n = _video_frame_count(e.path)
            if n > 0 and e.max_frame is not None:
                n = min(n, e.max_frame)
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
            bf = e.box_file if e.box_file is not None else _box_file_for(e.path)
            if bf is None or not Path(bf).is_file():
                want = bf if bf is not None else f"{e.path.with_suffix('.face').name} or boxes.txt"
                self.errors.append(f"{e.source}: no face-location file for {e.path} (expected {want})")
                return False
            e.boxes = read_box_file(Path(bf), self.errors, e.box_format)
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
