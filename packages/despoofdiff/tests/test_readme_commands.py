"""The README's commands, end to end on replica trees of the real layouts (shortened budget: 16 px, 2 steps).

Each command runs through ``despoofdiff.cli.main`` exactly as typed in the README plus the budget overrides.
Also: bad list lines give one error naming file and line; ``--resume`` continues a run stopped after
stage 1; ``--help`` loads no torch; ``predict --videos --labels`` and ``study``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from despoofdiff.cli import main
from vislab.testing import faces as R

#: the README commands' budget, shortened for tests
BUDGET = [
    "--data.resolution", "16", "--data.frames", "2",
    "--diffusion.steps", "2", "--diffusion.batch_size", "8",
    "--bridge.steps", "2", "--bridge.batch_size", "32",
    "--classifier.steps", "2", "--classifier.batch_size", "8", "--classifier.val_every_n_epochs", "1",
    "--ablations", "[]", "--pictures", "2", "--trainer.enable_progress_bar", "false",
]
TOY = ["--data.toy.identities", "4", "--data.toy.frames", "2"]


def run_ok(argv: list[str], out: Path, capsys) -> dict:
    rc = main([*argv, "--output-dir", str(out), *BUDGET])
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["after"] <= 1.0 and (out / "checkpoints" / "despoofdiff.ckpt").is_file()
    return m


def test_embedded_default_command(tmp_path, capsys):
    """``despoofdiff`` (toy faces): cross-fitted stage 1 (2 folds x 2 models), frame and video metrics."""
    m = run_ok(TOY, tmp_path / "run", capsys)
    assert m["crossfit_folds"] == 2
    for f in (0, 1):
        for d in ("genuine", "spoof"):
            assert (tmp_path / "run" / "checkpoints" / "crossfit" / f"f{f}" / f"dm_{d}" / "last.ckpt").is_file()
    lv = m["levels"]["test"]
    assert {"frame_acer_after", "video_acer_after", "frame_hter_after", "video_hter_after"} <= set(lv)
    assert lv["video_acer_after"] is not None and m["test_video_acer_after"] == lv["video_acer_after"]
    assert m["levels"]["cross"]["video_hter_after"] is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, make, args",
    [
        ("oulu", lambda r: R.oulu_replica(r, users=2, frames=3, size=32), ["--data.source", "oulu", "--data.protocol", "1"]),
        ("mcio_c_at_i", lambda r: R.lab_replica(r, "OCIM", videos=2), ["--data.source", "mcio", "--data.protocol", "C@I"]),
        ("mcio_loo", lambda r: R.lab_replica(r, "OCIM", videos=2), ["--data.source", "mcio", "--data.protocol", "O-C-I@M"]),
        ("casia_intra", lambda r: R.lab_replica(r, "C", videos=2), ["--data.source", "casia", "--data.protocol", "intra"]),
        ("siw_p2", lambda r: R.siw_replica(r, train_subjects=(6, 7, 8, 11, 12), test_subjects=(9,)), ["--data.source", "siw", "--data.protocol", "2", "--data.fold", "3", "--data.crop", "boxes"]),
        ("siw_p3", lambda r: R.siw_replica(r, train_subjects=(6, 7, 8, 11, 12), test_subjects=(9,)), ["--data.source", "siw", "--data.protocol", "3", "--data.fold", "1"]),
    ],
)
def test_readme_real_layout_commands(tmp_path, capsys, name, make, args):
    root = make(tmp_path / "data")
    m = run_ok([*args, "--data.root", str(root), "--preset", "default"], tmp_path / "run", capsys)
    assert m["source"] == args[1]


def test_siw_protocol_1(tmp_path, capsys):
    """SiW through its own folders (``--data.source siw --data.protocol 1``): subject-disjoint train/dev, Test/ as test."""
    root = R.siw_replica(tmp_path / "SiW", train_subjects=(6, 7, 8, 11, 12), test_subjects=(9,))
    m = run_ok(["--data.source", "siw", "--data.root", str(root), "--data.protocol", "1"], tmp_path / "run", capsys)
    # 7 videos per subject (1 live, 2 print, 4 replay) x 2 frames; test = subject 9 only
    assert m["source"] == "siw" and m["levels"]["test"]["video_acer_after"] is not None


@pytest.mark.slow
def test_list_and_frames_layout_commands(tmp_path, capsys):
    """``--data.source list --data.lists.*`` (any path-label lists) and the CSV frame-folder layout."""
    root = R.lab_replica(tmp_path / "lab", "C", videos=2)
    lists = {s: root / "dg_protocol" / f"CASIA_FASD_video_{s}.txt" for s in ("train", "dev", "test")}
    run_ok(["--data.source", "list", "--data.root", str(root), *[a for s, f in lists.items() for a in (f"--data.lists.{s}", str(f))],
            "--data.label_format", "binary"], tmp_path / "list_run", capsys)
    # the frame-folder layout: <root>/<dataset>/frames/<video>/<frame>.png, protocols/<name>/{train,dev,test}.csv
    base = tmp_path / "frames_root" / "TOYSET"
    rng = np.random.default_rng(0)
    for split in ("train", "dev", "test"):
        rows = []
        for v in range(4):
            live = v % 2 == 0
            vid = f"{split}_v{v}"
            R.write_frames(base / "frames" / vid, 2, 16, rng, live)
            rows += [{"path": f"{vid}/{k + 1:04d}.png", "label": int(live), "video_id": vid, "attack_type": "live" if live else "print", "domain": "T"} for k in range(2)]
        p = base / "protocols" / "P1" / f"{split}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    run_ok(["--data.source", "frames", "--data.root", str(tmp_path / "frames_root"), "--data.dataset", "TOYSET", "--data.protocol", "P1"], tmp_path / "frames_run", capsys)


# ------------------------------------------------------------------------------------------ bad list lines


def _bad(argv: list[str], tmp_path, capsys) -> str:
    n = len(list(tmp_path.glob("bad_run*")))
    rc = main([*argv, "--output-dir", str(tmp_path / f"bad_run{n}"), *BUDGET])
    err = capsys.readouterr().err
    assert rc == 2, err[-1500:]
    errors = [ln for ln in err.splitlines() if ln.startswith("despoofdiff: error:")]
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0]


def test_bad_list_lines_name_file_and_line(tmp_path, capsys):
    root = R.lab_replica(tmp_path / "lab", "C", videos=3)
    lst = root / "dg_protocol" / "CASIA_FASD_video_train.txt"
    lines = lst.read_text().splitlines()
    # a listed video that does not exist (line 2 of 6)
    lst.write_text("\n".join([lines[0], "CASIA_FASD/train_release/99/1 0", *lines[1:]]) + "\n")
    err = _bad(["--data.source", "casia", "--data.root", str(root), "--data.protocol", "intra"], tmp_path, capsys)
    assert "CASIA_FASD_video_train.txt:2" in err and "99" in err
    # a video folder without frames (line 1)
    (root / "CASIA_FASD" / "train_release" / "77" / "1" / "crop").mkdir(parents=True)
    lst.write_text("\n".join(["CASIA_FASD/train_release/77/1 0", *lines]) + "\n")
    err = _bad(["--data.source", "casia", "--data.root", str(root), "--data.protocol", "intra"], tmp_path, capsys)
    assert "CASIA_FASD_video_train.txt:1" in err and "77" in err
    # an unknown domain letter in the protocol
    err = _bad(["--data.source", "mcio", "--data.root", str(root), "--data.protocol", "O-C-X@M"], tmp_path, capsys)
    assert "'X'" in err


def test_bad_oulu_line(tmp_path, capsys):
    root = R.oulu_replica(tmp_path / "oulu", users=1, frames=2, size=16)
    p = root / "Protocols" / "Protocol_1" / "Train.txt"
    p.write_text(p.read_text() + "1_1_01_1 without a label\n")
    err = _bad(["--data.source", "oulu", "--data.root", str(root), "--data.protocol", "1"], tmp_path, capsys)
    assert "Train.txt:4" in err


# ------------------------------------------------------------------------------------------ resume, help


def test_resume_after_stage_one(tmp_path, capsys, monkeypatch):
    """Stopped after the stage-1 checkpoints (before the classifier): --resume finishes without retraining them."""
    import despoofdiff.train as T
    from despoofdiff.module import DiffusionModule

    out = tmp_path / "run"
    real = T.make_classifier

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "make_classifier", stop)
    assert main([*TOY, "--output-dir", str(out), *BUDGET]) == 130
    assert (out / "checkpoints" / "crossfit" / "f1" / "dm_spoof" / "last.ckpt").is_file()
    assert not (out / "checkpoints" / "last.ckpt").exists()
    capsys.readouterr()
    monkeypatch.setattr(T, "make_classifier", real)
    calls = []
    orig = DiffusionModule.training_step
    monkeypatch.setattr(DiffusionModule, "training_step", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    assert main([*TOY, "--output-dir", str(out), "--resume", *BUDGET]) == 0, capsys.readouterr().err[-1500:]
    assert calls == []  # the finished diffusion stages were restored, not retrained
    assert (out / "metrics.json").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    # a folder without any checkpoint still refuses --resume
    assert main(["--output-dir", str(tmp_path / "empty"), "--resume"]) == 2


def test_help_is_fast_and_loads_no_torch():
    code = (
        "import sys, time; t = time.time(); from despoofdiff.cli import main; rc = main(['--help']); "
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', round(time.time() - t, 2)); sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "despoofdiff study" in r.stdout and "despoofdiff predict" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("NOTORCH"), r.stdout[-300:]


# ------------------------------------------------------------------------------------------ predict, study


def test_predict_videos_and_labels(tmp_path, capsys, tiny_run):
    out, _ = tiny_run
    rng = np.random.default_rng(1)
    vids = {"live_v1": True, "spoof_v1": False}
    lines = []
    for v, live in vids.items():
        R.write_frames(tmp_path / "faces" / v, 3, 16, rng, live)
        lines += [f"{v}/{k + 1:04d}.png {int(live)}" for k in range(3)]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(lines) + "\n")
    pred = tmp_path / "pred"
    rc = main(["predict", "--checkpoint", str(out), *[str(tmp_path / "faces" / v) for v in vids], "--videos", "--labels", str(labels), "--output-dir", str(pred)])
    assert rc == 0, capsys.readouterr().err
    with open(pred / "videos.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["frames"] == "3" for r in rows)
    frames = json.loads((pred / "scores.json").read_text())["results"]
    live_mean = np.mean([r["score"] for r in frames if "live_v1" in r["image"]])
    assert float(next(r for r in rows if r["video"].endswith("live_v1"))["score"]) == pytest.approx(live_mean, abs=1e-9)
    m = json.loads((pred / "metrics.json").read_text())
    assert {"frame", "video"} <= set(m) and 0 <= m["video"]["acer"] <= 1
    # a bad labels line: one error naming file and line
    labels.write_text(lines[0] + "\nspoof_v1/0001.png maybe\n")
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "faces" / "live_v1"), "--labels", str(labels), "--output-dir", str(pred)]) == 2
    err = capsys.readouterr().err
    assert "labels.txt" in err and "line 2" in err


@pytest.mark.slow
def test_study_command(tmp_path, capsys):
    """``despoofdiff study --seeds 0 1``: per-seed runs with both ablations, paired differences with t-intervals."""
    budget = [a if a != "[]" else "[rgb, noise]" for a in BUDGET]
    rc = main(["study", "--seeds", "0", "1", "--output-dir", str(tmp_path / "study"), *TOY, *budget])
    assert rc == 0, capsys.readouterr().err[-2000:]
    s = json.loads((tmp_path / "study" / "study.json").read_text())
    assert s["seeds"] == [0, 1] and set(s["models"]) == {"both", "rgb", "noise"}
    p = s["paired"]["noise"]["test_acer"]
    a, b = s["models"]["both"]["test_acer"]["values"], s["models"]["noise"]["test_acer"]["values"]
    assert p["diffs"] == pytest.approx([x - y for x, y in zip(a, b)])
    assert p["ci95"][0] <= p["mean"] <= p["ci95"][1]
    assert "two-stream" in (tmp_path / "study" / "study.md").read_text()
