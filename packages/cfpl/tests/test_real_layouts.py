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
