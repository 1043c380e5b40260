"""Device, precision, attention and seeding choices, in one place for every package."""

from __future__ import annotations

import os
import resource
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: `<pkg> --help` stays fast
    import torch

_CHOSEN: torch.device | None = None


def device() -> torch.device:
    """The device of this process: the one an inference command's ``--device`` chose (:func:`use_device`),
    else the best one here: this DDP worker's GPU (``cuda:LOCAL_RANK``) if there is a GPU, else ``cpu``.

    Frozen models loaded before ``fit`` go straight to their rank's GPU, not all to ``cuda:0``."""
    import torch
    if _CHOSEN is not None:
        return _CHOSEN
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0) % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def use_device(name: str | torch.device | None) -> torch.device:
    """Make ``name`` (checked by :func:`pick_device`; ``None``: the best one) what :func:`device` returns
    from now on in this process; returns it."""
    global _CHOSEN
    _CHOSEN = pick_device(name) if name not in (None, "") else None
    return device()


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` as a device (``None``: :func:`device`); a CUDA device that is not there is a user error."""
    import torch
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu") if _CHOSEN is None else _CHOSEN
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        from vislab.errors import VislabError

        raise VislabError(f"--device {name!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        from vislab.errors import VislabError

        raise VislabError(f"--device {name}: no such CUDA device here ({torch.cuda.device_count()} visible)")
    return dev


def add_device_argument(parser) -> None:  # noqa: ANN001 - an argparse parser
    """``--device`` for an inference command (default: :func:`device`, the GPU when there is one)."""
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def accelerator() -> str:
    """Lightning accelerator name for :func:`device`."""
    import torch
    return "gpu" if torch.cuda.is_available() else "cpu"


def precision(dev: torch.device | str | None = None) -> str:
    """Lightning precision: ``bf16-mixed`` on GPUs that support it, ``16-mixed`` on older GPUs, ``32-true`` on CPU."""
    import torch
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def autocast_dtype(dev: torch.device | str | None = None) -> torch.dtype | None:
    """dtype for ``torch.autocast`` outside Lightning (None on CPU: stay in fp32 there)."""
    import torch
    p = precision(dev)
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(p)


def setup(seed: int | None = 0, tf32: bool = True, threads: int | None = None) -> None:
    """Seed everything, enable TF32 and flash/memory-efficient SDPA on GPU, tame CPU threads.

    On CPU, ``OMP_WAIT_POLICY=PASSIVE`` should be exported before Python starts (the
    ``train`` script does it); two spin-waiting threads on a busy 2-core machine are many
    times slower.
    """
    import torch
    if seed is not None:
        import pytorch_lightning as pl

        pl.seed_everything(seed, workers=True, verbose=False)
    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        torch.backends.cuda.enable_flash_sdp(True)
        torch.backends.cuda.enable_mem_efficient_sdp(True)


def full_precision(dev: torch.device | str | None = None):
    """A context in which autocast is off (fp32 compute) on ``dev``'s type: for what the paper keeps in fp32
    under mixed precision (losses, metrics, softmax scores, a text tower with learnable context)."""
    from contextlib import nullcontext

    import torch

    kind = torch.device(dev).type if dev is not None else device().type
    if kind not in ("cuda", "cpu", "xpu", "mps"):
        return nullcontext()
    return torch.autocast(device_type=kind, enabled=False)


def sdpa_available() -> bool:
    """Whether ``torch.nn.functional.scaled_dot_product_attention`` exists (torch>=2.0)."""
    import torch
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def maybe_compile(module: torch.nn.Module, enabled: bool = False, **kwargs: Any) -> torch.nn.Module:
    """``torch.compile`` the module when asked and on GPU; returns it unchanged otherwise."""
    import torch
    if enabled and torch.cuda.is_available():
        return torch.compile(module, **kwargs)  # type: ignore[return-value]
    return module


def reset_peak_memory() -> None:
    """Reset the CUDA peak-memory counter (no-op on CPU)."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(dev: torch.device | str | None = None) -> float:
    """Peak memory in MiB: CUDA allocator peak on GPU, process max RSS on CPU."""
    import torch
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def is_main_process() -> bool:
    """True on global rank 0 (also before Lightning has launched DDP workers)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        if int(os.environ.get(var, "0")) != 0:
            return False
    return True
