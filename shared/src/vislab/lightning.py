"""Lightning defaults shared by every package: logger, progress bar, checkpoints, precision."""

from __future__ import annotations

import csv
import logging
import os
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

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


class AppendingCSVLogger(CSVLogger):
    """CSV logs that continue ``metrics.csv``: a second Trainer in the same run (a later stage) or a
    resumed run appends its rows instead of deleting the file (Lightning's CSVLogger deletes it).
    On resume, rows at or after the resumed step (written after the last checkpoint) are dropped."""

    @property
    def experiment(self):  # noqa: D102
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir)
        return self._experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(set(header))

    def truncate_from(self, step: int) -> None:
        """Drop rows logged at ``step`` or later (they were written after the checkpoint being resumed)."""
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if not r.get("step") or float(r["step"]) < step]
        if len(keep) == len(rows):
            return
        with open(self.metrics_file_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.metrics_keys)
            w.writeheader()
            w.writerows(keep)


class RunBookkeeping(Callback):
    """Ties a Trainer to its run: continues the CSV log on resume, and records Ctrl-C so the command
    exits 130 with a message (Lightning turns a KeyboardInterrupt inside ``fit`` into ``exit(1)``)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path and trainer.global_step > 0:
            for lg in trainer.loggers:
                exp = lg.experiment if isinstance(lg, AppendingCSVLogger) else None
                if isinstance(exp, _AppendingWriter):
                    exp.truncate_from(trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            from vislab.run import INTERRUPTED

            INTERRUPTED.add("fit")


class KillAfterCheckpoint(Callback):
    """Fault injection for the kill-and-resume tests: ``VISLAB_KILL_AFTER_STEP=N`` SIGKILLs the process
    at the first training batch after step ``N`` once a checkpoint of this run exists (as a crash or
    an OOM kill would, with no chance to clean up)."""

    def __init__(self, step: int, dirpath: str):
        self.step, self.dirpath = step, dirpath

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step > self.step and os.path.isfile(os.path.join(self.dirpath, "last.ckpt")):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def extra_loggers(run: Run) -> list[Any]:
    """The loggers asked for with ``--logger`` besides CSV, writing under ``<run>/logs``."""
    out: list[Any] = []
    for name in getattr(run, "loggers", ("csv",)):
        if name == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(str(run.out), name="logs", version="tensorboard"))
        elif name == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            out.append(WandbLogger(save_dir=str(run.out), name=run.out.name, project=run.package))
        elif name == "mlflow":
            from pytorch_lightning.loggers import MLFlowLogger

            out.append(MLFlowLogger(experiment_name=run.package, run_name=run.out.name,
                                    tracking_uri=f"file:{run.out / 'logs' / 'mlruns'}"))
    return out


def build_trainer(run: Run | None, trainer_cfg: dict[str, Any], callbacks: list[Callback] | None = None) -> pl.Trainer:
    """A ``pl.Trainer`` with vislab's defaults, overridable by ``trainer_cfg`` keys.

    Defaults: accelerator and precision from :mod:`vislab.runtime` (``32-true`` on CPU),
    one device, CSV logs and ``checkpoints/`` (with ``last.ckpt``) in the run folder, a
    rich progress bar, no model summary. ``trainer_cfg`` may add any Trainer keyword,
    e.g. ``strategy: ddp, devices: 2``.
    """
    quiet_lightning()
    from vislab.schema import check_trainer

    cfg = check_trainer(dict(trainer_cfg))
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

    cbs: list[Callback] = list(callbacks or []) + device_check_callbacks() + digest_callbacks() + [RunBookkeeping()]
    if kw.get("enable_progress_bar", True):
        cbs.append(progress_bar())
    if run is not None:
        kw.setdefault("default_root_dir", str(run.out))
        if kw.get("logger", True) is not False:
            kw["logger"] = [AppendingCSVLogger(str(run.out), name="logs", version=""), *extra_loggers(run)]
        if kw.get("enable_checkpointing", True) and not kw.get("fast_dev_run"):
            # no last-v1.ckpt when a second Trainer of the run (or a resumed one) saves into the same folder
            ckpt_cfg = {"enable_version_counter": False, **ckpt_cfg}
            cbs.append(ModelCheckpoint(dirpath=str(run.checkpoints), save_last=True, **ckpt_cfg))
            cbs.append(SaveLastOnTrainEnd(str(run.checkpoints)))
            if os.environ.get("VISLAB_KILL_AFTER_STEP") and not run.resume:
                cbs.append(KillAfterCheckpoint(int(os.environ["VISLAB_KILL_AFTER_STEP"]), str(run.checkpoints)))
    else:
        kw.setdefault("logger", False)
        kw.setdefault("enable_checkpointing", False)
    try:
        trainer = pl.Trainer(callbacks=cbs, **kw)
    except (TypeError, ValueError) as e:
        from vislab.errors import ConfigError

        raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None
    except Exception as e:
        if type(e).__name__ == "MisconfigurationException":
            from vislab.errors import ConfigError

            raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None
        raise
    if run is not None and hasattr(run, "trainers"):
        run.trainers.append(trainer)
    return trainer
