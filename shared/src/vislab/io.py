"""Safe file helpers: clear errors on bad input, atomic writes that never leave half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vislab.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise InputError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, f"{what} not found")
    if not p.is_file():
        raise InputError(p, f"{what} expected, but this is a directory")
    return p


def require_dir(path: str | Path, what: str = "directory") -> Path:
    """Return ``path`` as a Path if it is an existing directory, else raise InputError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, f"{what} not found")
    if not p.is_dir():
        raise InputError(p, f"{what} expected to be a directory, but it is a file")
    return p


def load_image(path: str | Path, mode: str = "RGB", size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as ``uint8`` array (H, W, C); corrupt files raise InputError naming the file."""
    from PIL import Image, UnidentifiedImageError

    p = require_file(path, "image")
    try:
        with Image.open(p) as im:
            im.load()
            im = im.convert(mode)
            if size is not None:
                wh = (size, size) if isinstance(size, int) else (size[1], size[0])
                im = im.resize(wh, Image.BICUBIC)
            return np.asarray(im).copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(p, f"cannot read image ({e.__class__.__name__}: {e})") from None


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files in ``folder``; an empty or missing folder raises InputError."""
    d = require_dir(folder, "image folder")
    files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(d, f"no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and an existing ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a half-written file."""
    import torch

    return atomic_write(path, lambda t: torch.save(obj, t))


def load_torch(path: str | Path, what: str = "checkpoint", map_location: str = "cpu") -> Any:
    """``torch.load`` with a clear error for a missing, truncated or foreign file."""
    import torch

    p = require_file(path, what)
    try:
        return torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling error means a bad file
        raise InputError(p, f"cannot load {what} ({e.__class__.__name__}: {str(e)[:200]})") from None


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (indent 2, numpy scalars converted)."""

    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")

    return atomic_write(path, lambda t: t.write_text(json.dumps(data, indent=2, default=default) + "\n"))
