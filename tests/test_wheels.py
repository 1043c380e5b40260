"""Each package's wheel, installed alone in a fresh venv, has every dependency it imports and no extra it
does not: the check that vislab's extras (clip, diffusion, eval, faces, toy) and each member's
dependency list are right.

Per member: ``uv build`` the vislab wheel and the member's wheel, ``uv venv``, ``uv pip install`` the two
wheel files (third-party versions pinned to uv.lock by ``uv export``, so they come from uv's cache),
then inside that venv: import every module of the member, statically walk every import the member
reaches (lazy ones inside functions too, following vislab at the granularity it is used; see
tests/wheel_closure.py) and require each to be installed, and run ``<pkg> --help``. A first test
installs vislab with no extra and imports its core.

Slow: 90-260 s per member on a loaded 2-core machine with a warm uv cache (25 min for all), so these
run only with ``VISLAB_TEST_WHEELS=1``: ``make test-wheels`` (CI: a separate job or before a release).
Needs ``uv`` on PATH and PyPI (or a warm uv cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
UV = shutil.which("uv")
HEAVY = {"diffusers", "transformers", "open_clip", "skimage", "cv2", "matplotlib", "scipy", "peft"}
CORE = ["vislab", "vislab.run", "vislab.config", "vislab.lightning", "vislab.errors", "vislab.io", "vislab.runtime",
        "vislab.devices", "vislab.sync", "vislab.cli", "vislab.metrics", "vislab.clip", "vislab.diffusion", "vislab.toy"]

# Static reach that the code never takes at run time (the walk does not know argument values).
NOT_REACHED = {
    "pvlr": {"diffusers"},  # vislab.models.pretrain_toy(cfg, "clip") never takes its kind == "sd" branch
}

needs_venvs = [
    pytest.mark.slow,
    pytest.mark.skipif(UV is None, reason="needs uv on PATH"),
    pytest.mark.skipif(os.environ.get("VISLAB_TEST_WHEELS") != "1",
                       reason="installs ten fresh venvs (minutes): `make test-wheels` (VISLAB_TEST_WHEELS=1)"),
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VISLAB_PACKAGE", "VISLAB_RUN_DIR", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", UV_NO_PROGRESS="1")
    return env


def _run(cmd: list[str], timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), **kw)
    assert r.returncode == 0, f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Wheels of vislab and every member, and the lock's third-party pins as a constraints file."""
    out = tmp_path_factory.mktemp("wheels")
    _run([UV, "build", "--all-packages", "--wheel", "--no-sources", "-o", str(out)], cwd=ROOT)
    pins = out / "constraints.txt"
    _run([UV, "export", "--frozen", "--all-packages", "--no-dev", "--no-hashes", "--no-emit-workspace",
          "--no-header", "--no-annotate", "-o", str(pins)], cwd=ROOT)
    return out


def _venv(dist: Path, tmp: Path, *wheels: str) -> Path:
    """A fresh venv holding exactly ``wheels`` (file names in ``dist``, optionally with ``[extras]``) and their deps."""
    env_dir = tmp / "venv"
    _run([UV, "venv", "-q", "--python", sys.executable, str(env_dir)])
    py = env_dir / "bin" / "python"
    _run([UV, "pip", "install", "-q", "--python", str(py), "--find-links", str(dist), "-c", str(dist / "constraints.txt"),
          *[str(dist / w) for w in wheels]], cwd=tmp)
    return py


def _wheel(dist: Path, name: str) -> str:
    found = sorted(p.name for p in dist.glob(f"{name}-*.whl"))
    assert len(found) == 1, f"expected one {name} wheel in {dist}: {found}"
    return found[0]


@needs_venvs[0]
@needs_venvs[1]
@needs_venvs[2]
def test_vislab_core_installs_and_imports_without_extras(dist, tmp_path):
    py = _venv(dist, tmp_path, _wheel(dist, "vislab"))
    probe = (
        "import importlib, importlib.util, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {sorted(HEAVY)!r} if importlib.util.find_spec(m))))\n"
    )
    r = _run([str(py), "-c", probe], cwd=tmp_path)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [], "the core pulled an extra's library"
    r = _run([str(tmp_path / "venv" / "bin" / "vislab"), "--help"], cwd=tmp_path)
    assert "toy" in r.stdout


def _direct_deps(pkg: str) -> tuple[set[str], set[str]]:
    """(vislab extras, third-party distribution names) the member declares."""
    deps = tomllib.loads((ROOT / "packages" / pkg / "pyproject.toml").read_text())["project"]["dependencies"]
    extras: set[str] = set()
    names: set[str] = set()
    for d in deps:
        name = d.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip()
        if name.startswith("vislab"):
            extras |= set(name[len("vislab[") : -1].split(",")) if "[" in name else set()
        else:
            names.add(name)
    return extras, names


@needs_venvs[0]
@needs_venvs[1]
@needs_venvs[2]
@pytest.mark.parametrize("pkg", PACKAGES)
def test_member_wheel_alone_has_what_it_imports(pkg, dist, tmp_path):
    py = _venv(dist, tmp_path, _wheel(dist, "vislab"), _wheel(dist, pkg))
    # 1. every module imports (top-level imports)
    probe = (
        "import importlib, pkgutil\n"
        f"p = importlib.import_module({pkg!r})\n"
        f"for m in pkgutil.walk_packages(p.__path__, {pkg + '.'!r}):\n"
        "    if not m.name.endswith('.__main__'): importlib.import_module(m.name)\n"
    )
    _run([str(py), "-c", probe], cwd=tmp_path)
    # 2. every import it can reach, lazy ones included, is installed; no heavy library it never reaches is
    r = _run([str(py), str(ROOT / "tests" / "wheel_closure.py"), pkg], cwd=tmp_path)
    report = json.loads(r.stdout.strip().splitlines()[-1])
    report["missing"] = sorted(set(report["missing"]) - NOT_REACHED.get(pkg, set()))
    assert report["missing"] == [], f"{pkg} imports {report['missing']} but its wheel does not install them"
    unneeded = sorted(set(report["heavy_installed"]) - set(report["needed"]) - _pulled_by_third_party(py, report["needed"]))
    assert unneeded == [], f"{pkg} installs {unneeded} that it never imports: an extra too many"
    # 3. the script runs
    r = _run([str(tmp_path / "venv" / "bin" / pkg), "--help"], cwd=tmp_path)
    assert pkg in r.stdout


def _pulled_by_third_party(py: Path, needed: list[str]) -> set[str]:
    """Import names installed only because a needed third-party distribution requires them (peft -> transformers)."""
    probe = (
        "import importlib.metadata as md, json, re, sys\n"
        "needed = set(json.loads(sys.argv[1]))\n"
        "top = md.packages_distributions()\n"
        "dists = {d for m in needed for d in top.get(m, []) if not d.startswith('vislab')}\n"
        "seen, todo = set(), list(dists)\n"
        "while todo:\n"
        "    d = todo.pop()\n"
        "    if d.lower() in seen: continue\n"
        "    seen.add(d.lower())\n"
        "    try: reqs = md.requires(d) or []\n"
        "    except md.PackageNotFoundError: continue\n"
        "    for q in reqs:\n"
        "        if 'extra ==' in q: continue\n"
        "        todo.append(re.split(r'[ <>=!~;\\[(]', q, maxsplit=1)[0])\n"
        "seen -= {d.lower() for d in dists}\n"
        "print(json.dumps(sorted({m for m, ds in top.items() if any(d.lower() in seen for d in ds)})))\n"
    )
    r = _run([str(py), "-c", probe, json.dumps(needed)])
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def test_members_declare_vislab_extras_not_the_libraries_behind_them():
    """A member gets CLIP/diffusion/faces libraries through vislab's extras, so versions stay in one place."""
    behind = {"open-clip-torch": "clip", "diffusers": "diffusion", "opencv-python-headless": "faces",
              "scikit-image": "faces", "matplotlib": "eval"}
    vislab_meta = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
    assert "jsonargparse[signatures]>=4.27" not in vislab_meta["dependencies"]
    assert set(vislab_meta["optional-dependencies"]) >= {"clip", "diffusion", "eval", "faces", "toy"}
    for pkg in PACKAGES:
        extras, names = _direct_deps(pkg)
        assert extras <= set(vislab_meta["optional-dependencies"]), f"{pkg}: unknown vislab extra"
        for lib, extra in behind.items():
            if lib in names:
                assert extra not in extras, f"{pkg} lists {lib} and vislab[{extra}]: list only the extra"
