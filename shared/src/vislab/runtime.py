"""Device, precision, attention and seeding choices, in one place for every package."""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import torch


def device() -> torch.device:
    """The best device here: ``cuda`` if present, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def accelerator() -> str:
    """Lightning accelerator name for :func:`device`."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def precision(dev: torch.device | str | None = None) -> str:
    """Lightning precision: ``bf16-mixed`` on GPUs that support it, ``16-mixed`` on older GPUs, ``32-true`` on CPU."""
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def autocast_dtype(dev: torch.device | str | None = None) -> torch.dtype | None:
    """dtype for ``torch.autocast`` outside Lightning (None on CPU: stay in fp32 there)."""
    p = precision(dev)
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(p)


def setup(seed: int | None = 0, tf32: bool = True, threads: int | None = None) -> None:
    """Seed everything, enable TF32 and flash/memory-efficient SDPA on GPU, tame CPU threads.

    On CPU, ``OMP_WAIT_POLICY=PASSIVE`` should be exported before Python starts (the
    ``train`` script does it); two spin-waiting threads on a busy 2-core machine are many
    times slower.
    """
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


def sdpa_available() -> bool:
    """Whether ``torch.nn.functional.scaled_dot_product_attention`` exists (torch>=2.0)."""
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def maybe_compile(module: torch.nn.Module, enabled: bool = False, **kwargs: Any) -> torch.nn.Module:
    """``torch.compile`` the module when asked and on GPU; returns it unchanged otherwise."""
    if enabled and torch.cuda.is_available():
        return torch.compile(module, **kwargs)  # type: ignore[return-value]
    return module


def reset_peak_memory() -> None:
    """Reset the CUDA peak-memory counter (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(dev: torch.device | str | None = None) -> float:
    """Peak memory in MiB: CUDA allocator peak on GPU, process max RSS on CPU."""
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
