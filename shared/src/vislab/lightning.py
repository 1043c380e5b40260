"""Lightning defaults shared by every package: logger, progress bar, checkpoints, precision."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from vislab import runtime

if TYPE_CHECKING:
    from vislab.run import Run


def quiet_lightning() -> None:
    """Silence Lightning's per-Trainer info lines (GPU/TPU available, tips); warnings still show."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress_bar() -> Callback:
    """Rich progress bar (tqdm where rich's terminal features are unavailable)."""
    try:
        return RichProgressBar(leave=True)
    except Exception:  # noqa: BLE001 - rich missing or unusable
        return TQDMProgressBar()


class SaveLastOnTrainEnd(Callback):
    """Write ``last.ckpt`` when fitting ends, also when ``max_steps`` stops mid-epoch (ModelCheckpoint only
    saves at epoch or validation ends), so ``--resume`` continues from the true last step."""

    def __init__(self, dirpath: str):
        self.dirpath = dirpath

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        saved = [getattr(cb, "_last_global_step_saved", None) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        if trainer.global_step in saved:
            return  # ModelCheckpoint already wrote this step (the usual epoch-end case): keep its last.ckpt
        trainer.save_checkpoint(f"{self.dirpath}/last.ckpt")


def build_trainer(run: Run | None, trainer_cfg: dict[str, Any], callbacks: list[Callback] | None = None) -> pl.Trainer:
    """A ``pl.Trainer`` with vislab's defaults, overridable by ``trainer_cfg`` keys.

    Defaults: accelerator and precision from :mod:`vislab.runtime` (``32-true`` on CPU),
    one device, CSV logs and ``checkpoints/`` (with ``last.ckpt``) in the run folder, a
    rich progress bar, no model summary. ``trainer_cfg`` may add any Trainer keyword,
    e.g. ``strategy: ddp, devices: 2``.
    """
    quiet_lightning()
    cfg = dict(trainer_cfg)
    ckpt_cfg = cfg.pop("checkpoint", {}) or {}
    kw: dict[str, Any] = {
        "accelerator": runtime.accelerator(),
        "devices": 1,
        "precision": runtime.precision(),
        "enable_model_summary": False,
        "log_every_n_steps": 1,
        "num_sanity_val_steps": 0,
    }
    kw.update(cfg)
    if kw.get("precision") == "auto":
        kw["precision"] = runtime.precision()
    from vislab.devices import device_check_callbacks
    from vislab.sync import digest_callbacks

    cbs: list[Callback] = list(callbacks or []) + device_check_callbacks() + digest_callbacks()
    if kw.get("enable_progress_bar", True):
        cbs.append(progress_bar())
    if run is not None:
        kw.setdefault("default_root_dir", str(run.out))
        if kw.get("logger", True) is not False:
            kw["logger"] = CSVLogger(str(run.out), name="logs", version="")
        if kw.get("enable_checkpointing", True) and not kw.get("fast_dev_run"):
            cbs.append(ModelCheckpoint(dirpath=str(run.checkpoints), save_last=True, **ckpt_cfg))
            cbs.append(SaveLastOnTrainEnd(str(run.checkpoints)))
    else:
        kw.setdefault("logger", False)
        kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(callbacks=cbs, **kw)
