"""PVLR training.

- :func:`fit` trains PVLR on the data of a config and returns the trained module: what a researcher
  calls on their own data (``fit(cfg)`` with ``cfg["data"]`` pointing at COCO / VOC / NUS-WIDE / a
  generic folder).
- :func:`train` is the ``pvlr`` run: validation mAP before -> :func:`fit` -> after, the KAP-only /
  CAP-only ablations, pictures and ``metrics.json``.
"""

from __future__ import annotations

from typing import Any

import torch
from vislab import runtime
from vislab.lightning import build_trainer
from vislab.run import Run

from pvlr.data import MultiLabelDataModule
from pvlr.module import PVLRModule, evaluate
from pvlr.plots import plot_ap_per_class, plot_curve, save_prediction_grid


def make_datamodule(cfg: dict[str, Any]) -> MultiLabelDataModule:
    return MultiLabelDataModule(seed=int(cfg["seed"]), **cfg["data"])


def make_module(cfg: dict[str, Any], classnames: list[str], **model_overrides: Any) -> PVLRModule:
    """A fresh PVLR module; the toy CLIP is made first if the config names it and it is not cached yet."""
    from vislab.models import pretrain_toy

    pretrain_toy(cfg["clip"], "clip")
    model = {**cfg["model"], **model_overrides}
    return PVLRModule(classnames, model, cfg["clip"], cfg["optim"], cfg["loss"])


def fit(cfg: dict[str, Any], datamodule: MultiLabelDataModule | None = None, module: PVLRModule | None = None,
        run: Run | None = None) -> PVLRModule:
    """Train PVLR with ``cfg`` (a resolved ``pvlr`` config: ``data``, ``clip``, ``model``, ``optim``, ``loss``,
    ``trainer``) and return the trained module in eval mode.

    With a ``run`` the trainer logs and checkpoints into its folder and resumes from its ``last.ckpt``
    when it was started with ``--resume``; without one nothing is written.
    """
    dm = datamodule if datamodule is not None else make_datamodule(cfg)
    module = module if module is not None else make_module(cfg, dm.classnames)
    if run is not None:
        trainer = run.trainer()
        trainer.fit(module, datamodule=dm, ckpt_path=run.resume_checkpoint())
    else:
        tcfg = {k: v for k, v in cfg.get("trainer", {}).items() if k != "checkpoint"}
        trainer = build_trainer(None, tcfg)
        trainer.fit(module, datamodule=dm)
    return module.eval()


def train(run: Run) -> dict[str, Any]:
    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    dm = make_datamodule(cfg)
    for line in dm.report:
        run.log(line)
    module = make_module(cfg, dm.classnames)
    before = evaluate(module.model, dm.val_dataloader())
    run.log(f"val mAP before training: {before['mAP']:.2f} ({len(dm.classnames)} classes)")
    module = fit(cfg, dm, module, run)
    if module.global_rank != 0:  # DDP: the other ranks are done
        return {}
    module.to("cpu" if not torch.cuda.is_available() else module.device)
    after = evaluate(module.model, dm.val_dataloader())
    extra: dict[str, Any] = {"val_after": after, "val_before": before, "classes": len(dm.classnames), "ablations": {},
                             "data": dm.report}
    for fusion in cfg.get("ablations") or []:
        runtime.setup(int(cfg["seed"]))
        tcfg = {k: v for k, v in cfg["trainer"].items() if k not in ("strategy", "devices", "num_nodes")}
        ab = fit({**cfg, "trainer": tcfg}, dm, make_module(cfg, dm.classnames, fusion=fusion))
        extra["ablations"][fusion] = evaluate(ab.model, dm.val_dataloader())["mAP"]
        run.log(f"ablation fusion={fusion}: val mAP {extra['ablations'][fusion]:.2f}")
    plot_ap_per_class(run.path("ap_per_class.png"), module.model, dm)
    save_prediction_grid(run.path("predictions.png"), module.model, dm, threshold=float(cfg["threshold"]))
    plot_curve(run.path("val_map_curve.png"), run.out / "logs" / "metrics.csv", "val/mAP")
    return run.finish(metric="val_mAP", higher_is_better=True, before=before["mAP"], after=after["mAP"], **extra)
