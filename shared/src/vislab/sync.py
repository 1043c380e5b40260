"""A check that data-parallel ranks stay in sync: each rank writes a digest of its weights after ``fit``.

Enabled by ``VISLAB_WEIGHTS_DIGEST=DIR`` (Trainers built by :func:`vislab.lightning.build_trainer` add the
callback): every rank writes ``DIR/rank<global rank>.json`` with the SHA-256 of each trainable parameter and of
the whole set. Identical digests on every rank mean DDP kept the replicas identical (multi-node runs included).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytorch_lightning as pl
import torch

ENV = "VISLAB_WEIGHTS_DIGEST"


def weights_digest(module: torch.nn.Module) -> dict[str, str]:
    """SHA-256 of every trainable parameter (name -> hex) and of all of them together (key ``"*"``)."""
    out: dict[str, str] = {}
    total = hashlib.sha256()
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        b = p.detach().float().cpu().contiguous().numpy().tobytes()
        out[name] = hashlib.sha256(b).hexdigest()
        total.update(name.encode())
        total.update(b)
    out["*"] = total.hexdigest()
    return out


class WeightsDigest(pl.Callback):
    """Write this rank's :func:`weights_digest` to ``folder/rank<r>.json`` when fitting ends."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"world_size": trainer.world_size, "step": trainer.global_step,
                                    "digest": weights_digest(pl_module)}, indent=1))


def digest_callbacks() -> list[pl.Callback]:
    """``[WeightsDigest(DIR)]`` when ``VISLAB_WEIGHTS_DIGEST=DIR`` is set, else ``[]``."""
    folder = os.environ.get(ENV)
    return [WeightsDigest(folder)] if folder else []
