"""``despoofdiff study``: does the spoof-noise stream help? The same run over several seeds, paired.

Every seed trains the full pipeline (``despoofdiff --seed S ...`` in its own output folder, so a killed
study continues where it stopped: seeds with a ``metrics.json`` are read, not retrained) with the RGB-only
and noise-only ablations beside the two-stream model. The seeds change the diffusion models'
and classifiers' initialisation and batches; the data are the same. Per seed the three models are
scored on the same frames, so the study reports paired differences

    d_s = ACER_two-stream(s) - ACER_ablation(s),  mean d +- t_{0.975, n-1} * sd(d) / sqrt(n)

(negative: the two-stream model has the lower error; the interval is the 95 % Student-t interval across
seeds), for frame- and video-level test ACER and the cross-domain HTER. Writes ``study.json`` and
``study.md`` (the table) in the output folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from vislab.errors import VislabError

MODELS = ("both", "rgb", "noise")
NAMES = {"both": "two-stream (image + N)", "rgb": "RGB only", "noise": "noise only"}
#: (label, key in a flattened metrics block)
COLUMNS = (("test ACER", "test_acer"), ("test video ACER", "test_video_acer"), ("cross HTER", "cross_hter"), ("cross video HTER", "cross_video_hter"))


def study_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="despoofdiff study",
        description="Train the pipeline once per seed (two-stream model with the RGB-only and noise-only ablations) and "
        "report mean +- sd and the paired two-stream - ablation differences with 95 %% t-intervals. Other --key value "
        "arguments are passed to every run (e.g. --preset paper --data.source oulu ...).",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--output-dir", type=Path, default=None, help="study folder (default runs/despoofdiff-study/<timestamp>); seed S runs in seed<S>/")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at the same time (separate processes)")
    return p


def flat_models(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{both|rgb|noise: flattened 'after' metrics} of one run's metrics.json."""
    out = {m.get("streams", "both"): m["after_all"]}
    for s, v in (m.get("ablations") or {}).items():
        out[s] = v["after"]
    return out


def t_interval(d: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sd, low, high) of the paired differences ``d`` (Student t, n-1 degrees of freedom)."""
    n = len(d)
    mean = sum(d) / n
    if n < 2:
        return mean, 0.0, -math.inf, math.inf
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    from scipy import stats

    h = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - h, mean + h


def summarise(per_seed: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Mean/sd per model and metric, and paired differences two-stream - ablation, over the seeds."""
    seeds = sorted(per_seed)
    models = [m for m in MODELS if all(m in per_seed[s] for s in seeds)]
    summary: dict[str, Any] = {"seeds": seeds, "models": {}, "paired": {}}
    for m in models:
        summary["models"][m] = {}
        for _, key in COLUMNS:
            vals = [per_seed[s][m].get(key) for s in seeds]
            if any(v is None for v in vals):
                continue
            mean, sd, _, _ = t_interval(vals)
            summary["models"][m][key] = {"values": vals, "mean": mean, "sd": sd}
    if "both" in models:
        for m in (x for x in models if x != "both"):
            summary["paired"][m] = {}
            for _, key in COLUMNS:
                a = [per_seed[s]["both"].get(key) for s in seeds]
                b = [per_seed[s][m].get(key) for s in seeds]
                if any(v is None for v in a + b):
                    continue
                d = [x - y for x, y in zip(a, b)]
                mean, sd, lo, hi = t_interval(d)
                summary["paired"][m][key] = {"diffs": d, "mean": mean, "sd": sd, "ci95": [lo, hi], "two_stream_better_all_seeds": all(x < 0 for x in d)}
    return summary


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def markdown(summary: dict[str, Any]) -> str:
    """The study's table: mean +- sd over seeds (per-seed values), then the paired differences."""
    seeds = summary["seeds"]
    cols = [(lab, key) for lab, key in COLUMNS if any(key in v for v in summary["models"].values())]
    lines = [f"Seeds {', '.join(map(str, seeds))} (values in %, lower is better; mean ± sd, per-seed values in brackets).", ""]
    lines.append("| model | " + " | ".join(lab for lab, _ in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for m, v in summary["models"].items():
        cells = []
        for _, key in cols:
            if key not in v:
                cells.append("–")
                continue
            e = v[key]
            cells.append(f"{_pct(e['mean'])} ± {_pct(e['sd'])} ({' / '.join(_pct(x) for x in e['values'])})")
        lines.append(f"| {NAMES[m]} | " + " | ".join(cells) + " |")
    if summary["paired"]:
        lines += ["", "Paired difference two-stream − ablation over the seeds (negative: the noise/RGB stream added helps), "
                  "mean [95 % t-interval]:", ""]
        lines.append("| two-stream minus | " + " | ".join(lab for lab, _ in cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for m, v in summary["paired"].items():
            cells = []
            for _, key in cols:
                e = v.get(key)
                cells.append("–" if e is None else f"{100 * e['mean']:+.1f} [{100 * e['ci95'][0]:+.1f}, {100 * e['ci95'][1]:+.1f}]")
            lines.append(f"| {NAMES[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_main(argv: list[str]) -> int:
    args, rest = study_parser().parse_known_args(argv)
    if args.jobs < 1:
        raise VislabError("--jobs must be >= 1")
    if any(a in ("--seed", "--output-dir", "--resume", "--overwrite") or a.startswith(("--seed=", "--output-dir=")) for a in rest):
        raise VislabError("despoofdiff study sets --seed and --output-dir of each run itself; use --seeds and the study's --output-dir")
    out = (args.output_dir or Path("runs") / "despoofdiff-study" / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"despoofdiff study: seeds {args.seeds}, output folder {out}", file=sys.stderr, flush=True)
    todo = [s for s in args.seeds if not (out / f"seed{s}" / "metrics.json").is_file()]
    env = {k: v for k, v in os.environ.items() if k != "VISLAB_RUN_DIR"}  # each run gets its own folder
    running: list[tuple[int, subprocess.Popen, Any]] = []
    failed: list[int] = []
    t0 = time.time()
    while todo or running:
        while todo and len(running) < args.jobs:
            s = todo.pop(0)
            run_dir = out / f"seed{s}"
            again = []  # a seed stopped earlier continues from its checkpoints; an empty start is replaced
            if run_dir.is_dir() and any(run_dir.iterdir()):
                again = ["--resume"] if any((run_dir / "checkpoints").rglob("last.ckpt")) else ["--overwrite"]
            log = open(out / f"seed{s}.log", "a")
            cmd = [sys.executable, "-m", "despoofdiff", "--output-dir", str(run_dir), "--seed", str(s), *again, *rest]
            print(f"  seed {s}: {' '.join(cmd[2:])} (log: {out / f'seed{s}.log'})", file=sys.stderr, flush=True)
            running.append((s, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(1.0)
        for item in list(running):
            s, p, log = item
            if p.poll() is None:
                continue
            log.close()
            running.remove(item)
            print(f"  seed {s}: {'done' if p.returncode == 0 else f'failed (exit {p.returncode})'} after {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
            if p.returncode != 0:
                failed.append(s)
    if failed:
        raise VislabError(f"seed(s) {failed} failed; see {out}/seed<S>.log (finished seeds are kept: rerun the same command to continue)")
    per_seed = {s: flat_models(json.loads((out / f"seed{s}" / "metrics.json").read_text())) for s in args.seeds}
    runs = {s: json.loads((out / f"seed{s}" / "metrics.json").read_text()) for s in args.seeds}
    summary = summarise(per_seed)
    summary["seconds_per_run"] = {s: runs[s].get("seconds") for s in args.seeds}
    summary["arguments"] = rest
    summary["date"] = datetime.now().strftime("%Y-%m-%d")
    from vislab.io import write_json

    write_json(out / "study.json", summary)
    table = markdown(summary)
    (out / "study.md").write_text(table)
    print(table)
    print(f"wrote {out / 'study.json'} and {out / 'study.md'}", file=sys.stderr)
    return 0
