"""Workspace-level promises: members build, install with pip, register, dispatch; configs parse; CI covers members."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))


def _load_changed_members():
    spec = importlib.util.spec_from_file_location("changed_members", ROOT / ".github/scripts/changed_members.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VISLAB_PACKAGE", "VISLAB_RUN_DIR")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def test_every_member_is_registered_with_its_script():
    eps = {ep.name: ep for ep in entry_points(group="vislab.methods")}
    assert set(PACKAGES) <= set(eps), f"not registered: {set(PACKAGES) - set(eps)}"
    for pkg in PACKAGES:
        meta = tomllib.loads((ROOT / "packages" / pkg / "pyproject.toml").read_text())
        assert meta["project"]["scripts"][pkg] == f"{pkg}.cli:main"
        assert "train" not in meta["project"]["scripts"], "only vislab declares `train`"
        deps = meta["project"]["dependencies"]
        assert any(re.match(r"vislab(\[[\w,]+\])?>=", d) and "<" in d for d in deps), f"{pkg}: vislab needs a version range"
        assert meta["tool"]["uv"]["sources"]["vislab"] == {"workspace": True}
        assert (ROOT / "packages" / pkg / "src" / pkg / "__main__.py").is_file()


def test_every_shipped_config_parses():
    files = list(ROOT.glob("packages/*/src/*/configs/*.yaml")) + list(ROOT.glob("shared/src/vislab/**/*.yaml"))
    assert files
    for f in files:
        data = yaml.safe_load(f.read_text())
        assert data is None or isinstance(data, dict), f"{f} is not a mapping"
    for pkg in PACKAGES:
        assert (ROOT / "packages" / pkg / "src" / pkg / "configs" / "default.yaml").is_file(), f"{pkg} lacks configs/default.yaml"


@pytest.mark.parametrize("pkg", PACKAGES)
def test_uv_run_package_train_reaches_the_member(pkg):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv not on PATH")
    r = subprocess.run([uv, "run", "--no-sync", "--package", pkg, "train", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=_env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.lstrip().startswith(f"usage: {pkg}"), r.stdout[:500]


def test_train_without_a_choice_lists_members(tmp_path):
    train = Path(sys.executable).parent / "train"
    r = subprocess.run([str(train)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 2
    assert "cannot tell which vislab package" in r.stderr
    for pkg in PACKAGES:
        assert pkg in r.stderr
    r = subprocess.run([str(train)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**_env(), "VISLAB_PACKAGE": "nosuchpackage"})
    assert r.returncode == 2 and "not an installed member" in r.stderr


def test_ci_matrix_covers_exactly_the_members():
    cm = _load_changed_members()
    members = cm.workspace_members(ROOT)
    assert sorted(members) == sorted(["vislab", *PACKAGES])
    assert cm.changed_members(["shared/src/vislab/run.py"], ROOT) == members
    assert cm.changed_members(["uv.lock"], ROOT) == members
    assert cm.changed_members([f"packages/{PACKAGES[0]}/README.md"], ROOT) == [PACKAGES[0]]
    assert cm.changed_members(["docs/x.md"], ROOT) == []
    with pytest.raises(ValueError):
        cm.changed_members(["packages/not_a_member/x.py"], ROOT)
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in ci["jobs"]["test"]["steps"])
    assert "uv lock --check" in steps and "uv sync --locked --package" in steps and "python -m pytest" in steps
    assert ci["jobs"]["test"]["strategy"]["matrix"]["package"].startswith("${{ fromJSON(")
    rel = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    rsteps = " ".join(str(s.get("run", "")) for s in rel["jobs"]["release"]["steps"])
    assert "uv build --package" in rsteps and "--no-sources" in rsteps and "pip install" in rsteps
    on = rel.get("on", rel.get(True))
    assert on["push"]["tags"] == ["*-v*.*.*"]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv not on PATH")
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([uv, "build", "--all-packages", "--wheel", "--no-sources", "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_every_member_builds_a_wheel_with_its_configs(wheels):
    for name in ["vislab", *PACKAGES]:
        found = list(wheels.glob(f"{name}-*.whl"))
        assert len(found) == 1, f"no wheel for {name}"
        with zipfile.ZipFile(found[0]) as z:
            names = z.namelist()
            meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
        if name != "vislab":
            assert any(n.startswith(f"{name}/configs/") and n.endswith("default.yaml") for n in names)
            assert re.search(r"^Requires-Dist: vislab(\[[\w,]+\])?[<>]=?", meta, re.M), meta


def test_pip_install_member_in_fresh_venv(wheels, tmp_path):
    """`pip install vislab <member>` in small: a fresh venv (no workspace), the two wheels, train --help."""
    member = "gal4p"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # Third-party dependencies (torch & co., several GB) come from this environment: a folder of links
    # to its site-packages without the workspace members, so vislab and the member come from the wheels.
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp_path / "deps"
    deps.mkdir()
    ours = {"vislab", *PACKAGES}
    for entry in site.iterdir():
        base = entry.name.split("-")[0].lower()
        if base in ours or base.lstrip("_") in ours or entry.suffix == ".pth" or base.startswith("__editable__"):
            continue
        (deps / entry.name).symlink_to(entry)
    fresh_site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (fresh_site / "zz_deps.pth").write_text(str(deps) + "\n")
    whls = [str(next(wheels.glob("vislab-*.whl"))), str(next(wheels.glob(f"{member}-*.whl")))]
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", *whls], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    where = subprocess.check_output([str(py), "-c", f"import vislab, {member}; print(vislab.__file__, {member}.__file__)"], text=True, env=_env())
    assert str(fresh_site) in where and str(ROOT) not in where, where
    env = _env()
    for cmd in (["train", "--help"], [member, "--help"]):
        r = subprocess.run([str(env_dir / "bin" / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.lstrip().startswith(f"usage: {member}")
    meth = subprocess.check_output([str(env_dir / "bin" / "vislab"), "methods"], text=True, env=env)
    assert json.dumps(meth.split()[0]) == json.dumps(member)
