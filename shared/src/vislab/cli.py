"""The single ``train`` script (dispatches to a vislab package) and the ``vislab`` command.

``train`` picks the package, in order: an explicit first argument (``train sags ...``);
``VISLAB_PACKAGE``; the nearest ``pyproject.toml`` above the working directory that names
a member; the ``--package X`` of the ``uv run`` that started it (read from the parent
processes, since ``uv run`` passes nothing else); the only member installed.
"""

from __future__ import annotations

import os
import sys
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

GROUP = "vislab.methods"


def members() -> dict[str, EntryPoint]:
    """Installed packages registered in the ``vislab.methods`` entry-point group."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _pyproject_member(start: Path, names: set[str]) -> str | None:
    for d in [start, *start.parents]:
        f = d / "pyproject.toml"
        if f.is_file():
            try:
                name = tomllib.loads(f.read_text()).get("project", {}).get("name")
            except (OSError, tomllib.TOMLDecodeError):
                name = None
            if name in names:
                return name
    return None


def _uv_package_from_parents(names: set[str], max_depth: int = 8) -> str | None:
    """The ``--package X`` / ``--package=X`` / ``-p`` ... of an ancestor ``uv run`` process."""
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            return None
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        words = [a.decode(errors="replace") for a in args if a]
        for i, w in enumerate(words):
            if w == "--package" and i + 1 < len(words) and words[i + 1] in names:
                return words[i + 1]
            if w.startswith("--package=") and w.split("=", 1)[1] in names:
                return w.split("=", 1)[1]
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def choose_member(argv: list[str], names: set[str]) -> tuple[str | None, list[str]]:
    """Apply the selection order; returns (member or None, remaining argv)."""
    if argv and argv[0] in names:
        return argv[0], argv[1:]
    env = os.environ.get("VISLAB_PACKAGE")
    if env:
        return (env if env in names else None), argv
    found = _pyproject_member(Path.cwd(), names)
    if found:
        return found, argv
    found = _uv_package_from_parents(names)
    if found:
        return found, argv
    if len(names) == 1:
        return next(iter(names)), argv
    return None, argv


def _usage(names: set[str]) -> str:
    listed = ", ".join(sorted(names)) if names else "(none installed)"
    return (
        "train: cannot tell which vislab package to train.\n"
        f"installed members: {listed}\n"
        "forms that work:\n"
        "  train <package> [options]            e.g. train sags --help\n"
        "  uv run --package <package> train     from the workspace\n"
        "  VISLAB_PACKAGE=<package> train\n"
        "  train  (inside packages/<package>/, or with only one member installed)"
    )


def train_main(argv: list[str] | None = None) -> int:
    """The ``train`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    eps = members()
    names = set(eps)
    env = os.environ.get("VISLAB_PACKAGE")
    if env and env not in names and not (argv and argv[0] in names):
        print(f"train: VISLAB_PACKAGE={env} is not an installed member\n" + _usage(names), file=sys.stderr)
        return 2
    member, rest = choose_member(argv, names)
    if member is None:
        print(_usage(names), file=sys.stderr)
        return 2
    entry = eps[member].load()
    return int(entry(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    """The ``vislab`` command: ``vislab methods`` and ``vislab toy ...``."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["toy"] and argv[1:2] == ["faces"]:
        from vislab.faces.cli import main as faces_main

        return int(faces_main(argv[2:]) or 0)
    if argv[:1] == ["toy"]:
        from vislab.toy.cli import main as toy_main

        return int(toy_main(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="vislab", description="vislab's shared tools.")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("methods", help="list the installed vislab packages")
    sub.add_parser("toy", help="toy world: vislab toy pretrain clip|sd, vislab toy faces")
    args = parser.parse_args(argv)
    if args.cmd == "methods":
        for name, ep in sorted(members().items()):
            print(f"{name}\t{ep.value}")
        return 0
    parser.print_help()
    return 0 if args.cmd is None else 2
