"""``cfpl`` training run: leave-one-domain-out CFPL with HTER before -> after and a linear-probe baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from vislab.run import Run


@torch.no_grad()
def score_dataset(model, ds, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """P(live) of every frame of a :class:`cfpl.data.Frames` dataset, labels and video ids."""
    from torch.utils.data import DataLoader

    from cfpl.data import collate

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    s, y, v = [], [], []
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        s.append(model.live_score(b["image"].to(dev)).float().cpu())
        y.append(b["live"])
        v.extend(b["video"])
    model.train(was)
    return torch.cat(s).numpy(), torch.cat(y).numpy(), v


def evaluate(model, ds) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    from cfpl.metrics import evaluate_scores, video_scores

    s, y, v = score_dataset(model, ds)
    vs, vy = video_scores(s, y, v)
    return evaluate_scores(s, y, v), vs, vy


DEV_RULE = "EER threshold of the source-domain dev split (video level), fixed before the target is seen"
BENCHMARK_RULE = "EER threshold of the target test scores (benchmark convention of CFPL/FLIP/SSDG; uses target labels)"


def _add_threshold(ckpt_path, threshold: float) -> None:
    """Store the source-dev EER threshold and its rule in a checkpoint (atomic rewrite) for ``cfpl predict``."""
    from vislab.io import load_torch, save_torch

    ck = load_torch(ckpt_path)
    meta = ck.setdefault("cfpl_meta", {})
    meta["threshold"], meta["threshold_rule"] = float(threshold), DEV_RULE
    save_torch(ck, ckpt_path)


def dev_threshold(model, dev_ds) -> float:
    """EER threshold of the video-level scores of the source dev split."""
    from cfpl.metrics import eer_threshold, video_scores

    s, y, v = score_dataset(model, dev_ds)
    return float(eer_threshold(*video_scores(s, y, v)))


def train(run: Run) -> dict[str, Any]:

    from vislab.runtime import is_main_process, setup

    from cfpl.baseline import linear_probe
    from cfpl.build import build_model, checkpoint_meta
    from cfpl.data import FASDataModule, Frames
    from cfpl.datasets import build_datasets
    from cfpl.metrics import evaluate_scores
    from cfpl.module import CFPLModule
    from cfpl.plots import histogram_plot, roc_plot, training_curves

    cfg = run.config
    setup(int(cfg["seed"]), threads=cfg.get("threads"))
    splits = build_datasets(cfg["data"], seed=int(cfg["seed"]))
    model = build_model(cfg)
    size = int(model.clip.image_size)
    d = cfg["data"]
    dm = FASDataModule(splits["train"], splits["dev"], splits["test"], image_size=size, batch_size=int(d["batch_size"]),
                       steps_per_epoch=d.get("steps_per_epoch"), num_workers=int(d.get("num_workers", 0)), seed=int(cfg["seed"]),
                       crop_scale=float(d.get("crop_scale", 256 / 224)), live_fraction=float(d.get("live_fraction", 0.5)))
    run.log(f"sources {splits['sources']} -> target {splits['target']}: {len(dm.train_set)} train / {len(dm.val_set)} source-dev / "
            f"{len(dm.test_set)} target frames; CLIP {cfg['clip']['source']} (image {size}px)")
    main = is_main_process()
    target_eval = Frames(splits["test"], size, name="target")
    source_eval = Frames(splits["train"], size, name="source")
    dev_eval = Frames(splits["dev"], size, name="source dev")
    before = base = None
    if main:
        before, s_before, y_before = evaluate(model, target_eval)
        dev_before = dev_threshold(model, dev_eval)
        before_dev = evaluate_scores(s_before, y_before, threshold=dev_before)
        run.log(f"before training: target HTER {before['hter']:.4f} (target EER threshold), {before_dev['hter']:.4f} (dev threshold), AUC {before['auc']:.4f}")
        if cfg["baseline"]["enabled"]:
            b = cfg["baseline"]
            base = linear_probe(model.clip, source_eval, target_eval, steps=int(b["steps"]), lr=float(b["lr"]), seed=int(cfg["seed"]))
            run.log(f"plain-CLIP linear probe: target HTER {base['metrics']['hter']:.4f}, AUC {base['metrics']['auc']:.4f}")
    module = CFPLModule(model, optim=cfg["optim"], lambda_ptm=float(cfg["lambda_ptm"]), meta=checkpoint_meta(cfg, model.clip))
    # the balanced batch sampler shards the batches over the ranks itself; every rank evaluates the whole split
    trainer = run.trainer(use_distributed_sampler=False)
    module.eval_sharded = False
    trainer.fit(module, datamodule=dm, ckpt_path=run.resume_checkpoint())
    if not trainer.is_global_zero:
        return {}
    after, s_after, y_after = evaluate(model, target_eval)
    src = evaluate(model, source_eval)[0]
    thr = dev_threshold(model, dev_eval)
    after_dev = evaluate_scores(s_after, y_after, threshold=thr)
    run.log(f"after training: target HTER {after['hter']:.4f} (target EER threshold), {after_dev['hter']:.4f} at the source-dev threshold {thr:.3f}")
    last = run.checkpoints / "last.ckpt"
    if last.is_file():
        _add_threshold(last, thr)
    curves = {"CFPL before": (s_before, y_before), "CFPL after": (s_after, y_after)}
    if base is not None:
        curves["CLIP linear probe"] = (base["scores"], base["live"])
    roc_plot(run.path("roc.png"), curves, f"target domain {splits['target']} (unseen), video level")
    panels = {"CFPL before": (s_before, y_before, before["threshold"]), "CFPL after": (s_after, y_after, after["threshold"])}
    if base is not None:
        panels["CLIP linear probe"] = (base["scores"], base["live"], base["metrics"]["threshold"])
    histogram_plot(run.path("score_histograms.png"), panels, f"P(live) on target {splits['target']}")
    training_curves(run.path("training_curves.png"), run.out / "logs" / "metrics.csv")
    extra = {
        "protocol": f"{'-'.join(splits['sources'])}@{splits['target']}",
        "auc_before": before["auc"], "auc_after": after["auc"],
        "tpr_at_fpr1_before": before["tpr_at_fpr1"], "tpr_at_fpr1_after": after["tpr_at_fpr1"],
        "hter_dev_threshold_before": before_dev["hter"], "hter_dev_threshold_after": after_dev["hter"],
        "far_dev_threshold_after": after_dev["far"], "frr_dev_threshold_after": after_dev["frr"],
        "dev_threshold": thr, "threshold_rule": {"hter": BENCHMARK_RULE, "hter_dev_threshold": DEV_RULE, "checkpoint": DEV_RULE},
        "source_hter_after": src["hter"],
        "n_target_videos": after["n"],
        "trainable_parameters": sum(p.numel() for p in model.head_parameters()),
        "steps": int(trainer.global_step),
    }
    if base is not None:
        extra["baseline_clip_linear_probe"] = {k: base["metrics"][k] for k in ("hter", "auc", "tpr_at_fpr1")}
    return run.finish(metric="hter", higher_is_better=False, before=before["hter"], after=after["hter"], **extra)
