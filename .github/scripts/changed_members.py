#!/usr/bin/env python3
"""Which workspace members a change touches, as a JSON list for the CI matrix.

Usage: ``changed_members.py [--all] [FILE ...]`` (files relative to the repo root, or read
from stdin one per line). A change to ``shared/``, the root ``pyproject.toml``, ``uv.lock``,
``Makefile``, ``tests/``, ``.ci/`` or ``.github/`` selects every member; a file under
``packages/<name>/`` selects that member; a folder under ``packages/`` that is not a
workspace member is an error (exit 1).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = ("shared/", "pyproject.toml", "uv.lock", "Makefile", "tests/", ".ci/", ".github/")


def workspace_members(root: Path = ROOT) -> list[str]:
    """Names of the workspace members (``shared`` is vislab, plus every ``packages/*``)."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    names = []
    for pattern in data["tool"]["uv"]["workspace"]["members"]:
        for d in sorted(root.glob(pattern)):
            if (d / "pyproject.toml").is_file():
                names.append(tomllib.loads((d / "pyproject.toml").read_text())["project"]["name"])
    return names


def package_dirs(root: Path = ROOT) -> dict[str, str]:
    """``packages/<folder>`` -> project name."""
    out = {}
    for d in sorted((root / "packages").glob("*/pyproject.toml")):
        out[d.parent.name] = tomllib.loads(d.read_text())["project"]["name"]
    return out


def changed_members(files: list[str], root: Path = ROOT) -> list[str]:
    """Members selected by ``files`` (see module docstring); raises ValueError on unknown folders."""
    members = workspace_members(root)
    dirs = package_dirs(root)
    selected: set[str] = set()
    for f in files:
        f = f.strip()
        if not f:
            continue
        if f.startswith(EVERYTHING) or f in EVERYTHING:
            return members
        if f.startswith("packages/"):
            parts = f.split("/")
            if len(parts) < 3:
                continue
            folder = parts[1]
            if folder not in dirs or dirs[folder] not in members:
                raise ValueError(f"packages/{folder} is not a workspace member")
            selected.add(dirs[folder])
    return [m for m in members if m in selected]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--all"]:
        print(json.dumps(workspace_members()))
        return 0
    files = argv or sys.stdin.read().splitlines()
    try:
        print(json.dumps(changed_members(files)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
