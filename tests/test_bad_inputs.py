"""Bad input, as a careful user types it, gets one clear line and exit code 2 in every package.

A table of at least ten bad inputs per package: wrong types, values out of range, closed choices,
misspelt keys (also Trainer keywords), a zero training budget, output folders that are files or
hold a finished run, missing or malformed config files, unknown presets, ``--resume`` with
nothing to resume, and checkpoints that are empty or not checkpoints. Each must end with exactly
one line on stderr (no traceback, no warnings or progress bars before it), nothing on stdout, and
no output that looks like a result (no ``metrics.json``, no new run folder). The commands run
in-process (the package's ``cli.main``) so the table stays fast; ``test_entry_point_exit_code``
checks the real console scripts' exit code.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from vislab.run import package_schema

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))

# package-specific cases from users' reports (argv after the package name)
SPECIFIC: dict[str, list[list[str]]] = {
    "cfpl": [["--data.steps_per_epoch", "0"], ["predict", "--checkpoint", "{zero}", "{png}"],
             ["predict", "--checkpoint", "{text}", "{png}"]],
    "uniattack": [["--data.steps_per_epoch", "-2"], ["--data.protocol", "p3"], ["predict", "--checkpoint", "{zero}", "{png}"]],
    "despoofdiff": [["--classifier.streams", "noise_only"], ["predict", "--checkpoint", "{zero}", "{png}"]],
    "pvlr": [["--model.visual", "resnet"], ["--optim.lr", "abc"], ["predict", "--checkpoint", "{zero}", "{png}"]],
    "compinv": [["--trainer.max_steps", "0"], ["--inversion.method", "lora"]],
    "incantations": [["--learn.iters", "0"], ["--sampling.steps", "-2"], ["--learn.mode", "medium"]],
    "flallm": [["--stage1.epochs", "0"], ["--stage2.epochs", "-1"], ["translate", "--checkpoint", "{zero}", "{png}"]],
    "gal4p": [["--al.selection", "best"], ["--al.total_rounds", "0"], ["generate", "--model", "{missing}", "--prompt", "a sks dog"]],
    "diffspeaker": [["--data.source", "voca"], ["animate", "--checkpoint", "{zero}", "--audio", "{text}"],
                    ["convert", "--official", "{text}", "--dataset", "vocaset", "--out", "{tmp}/c.ckpt"]],
    "sags": [["--model.backend", "cuda"], ["--model.sh_degree", "-1"], ["segment", "--ply", "{text}", "--cameras", "{text}", "--out", "{tmp}/seg"], ["segment", "--ply", "{text}"]],
}


def _first(schema, pred):
    return next((f for f in schema.fields.values() if pred(f)), None)


def generic_cases(pkg: str) -> list[list[str]]:
    """Cases every package must refuse, derived from its schema."""
    s = package_schema(pkg)
    cases: list[list[str]] = []
    f = _first(s, lambda f: f.kind == "float")
    if f:
        cases.append([f"--{f.key}", "abc"])
    f = _first(s, lambda f: f.kind == "int" and f.minimum == 1)
    if f:
        cases += [[f"--{f.key}", "-3"], [f"--{f.key}", "2.5"]]
    f = _first(s, lambda f: bool(f.choices))
    if f:
        cases.append([f"--{f.key}", "no_such_choice"])
    f = _first(s, lambda f: f.kind == "bool")
    if f:
        cases.append([f"--{f.key}", "maybe"])
    cases += [
        ["--no_such_key", "1"],
        ["--trainer.max_stepz", "5"],
        ["--trainer.max_steps", "abc"],
        ["--trainer.max_epochs", "-5"],
        ["--trainer.precision", "12"],
        ["--output-dir", "{file}"],
        ["--output-dir", "{finished}"],
        ["--config", "{missing}"],
        ["--config", "{malformed}"],
        ["--config", "{badkey}"],
        ["--preset", "no_such_preset"],
        ["--resume"],
        ["--resume", "--output-dir", "{tmp}/empty"],
        ["--resume", "--overwrite", "--output-dir", "{finished}"],
    ]
    return cases


TABLE = [(pkg, case) for pkg in PACKAGES for case in generic_cases(pkg) + SPECIFIC.get(pkg, [])]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    (d / "file.txt").write_text("not a folder\n")
    (d / "zero.ckpt").write_bytes(b"")
    (d / "text.txt").write_text("hello\n")
    (d / "malformed.yaml").write_text("a: [1, 2\n")
    (d / "badkey.yaml").write_text("no_such_section:\n  x: 1\n")
    (d / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return {"file": str(d / "file.txt"), "zero": str(d / "zero.ckpt"), "text": str(d / "text.txt"),
            "malformed": str(d / "malformed.yaml"), "badkey": str(d / "badkey.yaml"), "missing": str(d / "missing.yaml"),
            "png": str(d / "img.png"), "tmp": str(d)}


def _finished_run(tmp: Path) -> Path:
    run = tmp / "finished"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "metrics.json").write_text('{"before": 0.1, "after": 0.2}\n')
    return run


def test_the_table_has_ten_cases_per_package():
    for pkg in PACKAGES:
        assert len(generic_cases(pkg) + SPECIFIC.get(pkg, [])) >= 10, pkg


@pytest.mark.parametrize("pkg, case", TABLE, ids=[f"{p}:{' '.join(c)}" for p, c in TABLE])
def test_bad_input_gives_one_line_and_exit_2(pkg, case, files, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output folder would appear here (runs/<pkg>/...)
    monkeypatch.delenv("VISLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("VISLAB_CHECK_DEVICES", "0")
    finished = _finished_run(tmp_path)
    before = sorted(p.name for p in finished.iterdir())
    values = {**files, "finished": str(finished), "tmp": str(tmp_path)}
    argv = [a.format(**values) for a in case]
    if "{tmp}/empty" in case[-1]:
        (tmp_path / "empty").mkdir()
    cli = importlib.import_module(f"{pkg}.cli")
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse errors of sub-commands
        rc = e.code
    out, err = capfd.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}\nstdout: {out[-1500:]}\nstderr: {err[-3000:]}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line, got:\n{err[-3000:]}"
    assert not out.strip(), f"stdout should be empty: {out[-800:]}"
    assert not (tmp_path / "runs").exists(), "an output folder was created for a refused command"
    assert sorted(p.name for p in finished.iterdir()) == before, "the finished run was touched"


def _console_script(pkg: str) -> str | None:
    exe = shutil.which(pkg, path=str(ROOT / ".venv" / "bin")) or shutil.which(pkg)
    return exe


@pytest.mark.parametrize("pkg", ["pvlr", "sags"])  # the exit path is vislab's; two console scripts prove it
def test_entry_point_exit_code(pkg, tmp_path):
    exe = _console_script(pkg)
    if exe is None:
        pytest.skip(f"{pkg} console script not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("VISLAB_RUN_DIR",)}
    r = subprocess.run([exe, "--trainer.max_stepz", "5"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"{pkg}: error: trainer.max_stepz: not a pytorch_lightning.Trainer keyword (did you mean 'max_steps'?)"]
    assert not (tmp_path / "runs").exists()
