"""The on-disk cache of pretrained toy models.

Entries live in ``$VISLAB_CACHE/toy`` (default ``~/.cache/vislab/toy``), one folder per model,
named ``<kind>-<preset>-<hash>`` where the hash covers the full training config, the world's and
this module's version and (for SD) the text encoder's entry. Building holds a file lock, so a
concurrent caller waits and then reuses the result; the model is written into a temporary
folder that is renamed into place only after it is complete, with a marker listing every file
and its size. An entry whose marker is missing, whose files differ from it, or that does not
load is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = ".vislab-complete.json"
VERSION = 1  # bump when the world or the training code changes what a config produces


def cache_root() -> Path:
    """``$VISLAB_CACHE`` or ``~/.cache/vislab``."""
    env = os.environ.get("VISLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vislab"


def config_hash(obj: Any) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of ``obj`` (plus :data:`VERSION`)."""
    blob = json.dumps({"v": VERSION, "cfg": obj}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def write_marker(folder: Path, info: dict[str, Any] | None = None) -> None:
    """Record every file of ``folder`` with its size (the entry's completion marker)."""
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}
    (folder / MARKER).write_text(json.dumps({"files": files, "created": time.time(), **(info or {})}, indent=1, default=str))


def check_marker(folder: Path) -> str | None:
    """``None`` if the folder matches its marker, else what is wrong."""
    m = folder / MARKER
    if not m.is_file():
        return "no completion marker (an interrupted or foreign build)"
    try:
        files = json.loads(m.read_text())["files"]
    except (OSError, ValueError, KeyError) as e:
        return f"unreadable completion marker ({e.__class__.__name__})"
    for rel, size in files.items():
        p = folder / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != size:
            return f"{rel} has {p.stat().st_size} bytes, expected {size}"
    return None


def ensure(
    name: str,
    build: Callable[[Path], dict[str, Any] | None],
    validate: Callable[[Path], None] | None = None,
    root: Path | None = None,
) -> Path:
    """The folder ``root/toy/<name>``, built by ``build(tmp_folder)`` if absent or corrupt.

    ``validate(folder)`` raises if an existing entry does not load. Concurrent callers wait on
    a file lock; nobody ever sees a half-written folder.
    """
    from filelock import FileLock, Timeout

    from vislab.run import console

    base = (root or cache_root()) / "toy"
    base.mkdir(parents=True, exist_ok=True)
    final = base / name
    lock = FileLock(str(base / f"{name}.lock"))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        console().print(f"[yellow]toy cache[/yellow]: another process is building {final}; waiting for it")
        lock.acquire()
    try:
        if final.exists():
            problem = check_marker(final)
            if problem is None and validate is not None:
                try:
                    validate(final)
                except Exception as e:  # noqa: BLE001 - any loading failure means a bad entry
                    problem = f"does not load ({e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
            if problem is None:
                return final
            console().print(f"[yellow]toy cache[/yellow]: entry {final} is corrupt ({problem}); deleting and rebuilding it")
            shutil.rmtree(final)
        for stale in base.glob(f".tmp-{name}-*"):  # left by killed builds (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = base / f".tmp-{name}-{os.getpid()}"
        tmp.mkdir()
        try:
            info = build(tmp) or {}
            write_marker(tmp, {"name": name, **{k: v for k, v in info.items() if k in ("seconds_total",)}})
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        console().print(f"[green]toy cache[/green]: saved {final}")
        return final
    finally:
        lock.release()
