"""Kill and resume: a run killed with SIGKILL after its first checkpoint continues with ``--resume``.

For each package a short run is made three ways with the same seed and config: uninterrupted;
killed (``VISLAB_KILL_AFTER_STEP``: SIGKILL at the first batch after that step once a checkpoint
exists, as an OOM kill would); and that killed folder continued with ``--resume``. The resumed
run must exit 0, reach the uninterrupted run's final metric within noise, continue the CSV log
(no duplicated steps, rows from before the kill kept) and leave nothing stray (no ``last-v1.ckpt``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY_CLIP = dict(image_size=32, patch_size=8, embed_dim=32, text_width=64, vision_width=64, text_layers=2,
                 vision_layers=2, heads=2, context_length=24)
# package -> (short config, step after which the first run is killed, tolerance on the headline metric)
# (gal4p, compinv: their resume tests are in their packages; incantations learns per prompt without checkpoints)
CASES: dict[str, tuple[dict, int, float]] = {
    "pvlr": ({"clip": {"source": "tiny"}, "data": {"n_train": 64, "n_val": 64, "batch_size": 16}, "ablations": [],
              "trainer": {"max_epochs": 3}}, 5, 0.15),
    "sags": ({"synthetic": {"size": 32, "n_train": 4, "n_test": 2, "spacing": 0.08},
              "strategy": {"refine_start_iter": 2, "refine_stop_iter": 50, "refine_every": 3},
              "trainer": {"max_steps": 30, "check_val_every_n_epoch": 100}}, 12, 0.15),
    "cfpl": ({"clip": {"source": "tiny", "tiny": TINY_CLIP},
              "data": {"batch_size": 8, "steps_per_epoch": 3, "toy": {"identities": 2, "frames": 2, "size": 32}},
              "baseline": {"steps": 5}, "trainer": {"max_epochs": 3, "check_val_every_n_epoch": 1}}, 4, 0.3),
    "diffspeaker": ({"data": {"train_clips": 12, "test_clips": 4}, "sampling": {"steps": 5, "val_steps": 5},
                     "trainer": {"max_steps": 24, "check_val_every_n_epoch": 100}}, 8, 0.5),
    "uniattack": ({"data": {"batch_size": 8, "steps_per_epoch": 3, "toy": {"identities": 4, "size": 32, "frames": 1}},
                   "clip": {"tiny": {"image_size": 32}}, "unseen": {"enabled": False}, "baseline": {"enabled": False},
                   "trainer": {"max_epochs": 3, "check_val_every_n_epoch": 1}}, 4, 0.3),
    # two stages: killed in stage 1, resumed there, then stage 2
    "flallm": ({"data": {"synthetic": {"n_train": 16, "n_dev": 8, "n_test": 8}},
                "stage1": {"epochs": 3, "batch_size": 8, "val_every": 1}, "stage2": {"epochs": 1, "batch_size": 8, "val_every": 1},
                "eval_batch_size": 8, "pictures": {"n_clips": 2}, "trainer": {}}, 2, 2.0),  # BLEU points on 8 clips
    # diffusion models, spoof-noise cache, then the classifier: killed in the classifier stage
    "despoofdiff": ({"data": {"resolution": 16, "frames": 2, "toy": {"identities": 4, "frames": 2}},
                     "diffusion": {"steps": 2, "batch_size": 8}, "bridge": {"steps": 2, "batch_size": 32},
                     "classifier": {"steps": 8, "batch_size": 8, "val_every_n_epochs": 1}, "ablations": [], "pictures": 2,
                     "trainer": {}}, 3, 0.5),
}


def _run(pkg: str, args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 900):
    exe = shutil.which(pkg, path=str(ROOT / ".venv" / "bin")) or shutil.which(pkg)
    if exe is None:
        pytest.skip(f"{pkg} console script not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("VISLAB_RUN_DIR", "VISLAB_KILL_AFTER_STEP")}
    env.update({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env_extra or {})})
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _csv_rows(run: Path) -> list[dict[str, str]]:
    """Rows of every CSV log of the run (multi-stage packages keep one file per stage), with their file."""
    return [{**row, "_file": f.name} for f in sorted((run / "logs").glob("*.csv")) for row in csv.DictReader(open(f))]


@pytest.mark.slow
@pytest.mark.parametrize("pkg", sorted(CASES))
def test_kill_then_resume_matches_an_uninterrupted_run(pkg, tmp_path):
    cfg, kill_step, tol = CASES[pkg]
    cfg = {**cfg, "trainer": {**cfg["trainer"], "enable_progress_bar": False, "checkpoint": {"every_n_train_steps": 2}}}
    conf = tmp_path / "short.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    base = ["--config", str(conf)]

    full = _run(pkg, [*base, "--output-dir", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr[-3000:]

    killed = tmp_path / "killed"
    k = _run(pkg, [*base, "--output-dir", str(killed)], {"VISLAB_KILL_AFTER_STEP": str(kill_step)})
    assert k.returncode == -9, f"the run was not killed (exit {k.returncode}): {k.stderr[-2000:]}"
    assert not (killed / "metrics.json").exists()
    rows_before = _csv_rows(killed)
    steps_before = {r["step"] for r in rows_before}

    r = _run(pkg, [*base, "--output-dir", str(killed), "--resume"])
    assert r.returncode == 0, r.stderr[-3000:]

    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["trained"] is True
    assert abs(a["after"] - b["after"]) <= tol * max(1.0, abs(a["after"])), (a["after"], b["after"])
    rows = _csv_rows(killed)
    assert steps_before <= {r["step"] for r in rows}, "rows logged before the kill were lost"
    # no (step, metric) logged twice: the rows written after the last checkpoint were replaced, not duplicated
    seen = Counter((row["_file"], row["step"], key) for row in rows for key, v in row.items()
                   if v not in ("", None) and key not in ("step", "epoch", "_file"))
    assert not [k for k, n in seen.items() if n > 1], [k for k, n in seen.items() if n > 1][:5]
    stray = [p.name for p in killed.rglob("*-v[0-9]*.ckpt")]
    assert not stray, stray
