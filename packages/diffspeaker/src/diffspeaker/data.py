"""Data: audio reading, the VOCASET/BIWI layouts of the official code, and the synthetic default.

A sample is a dict: ``audio`` (N,) float32 16 kHz raw waveform, ``vertices`` (T,3V) float32,
``template`` (3V,), ``style`` (n_styles,) one-hot, ``name``, ``subject``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from vislab.errors import InputError, VislabError
from vislab.io import require_dir, require_file, safe_unpickle

SAMPLE_RATE = 16000

VOCASET_SPLITS = {
    "train": [
        "FaceTalk_170728_03272_TA",
        "FaceTalk_170904_00128_TA",
        "FaceTalk_170725_00137_TA",
        "FaceTalk_170915_00223_TA",
        "FaceTalk_170811_03274_TA",
        "FaceTalk_170913_03279_TA",
        "FaceTalk_170904_03276_TA",
        "FaceTalk_170912_03278_TA",
    ],
    "val": ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"],
    "test": ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"],
}
VOCASET_SENTENCES = {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)}
BIWI_SUBJECTS = ["F2", "F3", "F4", "M3", "M4", "M5"]
BIWI_SPLITS = {"train": BIWI_SUBJECTS, "val": BIWI_SUBJECTS, "test": BIWI_SUBJECTS}
BIWI_SENTENCES = {"train": range(1, 33), "val": range(33, 37), "test": range(37, 41)}


# --------------------------------------------------------------------------- audio


def read_audio(path: str | Path, resample: bool = True, log=None) -> np.ndarray:
    """Read a wav/flac as mono float32 at 16 kHz.

    Stereo is averaged to mono and other sample rates are resampled (polyphase, scipy) when
    ``resample``; each is reported through ``log``. With ``resample=False`` a rate other than
    16 kHz is an error. Unreadable, empty or silent audio raises InputError naming the file.
    """
    import soundfile as sf

    p = require_file(path, "audio file")
    try:
        wave, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(p, f"cannot read audio ({e.__class__.__name__}: {str(e)[:160]})") from None
    if wave.shape[0] == 0:
        raise InputError(p, "audio has zero length")
    if wave.shape[1] > 1:
        if log:
            log(f"{p.name}: {wave.shape[1]} channels, averaged to mono")
        wave = wave.mean(axis=1, keepdims=True)
    wave = wave[:, 0]
    if sr != SAMPLE_RATE:
        if not resample:
            raise InputError(
                p,
                f"sample rate is {sr} Hz, expected {SAMPLE_RATE} Hz (resample the file or set data.resample_audio true)",
            )
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), SAMPLE_RATE)
        wave = resample_poly(wave, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)
        if log:
            log(f"{p.name}: resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    if len(wave) < 400:
        raise InputError(p, f"audio too short ({len(wave)} samples at 16 kHz; need at least 400 = 25 ms)")
    if float(np.abs(wave).max()) < 1e-6:
        raise InputError(p, "audio is silent (all samples are zero)")
    return wave.astype(np.float32)


# --------------------------------------------------------------------------- meshes


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (V,3) float32 and triangle faces (F,3) or None, from .npy/.ply/.obj."""
    p = require_file(path, "template mesh")
    suf = p.suffix.lower()
    try:
        if suf == ".npy":
            v = np.load(p, allow_pickle=False)
            faces = None
        elif suf == ".ply":
            v, polys = read_ply(p)
            faces = _triangulate(polys) if polys else None
        elif suf == ".obj":
            vs, fs = [], []
            for line in p.read_text(errors="replace").splitlines():
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "v":
                    vs.append([float(x) for x in parts[1:4]])
                elif parts[0] == "f":
                    fs.append(np.array([int(x.split("/")[0]) - 1 for x in parts[1:]]))
            v = np.asarray(vs)
            faces = _triangulate(fs) if fs else None
        else:
            raise InputError(p, f"unsupported template format {suf!r} (use .npy, .ply or .obj)")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(p, f"cannot read mesh ({e.__class__.__name__}: {str(e)[:160]})") from None
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 1 and v.size % 3 == 0:
        v = v.reshape(-1, 3)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise InputError(p, f"template must hold (V,3) vertices, got shape {tuple(v.shape)}")
    if not np.isfinite(v).all():
        raise InputError(p, "template has non-finite vertex coordinates")
    return v, faces


_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def read_ply(path: str | Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Minimal PLY reader (ascii / binary little or big endian): vertex x,y,z (V,3) and face index lists."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError("not a PLY file (no 'ply' magic or no end_header)")
    body = data[data.index(b"\n", end) + 1 :]
    fmt, elements = "ascii", []  # elements: [name, count, [(prop, type) or (prop, (count_type, item_type))]]
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append([tok[1], int(tok[2]), []])
        elif tok[0] == "property":
            if tok[1] == "list":
                elements[-1][2].append((tok[4], (_PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]])))
            else:
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
    verts, faces = None, []
    if fmt == "ascii":
        nums = body.decode("ascii", "replace").split()
        pos = 0
        for name, count, props in elements:
            rows = []
            for _ in range(count):
                row = {}
                for pname, ptype in props:
                    if isinstance(ptype, tuple):
                        n = int(nums[pos])
                        row[pname] = np.array(nums[pos + 1 : pos + 1 + n], dtype=np.int64)
                        pos += 1 + n
                    else:
                        row[pname] = float(nums[pos])
                        pos += 1
                rows.append(row)
            if name == "vertex":
                verts = np.array([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float32)
            elif name == "face" and props:
                faces = [r[props[0][0]] for r in rows]
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        pos = 0
        for name, count, props in elements:
            if all(not isinstance(t, tuple) for _, t in props):
                dt = np.dtype([(n, order + t) for n, t in props])
                arr = np.frombuffer(body, dtype=dt, count=count, offset=pos)
                pos += dt.itemsize * count
                if name == "vertex":
                    verts = np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float32)
                continue
            rows = []
            for _ in range(count):
                for pname, ptype in props:
                    if isinstance(ptype, tuple):
                        ct, it = np.dtype(order + ptype[0]), np.dtype(order + ptype[1])
                        n = int(np.frombuffer(body, ct, 1, pos)[0])
                        pos += ct.itemsize
                        val = np.frombuffer(body, it, n, pos).astype(np.int64)
                        pos += it.itemsize * n
                        if pname == props[0][0] or name == "face":
                            rows.append(val)
                    else:
                        pos += np.dtype(ptype).itemsize
            if name == "face":
                faces = rows
    if verts is None:
        raise ValueError("PLY file has no vertex element with x, y, z")
    return verts, faces


def _triangulate(polys: list[np.ndarray]) -> np.ndarray | None:
    tris = [[f[0], f[k], f[k + 1]] for f in polys for k in range(1, len(f) - 1)]
    return np.asarray(tris, dtype=np.int64) if tris else None


def read_index_file(path: str | Path) -> np.ndarray:
    """Vertex indices from a BIWI region file (', '-separated integers)."""
    p = require_file(path, "region file")
    try:
        idx = np.array(
            [int(x) for x in p.read_text().replace("\n", ",").replace(" ", "").split(",") if x],
            dtype=np.int64,
        )
    except ValueError as e:
        raise InputError(p, f"region file must hold comma-separated integers ({e})") from None
    if idx.size == 0:
        raise InputError(p, "region file is empty")
    return idx


# --------------------------------------------------------------------------- synthetic world


@dataclass
class Geometry:
    """Mesh topology and evaluation regions of a dataset."""

    template: np.ndarray  # (V,3) neutral face (synthetic; real datasets keep one per subject)
    faces: np.ndarray | None  # (F,3)
    lip_idx: np.ndarray
    upper_idx: np.ndarray
    fps: float
    styles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        return cls(
            template=np.asarray(d["template"], dtype=np.float32),
            faces=None if d.get("faces") is None else np.asarray(d["faces"], dtype=np.int64),
            lip_idx=np.asarray(d["lip_idx"], dtype=np.int64),
            upper_idx=np.asarray(d["upper_idx"], dtype=np.int64),
            fps=float(d["fps"]),
            styles=list(d.get("styles", [])),
        )


def synthetic_face(
    cols: int = 20, rows: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A curved grid face: vertices (rows*cols,3), faces, lip indices, upper-face indices, mouth direction (V,3).

    The lips are a lower-central box (|x|<=0.42, -0.75<=y<=-0.15); the upper lip moves up, the lower lip
    down, tapering to the corners and away from the mouth line y=-0.45; the upper face is y>0.3.
    """
    x = np.linspace(-1, 1, cols)
    y = np.linspace(-1, 1, rows)
    X, Y = np.meshgrid(x, y)
    Z = 0.35 * (1 - X**2) + 0.1 * (1 - Y**2)
    verts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1).astype(np.float32)
    faces = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a = r * cols + c
            faces += [[a, a + 1, a + cols], [a + 1, a + cols + 1, a + cols]]
    vx, vy = verts[:, 0], verts[:, 1]
    lips = np.where((np.abs(vx) <= 0.42) & (vy >= -0.75) & (vy <= -0.15))[0]
    upper = np.where(vy > 0.3)[0]
    mouth_y = -0.45
    taper = np.clip(1 - (vx / 0.6) ** 2, 0, 1) * np.exp(-((vy - mouth_y) ** 2) / (2 * 0.25**2))
    direction = np.zeros_like(verts)
    direction[:, 1] = np.sign(vy - mouth_y) * taper
    direction[:, 2] = -0.2 * taper
    return verts, np.asarray(faces, dtype=np.int64), lips, upper, direction.astype(np.float32)


VOWELS = {  # F1, F2, F3 (Hz) and mouth openness (jaw/lip opening relative to /a/)
    "a": (730, 1090, 2440, 1.0),
    "e": (530, 1840, 2480, 0.65),
    "i": (270, 2290, 3010, 0.35),
    "o": (570, 840, 2410, 0.75),
    "u": (300, 870, 2240, 0.45),
}


def synthetic_speech(
    rng: np.random.Generator, seconds: float = 2.0, vowels: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Syllable-like audio and its mouth-openness track (both (N,) at 16 kHz).

    Hann-windowed harmonic bursts of 80-250 ms (f0 100-220 Hz), 50-200 ms gaps, amplitude 0.5-1, plus 1 %
    noise. With ``vowels`` every burst is a vowel: partials up to 4 kHz shaped by the vowel's three formant
    resonances, and the openness track carries the vowel's openness (/a/ 1 ... /i/ 0.35); without, 5
    partials with 1/k amplitudes and openness 1.
    """
    n = int(seconds * SAMPLE_RATE)
    wave = np.zeros(n, dtype=np.float64)
    openness = np.zeros(n, dtype=np.float64)
    names = list(VOWELS)
    pos = int(rng.uniform(0.05, 0.2) * SAMPLE_RATE)
    while pos < n:
        length = int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        f0 = rng.uniform(100, 220)
        if vowels:
            f1, f2, f3, op = VOWELS[names[rng.integers(len(names))]]
            fk = np.arange(1, int(4000 // f0) + 1) * f0
            amp = sum(
                g / (1 + ((fk - f) / bw) ** 2) for f, bw, g in ((f1, 90, 1.0), (f2, 110, 0.6), (f3, 150, 0.3))
            )
            tone = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in zip(fk, amp))
        else:
            op = 1.0
            tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
        tone = tone / np.abs(tone).max() * rng.uniform(0.5, 1.0) * np.hanning(length)
        end = min(n, pos + length)
        wave[pos:end] += tone[: end - pos]
        openness[pos:end] = op
        pos = end + int(rng.uniform(0.05, 0.2) * SAMPLE_RATE)
    wave += 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32), openness.astype(np.float32)


def frame_envelope(wave: np.ndarray, n_frames: int, fps: float, window: int = 533) -> np.ndarray:
    """Frame RMS of ``wave`` in ``window``-sample windows centred on each mesh frame."""
    env = np.zeros(n_frames, dtype=np.float32)
    for t in range(n_frames):
        c = int(round(t * SAMPLE_RATE / fps))
        seg = wave[max(0, c - window // 2) : c + window // 2 + 1]
        env[t] = np.sqrt(np.mean(seg.astype(np.float64) ** 2)) if len(seg) else 0.0
    return env


class SyntheticTalkingFaces(Dataset):
    """Procedural audio -> mesh dataset.

    offset_{t,v} = A * k_style * env_t * dir_v, env_t = 3 * frame RMS of the speech (5 * RMS of vowel openness * speech with ``vowels``; 533-sample windows, ~O(1)),
    k_style = 0.6 + 0.2 * id; plus a 0.5 Hz, 0.02 "blink" on the upper face (keeps FDD defined).
    """

    def __init__(
        self,
        n_clips: int,
        seed: int,
        seconds: float = 2.0,
        fps: float = 30.0,
        n_styles: int = 3,
        amplitude: float = 1.0,
        vowels: bool = True,
    ):
        verts, faces, lips, upper, direction = synthetic_face()
        self.geometry = Geometry(verts, faces, lips, upper, fps, [f"style{i}" for i in range(n_styles)])
        rng = np.random.default_rng(seed)
        T = int(round(seconds * fps))
        t = np.arange(T) / fps
        blink = np.zeros_like(verts)
        blink[upper, 1] = 0.02
        self.items = []
        for i in range(n_clips):
            wave, openness = synthetic_speech(rng, seconds, vowels)
            if vowels:
                env = np.clip(5.0 * frame_envelope(wave * openness, T, fps), 0, 2.0)
            else:
                env = np.clip(3.0 * frame_envelope(wave, T, fps), 0, 2.0)
            sid = i % n_styles
            k = 0.6 + 0.2 * sid
            offs = (
                amplitude * k * env[:, None, None] * direction[None]
                + np.sin(2 * np.pi * 0.5 * t)[:, None, None] * blink[None]
            )
            style = np.zeros(n_styles, dtype=np.float32)
            style[sid] = 1
            self.items.append(
                {
                    "audio": wave,
                    "vertices": (verts[None] + offs).reshape(T, -1).astype(np.float32),
                    "template": verts.reshape(-1).copy(),
                    "style": style,
                    "name": f"clip{seed}_{i:03d}",
                    "subject": f"style{sid}",
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


# --------------------------------------------------------------------------- VOCASET / BIWI


class TalkingFaceFolder(Dataset):
    """VOCASET or BIWI in the official layout (see README): ``wav/<subj>_sentenceNN.wav``,
    ``vertices_npy/<same>.npy``, ``templates.pkl``. Subject = stem up to the last '_', sentence =
    the last two digits. Missing npy are skipped. VOCASET vertices (60 fps) keep every 2nd frame.
    """

    def __init__(
        self,
        root: str | Path,
        kind: str,
        split: str,
        resample_audio: bool = True,
        subjects: list[str] | None = None,
        log=None,
    ):
        if kind not in ("vocaset", "biwi"):
            raise VislabError(f"data.source must be synthetic, vocaset or biwi, got {kind!r}")
        self.root = require_dir(root, f"{kind} dataset root")
        self.kind, self.split, self.resample_audio, self.log = kind, split, resample_audio, log
        splits = VOCASET_SPLITS if kind == "vocaset" else BIWI_SPLITS
        sentences = (VOCASET_SENTENCES if kind == "vocaset" else BIWI_SENTENCES)[split]
        self.train_subjects = list(splits["train"])
        wanted = subjects or splits[split]
        tpl_path = require_file(self.root / "templates.pkl", "templates pickle")
        try:
            with open(tpl_path, "rb") as f:
                self.templates = safe_unpickle(f, encoding="latin1")
        except Exception as e:  # noqa: BLE001
            raise InputError(tpl_path, f"cannot read templates pickle ({e.__class__.__name__})") from None
        wav_dir = require_dir(self.root / "wav", "wav folder")
        self.files = []
        for w in sorted(wav_dir.glob("*.wav")):
            subj = w.stem.rsplit("_", 1)[0]
            try:
                sent = int(w.stem[-2:])
            except ValueError:
                continue
            npy = self.root / "vertices_npy" / f"{w.stem}.npy"
            if subj in wanted and sent in sentences and npy.is_file():
                if subj not in self.templates:
                    raise InputError(tpl_path, f"no template for subject {subj}")
                self.files.append((w, npy, subj))
        if not self.files:
            raise InputError(
                self.root,
                f"no {kind} {split} samples (subjects {', '.join(wanted)}, sentences {sentences.start}-{sentences.stop - 1}, "
                "need wav/<subj>_sentenceNN.wav with vertices_npy/<same>.npy)",
            )
        self.n_feats = int(np.asarray(self.templates[self.files[0][2]]).size)

    def style_for(self, subj: str) -> np.ndarray | None:
        s = np.zeros(len(self.train_subjects), dtype=np.float32)
        if subj in self.train_subjects:
            s[self.train_subjects.index(subj)] = 1
            return s
        return None  # unseen subject: evaluated with every training style

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        wav, npy, subj = self.files[i]
        audio = read_audio(wav, resample=self.resample_audio, log=self.log)
        try:
            verts = np.load(npy, allow_pickle=False).astype(np.float32)
        except Exception as e:  # noqa: BLE001
            raise InputError(npy, f"cannot read vertex array ({e.__class__.__name__})") from None
        tpl = np.asarray(self.templates[subj], dtype=np.float32).reshape(-1)
        if verts.ndim != 2 or verts.shape[1] != tpl.size:
            raise InputError(npy, f"vertex array must be (frames, {tpl.size}), got {verts.shape}")
        if self.kind == "vocaset":
            verts = verts[::2]
        style = self.style_for(subj)
        seen = style is not None
        if style is None:
            style = np.zeros(len(self.train_subjects), dtype=np.float32)
            style[0] = 1
        return {
            "audio": audio,
            "vertices": verts,
            "template": tpl,
            "style": style,
            "name": wav.stem,
            "subject": subj,
            "seen": seen,
        }

    def geometry(self) -> Geometry:
        """Region sets (lips, upper face), faces for rendering, fps and the training styles."""
        if self.kind == "vocaset":
            mp = require_file(self.root / "FLAME_masks.pkl", "FLAME masks")
            try:
                with open(mp, "rb") as f:
                    masks = safe_unpickle(f, encoding="latin1")
                lips = np.asarray(masks["lips"], dtype=np.int64)
                upper = np.unique(
                    np.concatenate([np.asarray(masks["forehead"]), np.asarray(masks["eye_region"])])
                ).astype(np.int64)
            except Exception as e:  # noqa: BLE001
                raise InputError(
                    mp, f"cannot read lips/forehead/eye_region masks ({e.__class__.__name__})"
                ) from None
            ply, fps = self.root / "templates" / "FLAME_sample.ply", 30.0
        else:
            lips = read_index_file(self.root / "regions" / "lve.txt")
            upper = read_index_file(self.root / "regions" / "fdd.txt")
            ply, fps = self.root / "templates" / "BIWI.ply", 25.0
        faces = read_mesh(ply)[1] if ply.is_file() else None
        tpl = np.asarray(self.templates[self.files[0][2]], dtype=np.float32).reshape(-1, 3)
        for name, idx in (("lip", lips), ("upper-face", upper)):
            if idx.max() >= len(tpl):
                raise InputError(
                    self.root, f"{name} region index {idx.max()} out of range for {len(tpl)} vertices"
                )
        return Geometry(tpl, faces, lips, upper, fps, list(self.train_subjects))


class Repeat(Dataset):
    """The training set repeated ``n`` times per epoch (official BIWI: 20)."""

    def __init__(self, ds: Dataset, n: int):
        self.ds, self.n = ds, max(1, int(n))

    def __len__(self) -> int:
        return len(self.ds) * self.n  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        return self.ds[i % len(self.ds)]  # type: ignore[arg-type]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad audio and vertices; returns audio (B,N), audio_len (B,), vertices (B,T,3V), n_frames (B,),
    frame_mask (B,T) bool, template (B,3V), style (B,n_ids), names, seen (subject has its own style)."""
    B = len(items)
    N = max(len(it["audio"]) for it in items)
    T = max(len(it["vertices"]) for it in items)
    F = items[0]["vertices"].shape[1]
    audio = torch.zeros(B, N)
    verts = torch.zeros(B, T, F)
    for i, it in enumerate(items):
        audio[i, : len(it["audio"])] = torch.as_tensor(it["audio"])
        verts[i, : len(it["vertices"])] = torch.as_tensor(it["vertices"])
        verts[i, len(it["vertices"]) :] = torch.as_tensor(it["template"])  # padding = template (zero offset)
    n_frames = torch.tensor([len(it["vertices"]) for it in items])
    return {
        "audio": audio,
        "audio_len": torch.tensor([len(it["audio"]) for it in items]),
        "vertices": verts,
        "n_frames": n_frames,
        "frame_mask": torch.arange(T)[None] < n_frames[:, None],
        "template": torch.stack([torch.as_tensor(it["template"]) for it in items]),
        "style": torch.stack([torch.as_tensor(it["style"]) for it in items]),
        "name": [it["name"] for it in items],
        "seen": [bool(it.get("seen", True)) for it in items],
    }


class TalkingFaceDataModule(pl.LightningDataModule):
    """Train/val/test loaders for ``source`` synthetic | vocaset | biwi (``root`` for the real ones)."""

    def __init__(
        self,
        source: str = "synthetic",
        root: str | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        train_clips: int = 48,
        test_clips: int = 8,
        seconds: float = 2.0,
        fps: float = 30.0,
        n_styles: int = 3,
        amplitude: float = 1.0,
        vowels: bool = True,
        train_repeat: int = 1,
        resample_audio: bool = True,
        seed: int = 0,
        **_: Any,
    ):
        super().__init__()
        self.source, self.root, self.batch_size, self.num_workers = source, root, batch_size, num_workers
        self.train_repeat = train_repeat
        if source == "synthetic":
            self.train_set = SyntheticTalkingFaces(
                train_clips, seed, seconds, fps, n_styles, amplitude, vowels
            )
            self.val_set = SyntheticTalkingFaces(
                test_clips, seed + 1000, seconds, fps, n_styles, amplitude, vowels
            )
            self.test_set = self.val_set
            self.geometry = self.train_set.geometry
            self.n_feats = self.geometry.template.size
        elif source in ("vocaset", "biwi"):
            if not root:
                raise VislabError(f"data.source={source} needs data.root (the dataset folder)")
            self.train_set = TalkingFaceFolder(root, source, "train", resample_audio)
            self.val_set = TalkingFaceFolder(root, source, "val", resample_audio)
            self.test_set = TalkingFaceFolder(root, source, "test", resample_audio)
            self.geometry = self.train_set.geometry()
            self.n_feats = self.train_set.n_feats
        else:
            raise VislabError(f"data.source must be synthetic, vocaset or biwi, got {source!r}")
        if len(self.train_set) == 0:
            raise VislabError("the training set is empty")

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(Repeat(self.train_set, self.train_repeat), True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
