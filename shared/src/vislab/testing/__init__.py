"""Helpers the packages' tests share: run a package's CLI in-process or as a subprocess.

Tiny-model factories live in ``vislab.testing.models`` (CLIP, Stable Diffusion) and the
toy-world fixtures in ``vislab.testing.toy``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vislab import config as cfgmod
from vislab.run import Run, load_preset


def make_run(package: str, out: Path, overrides: dict[str, Any] | None = None, preset: str = "default") -> Run:
    """A :class:`Run` of ``package``'s preset with ``overrides`` merged in, writing to ``out`` (config.yaml included,
    as ``start_run`` does)."""
    cfg = load_preset(package, preset)
    if overrides:
        cfgmod.check_keys(cfg, overrides, "test overrides")
        cfg = cfgmod.deep_merge(cfg, overrides)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfgmod.dump_yaml(cfg))
    return Run(package=package, out=out, config=cfg)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: passive OpenMP, no inherited run folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("VISLAB_RUN_DIR", "LOCAL_RANK", "RANK", "NODE_RANK", "WORLD_SIZE")}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update(extra)
    return env


def run_module(module: str, args: list[str], timeout: float = 600, cwd: str | Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` in a subprocess of the same interpreter; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(**env),
    )


def read_metrics(out: Path) -> dict[str, Any]:
    """``out/metrics.json`` of a finished run."""
    return json.loads((Path(out) / "metrics.json").read_text())


REQUIRED_METRIC_KEYS = {"package", "metric", "higher_is_better", "before", "after", "seconds"}


def assert_run_contract(out: Path, pictures: bool = True) -> dict[str, Any]:
    """Check a finished run folder: config.yaml, checkpoints/, metrics.json keys, a picture."""
    out = Path(out)
    assert (out / "config.yaml").is_file(), "config.yaml missing"
    assert (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()), "no checkpoint written"
    m = read_metrics(out)
    missing = REQUIRED_METRIC_KEYS - set(m)
    assert not missing, f"metrics.json lacks {missing}"
    if pictures:
        assert list(out.rglob("*.png")) or list(out.rglob("*.gif")) or list(out.rglob("*.mp4")), "no pictures written"
    return m
