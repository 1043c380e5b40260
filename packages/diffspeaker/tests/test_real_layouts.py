"""VOCASET and BIWI replica trees, written the way the published data preparation writes them, and the
README's commands (train with the paper presets, resume, convert, evaluate, animate) run on them.

Sources of the formats:

* VOCASET: FaceFormer's ``vocaset/process_voca_data.py`` (also in CodeTalker), the preparation the
  official DiffSpeaker README points to: ``wav/<subject>_<sequence>.wav`` written by
  ``scipy.io.wavfile.write`` from VOCA's ``raw_audio_fixed.pkl`` (int16; VOCA's audio is 22 kHz),
  ``vertices_npy/<subject>_<sequence>.npy`` = the frames of ``data_verts.npy`` reshaped to (frames, 15069)
  at 60 fps. ``templates.pkl`` is VOCA's download, a Python 2 pickle (the official code reads it with
  ``encoding='latin1'``); ``FLAME_masks.pkl`` is shipped in the official repo (``datasets/vocaset``), a
  Python 2 protocol-0 pickle of int64 index arrays. :func:`py2_pickle` writes that format; given the
  contents of the official ``FLAME_masks.pkl`` it reproduces the file byte for byte.
  ``templates/FLAME_sample.ply``: binary little-endian, float x/y/z, ``list uchar int`` faces.
* BIWI: CodeTalker's ``BIWI/data_preprocess`` (the official README follows CodeTalker):
  ``load_mat_to_template_pkl.py`` pickles (Python 3, default protocol) a dict of the 14 subjects'
  (23370, 3) float64 templates as ``scipy.io.loadmat`` returns them (Fortran order);
  ``load_mat_to_multiple_vert_np.py`` saves ``vertices_npy/<subject>_eNN.npy`` (frames, 70110) float64 at
  25 fps; ``video2audio.py`` extracts ``wav/<subject>_eNN.wav`` with ``ffmpeg -ar 44100`` (16-bit PCM).
  ``regions/lve.txt`` / ``fdd.txt`` are one line of ", "-separated indices; ``templates/BIWI.ply`` is
  binary little-endian with double x/y/z and ``list uint8 uint16`` faces (meshio).

Meshes are tiny (tens of vertices) and clips short; everything else is the published structure.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from diffspeaker.cli import main
from diffspeaker.data import BIWI_SUBJECTS, VOCASET_SPLITS, TalkingFaceFolder

VOCA_FPS, BIWI_FPS = 60, 25
FLAME_REGIONS = [  # the keys of the official FLAME_masks.pkl
    "eye_region",
    "neck",
    "left_eyeball",
    "right_eyeball",
    "right_ear",
    "right_eye_region",
    "forehead",
    "lips",
    "nose",
    "scalp",
    "boundary",
    "face",
    "left_ear",
    "left_eye_region",
]
BIWI_ALL = ["F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "M1", "M2", "M3", "M4", "M5", "M6"]


# --------------------------------------------------------------------------- writers


def _py2_repr(b: bytes) -> bytes:
    """Python 2 ``repr`` of a byte string (the argument of a protocol-0 ``S`` opcode)."""
    quote = b'"' if (b"'" in b and b'"' not in b) else b"'"
    out = bytearray(quote)
    for c in b:
        ch = bytes([c])
        if ch in (quote, b"\\"):
            out += b"\\" + ch
        elif ch in (b"\t", b"\n", b"\r"):
            out += {b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}[ch]
        elif c < 32 or c >= 127:
            out += b"\\x%02x" % c
        else:
            out += ch
    return bytes(out + quote)


def py2_pickle(d: dict[str, np.ndarray]) -> bytes:
    """A dict of numpy arrays as Python 2's ``pickle.dump`` (protocol 0) writes it.

    Arrays go through ``numpy.core.multiarray._reconstruct`` with their raw bytes as a py2 ``str``;
    globals, the ``'b'`` string and dtype objects are memoised and referenced again with ``g``.
    """
    memo: dict[object, int] = {}
    out = bytearray()
    n = [0]

    def put(key: object = None) -> None:
        out.extend(b"p%d\n" % n[0])
        if key is not None:
            memo[key] = n[0]
        n[0] += 1

    def glob(mod: bytes, name: bytes) -> None:
        if (mod, name) in memo:
            out.extend(b"g%d\n" % memo[(mod, name)])
        else:
            out.extend(b"c%s\n%s\n" % (mod, name))
            put((mod, name))

    def string(s: bytes, key: object = None) -> None:
        if key is not None and key in memo:
            out.extend(b"g%d\n" % memo[key])
        else:
            out.extend(b"S" + _py2_repr(s) + b"\n")
            put(key)

    out.extend(b"(d")
    put()
    for k, a in d.items():
        string(k.encode())
        glob(b"numpy.core.multiarray", b"_reconstruct")
        out.extend(b"(")
        glob(b"numpy", b"ndarray")
        out.extend(b"(I0\nt")
        put()
        string(b"b", "str b")
        out.extend(b"t")
        put()
        out.extend(b"R")
        put()
        out.extend(b"(I1\n(" + b"".join(b"I%d\n" % s for s in a.shape) + b"t")
        put()
        if ("dtype", id(a.dtype)) in memo:
            out.extend(b"g%d\n" % memo[("dtype", id(a.dtype))])
        else:
            glob(b"numpy", b"dtype")
            out.extend(b"(")
            string(a.dtype.str[1:].encode())
            out.extend(b"I0\nI1\nt")
            put()
            out.extend(b"R")
            put(("dtype", id(a.dtype)))
            out.extend(b"(I3\n")
            string(a.dtype.str[:1].encode())
            out.extend(b"NNNI-1\nI-1\nI0\nt")
            put()
            out.extend(b"b")
        fortran = bool(a.flags.f_contiguous and not a.flags.c_contiguous)
        out.extend(b"I0%d\n" % fortran)
        string(a.tobytes(order="F" if fortran else "C"))
        out.extend(b"t")
        put()
        out.extend(b"bs")
    return bytes(out + b".")


def write_binary_ply(
    path: Path,
    verts: np.ndarray,
    faces: np.ndarray,
    coord: str,
    count: str,
    index: str,
    comment: str | None = None,
) -> None:
    """Binary little-endian PLY with the given property types (e.g. float / uchar / int)."""
    np_t = {"float": "<f4", "double": "<f8", "uchar": "u1", "uint8": "u1", "int": "<i4", "uint16": "<u2"}
    head = ["ply", "format binary_little_endian 1.0"] + ([f"comment {comment}"] if comment else [])
    head += [f"element vertex {len(verts)}"] + [f"property {coord} {c}" for c in "xyz"]
    head += [f"element face {len(faces)}", f"property list {count} {index} vertex_indices", "end_header"]
    body = verts.astype(np_t[coord]).tobytes()
    for f in faces:
        body += np.array([len(f)], np_t[count]).tobytes() + np.asarray(f).astype(np_t[index]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(head) + "\n").encode() + body)


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(np.linspace(-0.08, 0.08, cols), np.linspace(-0.1, 0.1, rows))
    verts = np.stack([x.ravel(), y.ravel(), 0.02 * np.cos(8 * x.ravel())], 1)
    faces = [
        tri
        for r in range(rows - 1)
        for c in range(cols - 1)
        for tri in (
            [r * cols + c, r * cols + c + 1, (r + 1) * cols + c],
            [r * cols + c + 1, (r + 1) * cols + c + 1, (r + 1) * cols + c],
        )
    ]
    return verts, np.asarray(faces)


def _speech(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.clip(np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)), 0, None)
    return 0.3 * env * np.sin(2 * np.pi * rng.uniform(110, 200) * t) + 0.01 * rng.standard_normal(len(t))


def _motion(rng, tpl: np.ndarray, frames: int, lips: np.ndarray) -> np.ndarray:
    """(frames, 3V) vertices: template + a lip opening and a little noise (metre scale, like the data)."""
    off = np.zeros((frames,) + tpl.shape)
    off[:, lips, 1] = 0.004 * np.sin(np.linspace(0, 6, frames))[:, None]
    off += 1e-4 * rng.standard_normal(off.shape)
    return (tpl[None] + off).reshape(frames, -1)


def make_vocaset(root: Path, seconds: float = 0.6, sentences=(1, 21)) -> dict[str, list[int]]:
    """A VOCASET tree (see the module docstring): all 12 subjects, ``sentences`` each, 12x5 grid faces."""
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    verts, faces = _grid(12, 5)
    V = len(verts)
    regions = {k: np.sort(rng.choice(V, 6, replace=False)).astype(np.int64) for k in FLAME_REGIONS}
    regions["lips"] = np.arange(10, 25, dtype=np.int64)
    regions["forehead"] = np.arange(V - 10, V, dtype=np.int64)
    regions["eye_region"] = np.arange(V - 20, V - 5, dtype=np.int64)
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    (root / "FLAME_masks.pkl").write_bytes(py2_pickle(regions))
    subjects = VOCASET_SPLITS["train"] + VOCASET_SPLITS["val"] + VOCASET_SPLITS["test"]
    templates = {s: verts + rng.normal(0, 0.002, verts.shape) for s in subjects}
    (root / "templates.pkl").write_bytes(py2_pickle(templates))
    write_binary_ply(root / "templates" / "FLAME_sample.ply", verts, faces, "float", "uchar", "int")
    for s in subjects:
        for k in sentences:
            name = f"{s}_sentence{k:02d}"
            audio = (_speech(rng, seconds, 22000) * 32767).astype(np.int16)
            wavfile.write(root / "wav" / f"{name}.wav", 22000, audio)
            motion = _motion(rng, templates[s], int(seconds * VOCA_FPS), regions["lips"])
            np.save(root / "vertices_npy" / f"{name}.npy", motion.astype(np.float32))
    return {
        "lips": regions["lips"].tolist(),
        "upper": np.union1d(regions["forehead"], regions["eye_region"]).tolist(),
    }


def make_biwi(root: Path, seconds: float = 0.6, sentences=(1, 33, 37)) -> None:
    """A BIWI tree (see the module docstring): templates of all 14 subjects, wav/npy for the six
    training subjects (``sentences``) and one Test-B file (F1) that the splits leave out."""
    from scipy.io import wavfile  # the preparation runs ffmpeg; both write 16-bit PCM WAV

    rng = np.random.default_rng(1)
    verts, faces = _grid(10, 5)
    V = len(verts)
    templates = {s: np.asfortranarray(verts + rng.normal(0, 0.002, verts.shape)) for s in BIWI_ALL}
    root.mkdir(parents=True)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f)
    (root / "regions").mkdir()
    (root / "regions" / "lve.txt").write_text(", ".join(str(i) for i in range(5, 20)))
    (root / "regions" / "fdd.txt").write_text(", ".join(str(i) for i in range(V - 15, V)))
    write_binary_ply(
        root / "templates" / "BIWI.ply", verts, faces, "double", "uint8", "uint16", "Created by meshio v5.3.4"
    )
    (root / "wav").mkdir()
    (root / "vertices_npy").mkdir()
    for s, k in [(s, k) for s in BIWI_SUBJECTS for k in sentences] + [("F1", 37)]:
        name = f"{s}_e{k:02d}"
        wavfile.write(
            root / "wav" / f"{name}.wav", 44100, (_speech(rng, seconds, 44100) * 32767).astype(np.int16)
        )
        motion = _motion(rng, templates[s], int(seconds * BIWI_FPS), np.arange(5, 20))
        np.save(root / "vertices_npy" / f"{name}.npy", motion)  # float64, as loadmat gives


# --------------------------------------------------------------------------- reading


def test_vocaset_replica_is_read(tmp_path):
    regions = make_vocaset(tmp_path / "vocaset")
    raw = (tmp_path / "vocaset" / "templates.pkl").read_bytes()
    assert raw.startswith(b"(dp0\nS'FaceTalk_") and b"cnumpy.core.multiarray\n_reconstruct" in raw
    train = TalkingFaceFolder(tmp_path / "vocaset", "vocaset", "train")
    val = TalkingFaceFolder(tmp_path / "vocaset", "vocaset", "val")
    test = TalkingFaceFolder(tmp_path / "vocaset", "vocaset", "test")
    assert (len(train), len(val), len(test)) == (16, 2, 2)  # sentences 1 and 21; val/test only 21-40
    it = train[0]
    assert it["vertices"].shape == (18, 180)  # 36 frames at 60 fps -> every 2nd frame
    assert it["audio"].shape == (9600,)  # 22 kHz int16 -> 16 kHz float
    assert it["template"].dtype == np.float32 and it["seen"]
    assert not test[0]["seen"] and test[0]["subject"] in VOCASET_SPLITS["test"]
    g = train.geometry()
    assert g.lip_idx.tolist() == regions["lips"] and g.upper_idx.tolist() == regions["upper"]
    assert g.faces.shape == (2 * 11 * 4, 3) and g.fps == 30.0 and g.styles == VOCASET_SPLITS["train"]


def test_biwi_replica_is_read(tmp_path):
    make_biwi(tmp_path / "biwi")
    splits = {s: TalkingFaceFolder(tmp_path / "biwi", "biwi", s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 6, "val": 6, "test": 6}  # F1 (Test-B) left out
    it = splits["test"][0]
    assert it["name"].endswith("_e37") and it["vertices"].shape == (15, 150)  # 25 fps kept
    assert it["audio"].shape == (9600,)  # 44.1 kHz -> 16 kHz
    with open(tmp_path / "biwi" / "templates.pkl", "rb") as f:
        templates = pickle.load(f)
    first = splits["train"][0]
    assert templates[first["subject"]].flags.f_contiguous
    assert np.array_equal(first["template"], templates[first["subject"]].reshape(-1).astype(np.float32))
    g = splits["train"].geometry()
    assert g.lip_idx.tolist() == list(range(5, 20)) and g.fps == 25.0 and g.faces.shape == (2 * 9 * 4, 3)


# --------------------------------------------------------------------------- README commands


def _official_checkpoint(module, path: Path) -> None:
    """Write ``module``'s weights under the official DiffSpeaker key names (``state_dict`` of a .ckpt)."""
    inverse = {
        ".cross_attn.": ".multihead_attn.",
        ".ff.0.": ".linear1.",
        ".ff.3.": ".linear2.",
        "denoiser.layers.": "denoiser.transformer_decoder.layers.",
        "time.mlp.": "time_embedding.",
        "style.embedding.": "obj_vector.",
        "parametrizations.weight.original0": "weight_g",
        "parametrizations.weight.original1": "weight_v",
        "model.audio_encoder.backbone.": "audio_encoder.",
        "model.denoiser.": "denoiser.",
    }
    sd = {}
    for k, v in module.state_dict().items():
        for a, b in inverse.items():
            k = k.replace(a, b)
        sd[k] = v
    sd["denoiser.PPE.pe"] = torch.zeros(1, 5000, module.model.denoiser.dim)
    torch.save({"state_dict": sd}, path)


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory) -> Path:
    """A tiny random wav2vec2 saved with ``save_pretrained`` (stands in for wav2vec2-base-960h)."""
    from diffspeaker.model import build_backbone, tiny_audio_config

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("wav2vec2")
    build_backbone(tiny_audio_config()).save_pretrained(d)
    return d


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_readme_commands_on_replica(tmp_path, encoder_folder, dataset, capsys):
    torch.set_num_threads(1)
    root = tmp_path / dataset
    (make_vocaset if dataset == "vocaset" else make_biwi)(root)
    preset = "paper" if dataset == "vocaset" else "paper_biwi"
    run_dir = tmp_path / "run"

    # compute-size overrides only: one epoch, 2 DDIM steps, one CPU process, no worker processes
    def small(epochs: int) -> list[str]:
        args = [
            "--trainer.max_epochs",
            str(epochs),
            "--sampling.steps",
            "2",
            "--data.num_workers",
            "0",
            "--eval.video",
            "false",
        ]
        if dataset == "biwi":
            args += ["--trainer.devices", "1", "--trainer.strategy", "auto", "--data.train_repeat", "2"]
        return args

    base = ["--preset", preset, "--data.root", str(root), "--audio.path", str(encoder_folder)]
    assert main(base + small(1) + ["--output-dir", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric"] == "LVE" and np.isfinite(metrics["after"]) and metrics["train_steps"] >= 1
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    steps = metrics["train_steps"]
    # resume: one more epoch continues the same run
    assert main(base + small(2) + ["--output-dir", str(run_dir), "--resume"]) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["train_steps"] > steps
    # evaluate (official protocol, here 2 runs of 2 DDIM steps)
    out_json = tmp_path / f"{dataset}_test.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data-root",
                str(root),
                "--dataset",
                dataset,
                "--runs",
                "2",
                "--steps",
                "2",
                "--output",
                str(out_json),
            ]
        )
        == 0
    )
    res = json.loads(out_json.read_text())
    assert res["sequences"] == (2 if dataset == "vocaset" else 6) and np.isfinite(
        res["summary"]["LVE"]["mean"]
    )
    # the authors' checkpoint format: convert, then evaluate the converted one
    from diffspeaker.module import load_checkpoint

    _official_checkpoint(load_checkpoint(ckpt), tmp_path / "official.ckpt")
    conv = tmp_path / "converted.ckpt"
    assert (
        main(
            [
                "convert",
                "--official",
                str(tmp_path / "official.ckpt"),
                "--dataset",
                dataset,
                "--data-root",
                str(root),
                "--out",
                str(conv),
                "--audio-encoder",
                str(encoder_folder),
            ]
        )
        == 0
    )
    m = load_checkpoint(conv)
    assert m.geometry is not None and m.sampling["ddim_variant"] == "official"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(conv),
                "--data-root",
                str(root),
                "--dataset",
                dataset,
                "--runs",
                "1",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    # animate a dataset wav with the dataset's template mesh and a named training style
    wav = sorted((root / "wav").glob("*.wav"))[0]
    style = VOCASET_SPLITS["train"][2] if dataset == "vocaset" else "M3"
    tpl = root / "templates" / ("FLAME_sample.ply" if dataset == "vocaset" else "BIWI.ply")
    assert (
        main(
            [
                "animate",
                "--checkpoint",
                str(ckpt),
                "--audio",
                str(wav),
                "--template",
                str(tpl),
                "--style",
                style,
                "--output-dir",
                str(tmp_path / "anim"),
                "--steps",
                "2",
                "--video",
                "gif",
                "--size",
                "48",
            ]
        )
        == 0
    )
    v = np.load(tmp_path / "anim" / f"{wav.stem}.npy")
    assert v.shape[1:] == (60 if dataset == "vocaset" else 50, 3) and np.isfinite(v).all()
    assert (tmp_path / "anim" / f"{wav.stem}.gif").stat().st_size > 0
    assert "Traceback" not in capsys.readouterr().err
