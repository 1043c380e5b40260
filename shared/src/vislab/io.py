"""Safe file helpers: clear errors on bad input, atomic writes that never leave half a file."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: `<pkg> --help` stays fast
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
    import numpy as np
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


def _numpy_globals() -> list[tuple[Any, str]]:
    """Numpy names a checkpoint may hold (scalars and arrays in metadata), under numpy 1 and 2 paths."""
    import numpy as np

    mult = getattr(np, "_core", np.core).multiarray  # type: ignore[attr-defined]
    out: list[tuple[Any, str]] = []
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(mult.scalar, f"{mod}.scalar"), (mult._reconstruct, f"{mod}._reconstruct")]
    out += [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for code in "?bBhHiIlLqQefdgFDGSUV":
        t = type(np.dtype(code))
        out.append((t, f"numpy.dtypes.{t.__name__}"))
    return out


class _Inert:
    """Stands in for a class a foreign checkpoint names: keeps its arguments, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = object.__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _inert_stand_ins(p: Path) -> list[tuple[Any, str]]:
    import torch

    names = torch.serialization.get_unsafe_globals_in_checkpoint(p)
    return [(type(n.rsplit(".", 1)[-1], (_Inert,), {"__module__": "vislab.io.inert"}), n) for n in names]


def load_torch(path: str | Path, what: str = "checkpoint", map_location: str = "cpu", foreign: bool = False, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)``: tensors, containers, numbers, strings and numpy data only.

    Nothing in the file can run code. A file that names any other Python object is refused with
    an InputError naming it; with ``foreign=True`` (a checkpoint from another code base whose
    weights we want, e.g. Lightning ``hyper_parameters`` holding that code's config classes)
    such objects load as inert stand-ins that keep their arguments and run nothing.
    """
    import torch

    p = require_file(path, what)
    allowed = _numpy_globals()
    try:
        if foreign:
            allowed += _inert_stand_ins(p)
        with torch.serialization.safe_globals(allowed):
            return torch.load(p, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"(?:unsupported (?:global:? )?GLOBAL|unrecognized function|Unsupported class) ([\w.<>]+)", msg, re.IGNORECASE)
        if m:
            raise InputError(p, f"refusing to load {what}: it names the Python object {m.group(1)} (only tensors and plain data are loaded)") from None
        lines = [x for x in msg.splitlines() if x.strip() and "Weights only load failed" not in x and "Please file an issue" not in x]
        if not lines:
            lines = ["not a PyTorch checkpoint, or a truncated one"]
        raise InputError(p, f"cannot load {what} ({(lines or [msg])[0][:200]})") from None
    except Exception as e:  # noqa: BLE001 - any other reading error means a bad file
        raise InputError(p, f"cannot load {what} ({e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None


_PICKLE_BUILTINS = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes",
                 "bytearray", "slice", "range", "object"},
    "collections": {"OrderedDict"},
    "_codecs": {"encode"},
    "copy_reg": {"_reconstructor"},
    "copyreg": {"_reconstructor"},
}
_PICKLE_NUMPY = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer", "frombuffer"}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and builtin containers/scalars and nothing else.

    Any other global (``os.system``, a class from some library) raises ``pickle.UnpicklingError``;
    ``copyreg._reconstructor`` is only allowed to build a builtin or numpy object.
    """

    def find_class(self, module: str, name: str) -> Any:
        if name in _PICKLE_BUILTINS.get(module, ()):
            obj = super().find_class(module, name)
            if module in ("copy_reg", "copyreg"):
                return _safe_reconstructor
            return obj
        if (module.startswith("numpy") and name in _PICKLE_NUMPY) or module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays and builtin types are read")


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    import copyreg

    import numpy as np

    ok = (np.ndarray, np.dtype, dict, list, tuple, set, frozenset, object, int, float, str, bytes)
    if not (isinstance(cls, type) and issubclass(cls, ok) and base in ok and (cls.__module__ in ("builtins",) or cls.__module__.startswith("numpy"))):
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r}")
    return copyreg._reconstructor(cls, base, state)


def safe_unpickle(file: IO[bytes], encoding: str = "ASCII") -> Any:
    """``pickle.load`` restricted to numpy arrays and builtin types (see :class:`SafeUnpickler`)."""
    return SafeUnpickler(file, encoding=encoding).load()


def load_pickle(path: str | Path, what: str = "pickle", encoding: str = "ASCII") -> Any:
    """Read a (gzip) pickle of numpy arrays and builtin types; anything else is an InputError."""
    p = require_file(path, what)
    opener = gzip.open if p.read_bytes()[:2] == b"\x1f\x8b" else open
    try:
        with opener(p, "rb") as f:
            return safe_unpickle(f, encoding)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - any unpickling error means a bad or unsafe file
        raise InputError(p, f"cannot read {what} ({e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None


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
