"""Every package's config schema: shipped presets validate, ``--help`` lists every key, bad types are refused."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from vislab.errors import ConfigError
from vislab.run import list_presets, package_schema, resolve_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
PRESETS = [(pkg, name) for pkg in PACKAGES for name in list_presets(pkg)]


@pytest.mark.parametrize("pkg, preset", PRESETS, ids=[f"{p}:{n}" for p, n in PRESETS])
def test_every_shipped_preset_validates_against_the_schema(pkg, preset):
    cfg = resolve_config(pkg, preset)
    schema = package_schema(pkg)
    # a preset is an override of the schema: every schema key is present after merging
    for key in schema.fields:
        node = cfg
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{pkg}:{preset} lacks {key}"
            node = node[part]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_help_lists_every_key_with_type_and_default(pkg, capsys):
    cli = importlib.import_module(f"{pkg}.cli")
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    schema = package_schema(pkg)
    listed = [k for k, f in schema.fields.items() if not (f.kind == "dict" and not f.open)]
    assert len(listed) >= 10
    for key in listed:
        assert f"  --{key} " in out, f"{pkg} --help does not list {key}"
    assert "--trainer.<name>" in out


@pytest.mark.parametrize("pkg", PACKAGES)
def test_wrong_types_are_refused_before_anything_runs(pkg):
    """One wrong type per kind of field the package has (the bad-type test of every package)."""
    schema = package_schema(pkg)
    wrong = {"float": "abc", "int": "abc", "bool": "maybe", "list": 3}
    tried = 0
    for kind, value in wrong.items():
        f = next((f for f in schema.fields.values() if f.kind == kind), None)
        if f is None:
            continue
        with pytest.raises(ConfigError, match=f"^{f.key}: expected"):
            resolve_config(pkg, "default", None, [f"--{f.key}", str(value)])
        tried += 1
    assert tried >= 2


def test_a_paper_preset_accepts_every_default_key():
    """A key the default has and a preset once lacked is still accepted with that preset."""
    cfg = resolve_config("incantations", "paper", None, ["--eval.ablation_no_semantic", "true"])
    assert cfg["eval"]["ablation_no_semantic"] is True


def test_help_imports_no_heavy_library():
    """``<pkg> --help`` must answer at once: it imports neither torch, numpy nor Lightning (about 1 s for all ten)."""
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        f"for pkg in {PACKAGES!r}:\n"
        "    importlib.import_module(pkg + '.cli').main(['--help'])\n"
        "heavy = [m for m in ('torch', 'numpy', 'pytorch_lightning', 'transformers', 'diffusers') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.strip().endswith("[]"), r.stderr[-500:]
