"""On-disk cache of the spoof noise N = x - x_g.

Layout: ``<cache>/noise/<bridge_hash>/<key>.npy`` holding the raw (un-standardised) N
as a float16 (or float32) ``3 x H x W`` array. ``bridge_hash`` (:meth:`DDIMBridge.fingerprint`)
covers both diffusion models' weights, t*, K, the translator, the clamps and the resolution, so a
changed bridge never reads stale noise. The bridge is deterministic (DDIM, eta=0, no random draws), so
the same input in the same batch gives the identical N; once stored, the cache returns exactly the
stored array, so every later epoch and run sees the same bits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from vislab.io import atomic_path

_SAFE = re.compile(r"[^A-Za-z0-9._/-]+")


def safe_key(key: str) -> str:
    """A sample key as a relative path inside the cache (``video_id/frame``); odd characters replaced."""
    k = _SAFE.sub("_", str(key)).strip("/")
    parts = [p for p in k.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"empty cache key {key!r}")
    return "/".join(parts)


def content_key(x: torch.Tensor) -> str:
    """A key from the image's exact float32 contents (for inputs without a video/frame id)."""
    return "sha1-" + hashlib.sha1(x.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


class NoiseCache:
    """``get(keys)`` / ``put(keys, noise)`` of raw spoof noise for one bridge fingerprint."""

    def __init__(self, root: str | Path, bridge_hash: str, dtype: str = "float16"):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"cache dtype must be float16 or float32, got {dtype!r}")
        self.dir = Path(root).expanduser() / "noise" / bridge_hash
        self.dtype = np.dtype(dtype)

    def path(self, key: str) -> Path:
        return self.dir / f"{safe_key(key)}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> torch.Tensor | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return torch.from_numpy(np.load(p).astype(np.float32))
        except (ValueError, OSError, EOFError):
            p.unlink(missing_ok=True)  # a truncated entry: recompute it
            return None

    def put(self, key: str, noise: torch.Tensor) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = noise.detach().cpu().float().numpy().astype(self.dtype)
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr)

    def quantise(self, noise: torch.Tensor) -> torch.Tensor:
        """What a round trip through the cache returns (so fresh and cached values are identical)."""
        return torch.from_numpy(noise.detach().cpu().float().numpy().astype(self.dtype).astype(np.float32))


@torch.no_grad()
def compute_noise(
    bridge,
    images: Sequence[torch.Tensor] | torch.Tensor,
    keys: Sequence[str],
    cache: NoiseCache | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Raw spoof noise for each image ([-1,1], (3,H,W)); returns (N (n,3,H,W) float32, number computed).

    Cached entries are read; the others are computed with ``bridge`` in batches of ``batch_size`` and
    stored. Fresh values are passed through the cache's dtype so a first and a second call agree bit for bit.
    """
    from despoofdiff.model import spoof_noise

    n = len(keys)
    out: list[torch.Tensor | None] = [None] * n
    todo = []
    for i, k in enumerate(keys):
        got = cache.get(k) if cache is not None else None
        if got is None:
            todo.append(i)
        else:
            out[i] = got
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if progress and batches:
        from vislab.run import track

        batches = track(batches, progress)
    for idx in batches:
        x = torch.stack([images[i] for i in idx]).to(device).float()
        noise = spoof_noise(x, bridge(x)).cpu()
        for j, i in enumerate(idx):
            if cache is not None:
                cache.put(keys[i], noise[j])
                out[i] = cache.quantise(noise[j])
            else:
                out[i] = noise[j].clone()
    return torch.stack(out) if n else torch.empty(0), len(todo)  # type: ignore[arg-type]
