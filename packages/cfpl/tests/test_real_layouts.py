"""The README's real-data commands on replica trees of the published layouts (tiny frames, a shortened budget)."""

import json

import pytest
from vislab.testing import faces as R

BUDGET = [
    "--clip.tiny.image_size", "32", "--data.batch_size", "8", "--data.steps_per_epoch", "2", "--data.load_size", "32",
    "--baseline.enabled", "false", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
]


@pytest.mark.parametrize("layout, protocol", [("lab", "O-C-I@M"), ("lab", "CASIA_FASD-OULU_NPU-ReplayAttack@MSU_MFSD"), ("flip", "O-C-I@M")])
def test_readme_train_and_predict_commands(tmp_path, layout, protocol):
    from cfpl.cli import main

    root = R.lab_replica(tmp_path / "data", videos=2) if layout == "lab" else R.flip_replica(tmp_path / "data", videos=2)
    out = tmp_path / "run"
    # README: cfpl --data.source lab --data.root /data/CASIA_FasData --data.protocol O-C-I@M
    assert main(["--data.source", layout, "--data.root", str(root), "--data.protocol", protocol, *BUDGET, "--output-dir", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == ("C-O-I@M" if protocol.startswith("CASIA") else "O-C-I@M") and set(m["threshold_rule"]) == {"hter", "hter_dev_threshold", "checkpoint"}
    assert 0 <= m["hter_dev_threshold_after"] <= 1 and 0 <= m["after"] <= 1
    # the whole target: lab test list 4 videos; FLIP's msu test lists 8 (train and test folders)
    assert m["n_target_videos"] == (4 if layout == "lab" else 8)
    # README: cfpl predict --checkpoint RUN/checkpoints/last.ckpt faces/ --out predictions.csv
    faces = next(root.rglob("*.png")).parent
    csv = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(faces), "--out", str(csv)]) == 0
    row = csv.read_text().splitlines()[1]
    assert f"{m['dev_threshold']:.6f}" in row and "source-domain dev split" in row


def _run(argv):
    import contextlib
    import io

    from cfpl.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def test_readme_protocol2_lab_lists(tmp_path):
    """README: cfpl --data.source lab --data.root ROOT --data.protocol W-C@S (WCS lists in the lab layout)."""
    import numpy as np

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("IDIAP_WMCA", "CASIA_CeFA", "CASIA_SURF"):
        for split in ("train", "dev", "test"):
            lines = []
            for k in range(2):
                for live in (True, False):
                    vdir = f"{name}/{split}/{k}_{'real' if live else 'fake'}"
                    R.write_frames(root / vdir, 2, 16, rng, live)
                    lines.append(f"{vdir} {0 if live else 1}")
            (root / "dg_protocol").mkdir(parents=True, exist_ok=True)
            (root / "dg_protocol" / f"{name}_video_{split}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    rc, err = _run(["--data.source", "lab", "--data.root", str(root), "--data.protocol", "W-C@S", *BUDGET, "--output-dir", str(out)])
    assert rc == 0, err[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "W-C@S" and m["n_target_videos"] == 4


def test_bad_lists_and_protocols(tmp_path, caplog):
    """A minority of bad list lines: a warning with a count; mostly bad lines or an unknown protocol letter: one error."""
    import logging

    from cfpl.datasets import build_datasets

    root = R.lab_replica(tmp_path / "data", videos=4)
    lf = root / "dg_protocol" / "OULU_NPU_video_train.txt"
    (root / "OULU_NPU" / "empty").mkdir()
    lf.write_text(lf.read_text() + "OULU_NPU/nobody 0\nOULU_NPU/empty 1\n")
    d = {"source": "lab", "root": str(root), "protocol": "O-C-I@M", "load_size": 16}
    with caplog.at_level(logging.WARNING):
        train = build_datasets(d)["train"]
    assert train.stats["skipped"] == 2 and f"{lf}:9: OULU_NPU/nobody not found" in train.errors[0]
    assert f"{lf}:10:" in train.errors[1] and "has no frames" in train.errors[1]
    assert "2 problem(s), 2 of 26 entries skipped" in caplog.text
    # the target's list mostly broken: one error naming the file and the first bad line
    tf = root / "dg_protocol" / "MSU_MFSD_video_test.txt"
    tf.write_text("MSU_MFSD/nobody 0\nMSU_MFSD/gone 1\nMSU_MFSD/empty 0\n" + tf.read_text().splitlines()[0] + "\n")
    rc, err = _run(["--data.source", "lab", "--data.root", str(root), "--data.protocol", "O-C-I@M", *BUDGET, "--output-dir", str(tmp_path / "r")])
    assert rc == 2 and err.count("error:") == 1
    assert "3 of 4 entries unusable" in err and f"{tf}:1: MSU_MFSD/nobody not found" in err
    rc, err = _run(["--data.source", "lab", "--data.root", str(root), "--data.protocol", "O-C-X@M", *BUDGET, "--output-dir", str(tmp_path / "r2")])
    assert rc == 2 and "unknown domain 'X'" in err and err.count("error:") == 1
