"""``pvlr`` training run: validation mAP before -> after, KAP-only / CAP-only ablations, pictures."""

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
    model = {**cfg["model"], **model_overrides}
    return PVLRModule(classnames, model, cfg["clip"], cfg["optim"], cfg["loss"])


def train(run: Run) -> dict[str, Any]:
    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    dm = make_datamodule(cfg)
    for line in dm.report:
        run.log(line)
    module = make_module(cfg, dm.classnames)
    before = evaluate(module.model, dm.val_dataloader())
    run.log(f"val mAP before training: {before['mAP']:.2f} ({len(dm.classnames)} classes)")
    trainer = run.trainer()
    trainer.fit(module, datamodule=dm, ckpt_path=run.resume_checkpoint())
    if not trainer.is_global_zero:
        return {}
    module.to("cpu" if not torch.cuda.is_available() else module.device)
    after = evaluate(module.model, dm.val_dataloader())
    extra: dict[str, Any] = {"val_after": after, "val_before": before, "classes": len(dm.classnames), "ablations": {},
                             "data": dm.report}
    for fusion in cfg.get("ablations") or []:
        runtime.setup(int(cfg["seed"]))
        ab = make_module(cfg, dm.classnames, fusion=fusion)
        tcfg = {k: v for k, v in cfg["trainer"].items() if k not in ("strategy", "devices", "num_nodes", "checkpoint")}
        build_trainer(None, tcfg).fit(ab, datamodule=dm)
        extra["ablations"][fusion] = evaluate(ab.model, dm.val_dataloader())["mAP"]
        run.log(f"ablation fusion={fusion}: val mAP {extra['ablations'][fusion]:.2f}")
    plot_ap_per_class(run.path("ap_per_class.png"), module.model, dm)
    save_prediction_grid(run.path("predictions.png"), module.model, dm, threshold=float(cfg["threshold"]))
    plot_curve(run.path("val_map_curve.png"), run.out / "logs" / "metrics.csv", "val/mAP")
    return run.finish(metric="val_mAP", higher_is_better=True, before=before["mAP"], after=after["mAP"], **extra)

