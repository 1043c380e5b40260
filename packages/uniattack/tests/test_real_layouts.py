"""The README's real-data commands on a UniAttackData replica tree (tiny frames, a shortened budget), and bad lists."""

import contextlib
import io
import json
import logging

import pytest
from vislab.testing import faces as R

# the README's `uniattack --preset paper --clip.path ... --data.root ... --data.protocol ...`, with a tiny CLIP and budget
BUDGET = [
    "--clip.source", "tiny", "--clip.tiny.image_size", "32", "--clip.tiny.patch_size", "8", "--clip.tiny.context_length", "24",
    "--model.n_ctx", "4", "--model.n_teacher_groups", "3", "--data.batch_size", "8", "--data.steps_per_epoch", "2",
    "--data.load_size", "32", "--data.num_workers", "0", "--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1",
    "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false",
]


def _main(argv):
    from uniattack.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


@pytest.mark.parametrize("protocol, kind", [("p1", "image"), ("p2.1", "video")])
def test_readme_train_and_predict_commands(tmp_path, protocol, kind):
    root = R.uniattack_replica(tmp_path / "data", protocols=(protocol,), subjects=2, frames=3)
    out = tmp_path / "run"
    rc, err = _main(["--preset", "paper", *BUDGET, "--data.root", str(root / "UniAttackData"), "--data.protocol", protocol,
                     "--data.list_kind", kind, "--output-dir", str(out)])
    assert rc == 0, err[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    ck = m["checkpoint"]
    # the evaluated weights are the best dev-ACER checkpoint; last.ckpt stays for --resume
    assert ck["checkpoint"] == "checkpoints/best.ckpt" and ck["step"] in (2, 4) and 0 <= ck["dev_acer"] <= 1
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    if kind == "video":  # video lists: 3 frames per video are scored and averaged per video; the headline is video level
        assert m["headline_level"] == "video"
        v = m["after_detail"]["video_level"]
        assert v["n_videos"] == 2 * 2  # 2 test subjects x (live, physical) videos of 3 frames each
        assert m["after"] == v["acer"] and set(v["apcer_per_family"]) == {"physical"}
    else:  # image lists: one item per listed image, frame level
        assert m["headline_level"] == "frame" and "video_level" not in m["after_detail"]
    # README: uniattack predict --checkpoint RUN/checkpoints/best.ckpt FRAMES... --per-video
    video = next(p for p in (root / "UniAttackData" / "Data").rglob("color") if p.is_dir())
    csv = tmp_path / "pred.csv"
    rc, err = _main(["predict", "--checkpoint", str(out / "checkpoints" / "best.ckpt"), str(video), "--out", str(csv), "--per-video"])
    assert rc == 0, err[-2000:]
    assert len(csv.read_text().strip().splitlines()) == 1 + 3
    rows = (tmp_path / "pred_videos.csv").read_text().strip().splitlines()
    assert rows[0].startswith("video,frames,p_attack") and len(rows) == 2 and rows[1].split(",")[1] == "3"
    frame_p = [float(r.split(",")[1]) for r in csv.read_text().strip().splitlines()[1:]]
    assert abs(float(rows[1].split(",")[2]) - sum(frame_p) / 3) < 1e-5


def _bad_root(tmp_path, bad_lines):
    root = R.uniattack_replica(tmp_path / "data", protocols=("p1",), subjects=2, frames=2)
    lf = root / "UniAttackData" / "protocol" / "UniAttackData@p1_video_train.txt"
    (root / "UniAttackData" / "Data" / "live" / "empty").mkdir(parents=True)
    extra = {"missing": "UniAttackData/Data/live/nobody 0", "empty": "UniAttackData/Data/live/empty 0"}
    lf.write_text(lf.read_text() + "".join(extra[b] + "\n" for b in bad_lines))
    return root, lf


def test_a_minority_of_bad_lines_is_a_warning_with_a_count(tmp_path, caplog):
    root, lf = _bad_root(tmp_path, ["missing", "empty"])
    n = len(lf.read_text().splitlines())
    from uniattack.data import build_protocol

    with caplog.at_level(logging.WARNING):
        splits = build_protocol({"source": "uniattackdata", "root": str(root), "list_kind": "video", "load_size": 32}, "p1")
    ds = splits["train"]
    assert ds.stats["skipped"] == 2 and ds.stats["videos"] == n - 2
    assert f"{lf}:{n - 1}: UniAttackData/Data/live/nobody not found" in ds.errors[0]
    assert f"{lf}:{n}:" in ds.errors[1] and "has no frames" in ds.errors[1]
    assert "2 problem(s), 2 of" in caplog.text


def test_bad_list_lines_and_protocols_give_one_error(tmp_path):
    root, lf = _bad_root(tmp_path, [])
    # a list whose lines mostly point at missing or empty videos: one error naming the file and line
    lines = lf.read_text().splitlines()
    lf.write_text("\n".join(["UniAttackData/Data/live/nobody 0"] * len(lines) + lines[:1]) + "\n")
    args = [*BUDGET, "--data.source", "uniattackdata", "--data.root", str(root), "--data.list_kind", "video",
            "--baseline.enabled", "false", "--unseen.enabled", "false"]
    rc, err = _main([*args, "--output-dir", str(tmp_path / "r1")])
    assert rc == 2 and f"{lf}:1: UniAttackData/Data/live/nobody not found" in err and err.count("error:") == 1
    lf.write_text("UniAttackData/Data/live/empty 0\n")
    rc, err = _main([*args, "--output-dir", str(tmp_path / "r2")])
    assert rc == 2 and f"{lf}:1:" in err and "has no frames" in err
    rc, err = _main([*args, "--data.protocol", "p3", "--output-dir", str(tmp_path / "r3")])
    assert rc == 2 and "'p3'" in err and "p1, p2.1, p2.2" in err and err.count("error:") == 1
