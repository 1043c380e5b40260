"""``uniattack`` training run: Protocol-1-style toy UniAttackData, ACER before -> after at the dev EER
threshold with a per-attack breakdown, plus an unseen-attack protocol run beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from vislab.run import Run

SELECTION_RULE = "lowest dev ACER (dev EER threshold) over the validations, as the paper selects"
BEST = {"monitor": "val/acer", "mode": "min", "filename": "best", "save_top_k": 1, "auto_insert_metric_name": False}


@torch.no_grad()
def predict_dataset(model, ds, batch_size: int = 64) -> dict[str, Any]:
    """P(live), family probabilities, labels and attack names for every item of a :class:`Faces` dataset."""
    from torch.utils.data import DataLoader

    from uniattack.data import collate

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    p_live, p_fam, labels, attacks, videos = [], [], [], [], []
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        s = model.scores(b["image"].to(dev))
        p_live.append(s["p_live"].double().cpu())  # float64: see UniAttack.scores
        p_fam.append(s["p_family"].double().cpu())
        labels.append(b["label"])
        attacks.extend(b["attack"])
        videos.extend(b["video"])
    model.train(was)
    return {"p_live": torch.cat(p_live).numpy(), "p_family": torch.cat(p_fam).numpy(),
            "label": torch.cat(labels).numpy(), "attack": attacks, "video": videos}


def per_video(pred: dict[str, Any]) -> dict[str, Any]:
    """Frame predictions averaged per video (the video protocols' scoring): mean P(live) and mean family
    probabilities over the video's frames; the video's label and attack name (one per video)."""
    from vislab.metrics import video_scores

    v = video_scores(pred["p_live"], pred["video"], pred["label"], attack=pred["attack"])
    order: dict[str, list[int]] = {}
    for i, name in enumerate(pred["video"]):
        order.setdefault(name, []).append(i)
    fam = np.stack([pred["p_family"][idx].mean(0) for idx in order.values()])
    return {"p_live": v["scores"], "p_family": fam, "label": np.asarray(v["live"]), "attack": v["attack"], "video": v["videos"]}


def has_videos(pred: dict[str, Any]) -> bool:
    """True when some video contributes more than one frame."""
    return len(set(pred["video"])) < len(pred["video"])


def _evaluate(dev: dict, test: dict) -> dict:
    """Test metrics at the dev EER threshold, APCER per family and per attack type, family accuracy."""
    from uniattack.metrics import FAMILY_OF_LABEL, evaluate

    live = (test["label"] == 0).astype(int)
    fam = [FAMILY_OF_LABEL[int(v)] for v in test["label"]]
    r = evaluate(test["p_live"], live, dev["p_live"], (dev["label"] == 0).astype(int), family=fam, attack=test["attack"])
    attack_idx = test["label"] != 0
    if attack_idx.any():  # attack-family accuracy of the specific head on the attacks
        pred = test["p_family"][:, 1:].argmax(1) + 1
        r["family_accuracy_on_attacks"] = float((pred[attack_idx] == test["label"][attack_idx]).mean())
    return r


def assess(model, dev_ds, test_ds) -> tuple[dict, dict]:
    """Frame-level test metrics at the dev EER threshold; when the videos have several frames, also the
    video level (``r["video_level"]``: dev and test frame scores averaged per video, dev video EER threshold)."""
    dev = predict_dataset(model, dev_ds)
    test = predict_dataset(model, test_ds)
    r = _evaluate(dev, test)
    if has_videos(test):
        rv = _evaluate(per_video(dev), per_video(test))
        r["video_level"] = {**_brief(rv), "n_videos": rv["n"]}
    return r, test


class KeepBest(pl.Callback):
    """Keeps (in memory) the trainable weights of the validation with the lowest dev ACER, for the side runs
    that write no checkpoint files; ``restore`` loads them back."""

    def __init__(self, monitor: str = "val/acer"):
        self.monitor, self.best, self.state, self.step = monitor, None, None, None

    def on_validation_end(self, trainer, pl_module) -> None:
        v = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or v is None:
            return
        if self.best is None or float(v) < self.best:
            self.best, self.step = float(v), int(trainer.global_step)
            self.state = {k: p.detach().cpu().clone() for k, p in pl_module.named_parameters() if p.requires_grad}

    def restore(self, module) -> bool:
        if self.state is None:
            return False
        module.load_state_dict(self.state, strict=False)
        return True


def baseline_config(cfg: dict) -> dict:
    """The config of the plain-CLIP baseline run: same data, initialisation, steps and optimiser, with the
    ``baseline.model`` switches (default: unified logits from the fixed teacher prompts, no SLPI) and
    ``baseline.lambda_s`` / ``baseline.lambda_ukm`` (default 0: only the live/attack CE)."""
    b = cfg.get("baseline") or {}
    return {**cfg, "model": {**(cfg.get("model") or {}), **dict(b.get("model") or {})},
            "lambda_s": float(b.get("lambda_s", 0.0)), "lambda_ukm": float(b.get("lambda_ukm", 0.0))}


def fit_protocol(run: Run, cfg: dict, protocol: str, max_epochs: int, tag: str, resume: bool) -> dict:
    """Build, assess (before), train and assess (after) one protocol; returns metrics and scores."""
    from vislab.runtime import is_main_process

    from uniattack.build import build_model, checkpoint_meta
    from uniattack.data import Faces, UniAttackDataModule, build_protocol
    from uniattack.module import UniAttackModule

    if tag != "main":  # every side run starts from the same seed as the main run (same init and batches where shared)
        import pytorch_lightning as pl

        pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    splits = build_protocol(cfg["data"], protocol, seed=int(cfg["seed"]))
    model = build_model(cfg)
    size = int(model.clip.image_size)
    d = cfg["data"]
    dm = UniAttackDataModule(splits, size, batch_size=int(d["batch_size"]), steps_per_epoch=d.get("steps_per_epoch"),
                             num_workers=int(d.get("num_workers", 0)), augment=bool(d.get("augment", True)),
                             crop_scale=float(d.get("crop_scale", 300 / 224)), rotate=bool(d.get("rotate", True)),
                             jitter=bool(d.get("jitter", True)))
    run.log(f"[{tag}] protocol {protocol}: {len(dm.train_set)} train / {len(dm.dev_set)} dev / {len(dm.test_set)} test images")
    dev_eval, test_eval = Faces(splits["dev"], size, name="dev"), Faces(splits["test"], size, name="test")
    before = assess(model, dev_eval, test_eval)[0] if is_main_process() else None
    module = UniAttackModule(model, optim=cfg["optim"], lambda_s=float(cfg["lambda_s"]), lambda_ukm=float(cfg["lambda_ukm"]),
                             meta={**checkpoint_meta(cfg, model.clip), "protocol": protocol}, video_level=video_protocol(cfg))
    keep = None
    if tag == "main":  # best.ckpt: lowest dev ACER; last.ckpt: the end of training (for --resume)
        trainer = run.trainer(max_epochs=max_epochs, checkpoint={**BEST, **dict(cfg.get("trainer", {}).get("checkpoint") or {})})
        ckpt = run.resume_checkpoint() if resume else None
    else:  # the side run keeps its checkpoints out of the main run's folder; its best weights stay in memory
        from vislab.lightning import build_trainer

        # one process: the DDP workers of the main run have exited by now
        tcfg = {**cfg.get("trainer", {}), "max_epochs": max_epochs, "logger": False, "enable_checkpointing": False,
                "strategy": "auto", "devices": 1}
        tcfg.pop("checkpoint", None)
        keep = KeepBest()
        trainer = build_trainer(None, tcfg, callbacks=[keep])
        ckpt = None
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    if not trainer.is_global_zero:
        return {}
    steps = int(trainer.global_step)
    out: dict[str, Any] = {"model": model, "module": module, "steps": steps, "before": before, "dev_eval": dev_eval}
    # the weights at the end of training: their dev thresholds go into last.ckpt for `predict`
    out["last_thresholds"] = dev_thresholds(model, dev_eval)
    selected: dict[str, Any] = {"rule": SELECTION_RULE}
    cb = getattr(trainer, "checkpoint_callback", None) if tag == "main" else None
    best_path = Path(cb.best_model_path) if cb is not None and cb.best_model_path else None
    if best_path is not None and best_path.is_file():
        from vislab.io import load_torch

        ck = load_torch(best_path)
        module.load_state_dict(ck["state_dict"])
        selected.update(checkpoint=f"checkpoints/{best_path.name}", step=int(ck.get("global_step", 0)), epoch=int(ck.get("epoch", 0)),
                        dev_acer=float(cb.best_model_score))
        out["best_path"] = best_path
    elif keep is not None and keep.restore(module):
        selected.update(checkpoint="in memory (side run)", step=keep.step, dev_acer=keep.best)
    else:
        selected.update(checkpoint="checkpoints/last.ckpt" if tag == "main" else "end of training (side run)", step=steps,
                        note="no validation ran (trainer.check_val_every_n_epoch > max_epochs): the last weights are used")
    out["selected"] = selected
    after, test_pred = assess(model, dev_eval, test_eval)
    out.update(after=after, test=test_pred)
    return out


def video_protocol(cfg: dict) -> bool:
    """Real UniAttackData video lists: scored per video (mean of the frames), selected on the video-level dev ACER."""
    return str(cfg["data"].get("source", "toy")) != "toy" and str(cfg["data"].get("list_kind", "image")) == "video"


def dev_thresholds(model, dev_ds) -> dict[str, float]:
    """Dev EER thresholds on P(live): frame level, and video level when videos have several frames."""
    from vislab.metrics import threshold_at_eer

    dev = predict_dataset(model, dev_ds)
    out = {"threshold": float(threshold_at_eer(dev["p_live"], (dev["label"] == 0).astype(int)))}
    if has_videos(dev):
        v = per_video(dev)
        out["threshold_video"] = float(threshold_at_eer(v["p_live"], (v["label"] == 0).astype(int)))
    return out


def _store_thresholds(path: Path, thresholds: dict[str, float], selected: dict | None = None) -> None:
    from vislab.io import load_torch, save_torch

    ck = load_torch(path)
    meta = ck.setdefault("uniattack_meta", {})
    meta.update(thresholds)
    meta["threshold_rule"] = "EER threshold of the dev split (P(live) >= threshold: live)"
    if selected is not None:
        meta["selected"] = selected
    save_torch(ck, path)


def _brief(r: dict) -> dict:
    keys = ("acer", "apcer", "bpcer", "acc", "auc", "eer", "threshold", "apcer_per_family", "apcer_per_attack", "family_accuracy_on_attacks",
            "video_level")
    return {k: r[k] for k in keys if k in r}


def train(run: Run) -> dict[str, Any]:
    from vislab.runtime import setup

    from uniattack.plots import confusion_plot, histogram_plot, roc_plot, training_curves

    cfg = run.config
    setup(int(cfg["seed"]), threads=cfg.get("threads"))
    main = fit_protocol(run, cfg, str(cfg["data"]["protocol"]), int(cfg["trainer"].get("max_epochs", 1)), "main", run.resume)
    if not main:
        return {}
    b, a = main["before"], main["after"]
    last = run.checkpoints / "last.ckpt"
    if last.is_file():  # the dev EER thresholds of the last weights, for `uniattack predict`
        _store_thresholds(last, main["last_thresholds"])
    if main.get("best_path") is not None:  # the selected weights' thresholds, and how they were selected
        th = {"threshold": float(a["threshold"])}
        if "video_level" in a:
            th["threshold_video"] = float(a["video_level"]["threshold"])
        _store_thresholds(main["best_path"], th, main["selected"])
    level = "video" if video_protocol(cfg) and "video_level" in a else "frame"
    head_b = b.get("video_level", b) if level == "video" else b
    head_a = a["video_level"] if level == "video" else a
    run.log(f"[main] ACER {head_b['acer']:.4f} -> {head_a['acer']:.4f} ({level} level), AUC {head_b['auc']:.4f} -> {head_a['auc']:.4f}; "
            f"evaluated {main['selected']['checkpoint']}")
    extra: dict[str, Any] = {"protocol": cfg["data"]["protocol"], "headline_level": level, "checkpoint": main["selected"],
                             "before_detail": _brief(b), "after_detail": _brief(a),
                             "auc_before": head_b["auc"], "auc_after": head_a["auc"], "acc_after": head_a["acc"], "eer_after": head_a["eer"],
                             "steps": main["steps"], "trainable_parameters": sum(p.numel() for p in main["model"].head_parameters())}
    curves = {f"{cfg['data']['protocol']} after": (main["test"]["p_live"], (main["test"]["label"] == 0).astype(int))}
    bl = cfg.get("baseline") or {}
    if bl.get("enabled"):  # plain CLIP on the same initialisation, data and steps: what TSP/UKM/SLPI add
        base = fit_protocol(run, baseline_config(cfg), str(cfg["data"]["protocol"]), int(cfg["trainer"].get("max_epochs", 1)), "baseline", False)
        bb, ba = base["before"], base["after"]
        run.log(f"[baseline] ACER {bb['acer']:.4f} -> {ba['acer']:.4f}, AUC {bb['auc']:.4f} -> {ba['auc']:.4f}")
        extra["baseline_run"] = {"protocol": cfg["data"]["protocol"], "model": dict(bl.get("model") or {}),
                                 "lambda_s": float(bl.get("lambda_s", 0.0)), "lambda_ukm": float(bl.get("lambda_ukm", 0.0)),
                                 "before": _brief(bb), "after": _brief(ba), "steps": base["steps"], "checkpoint": base["selected"]}
        curves[f"{cfg['data']['protocol']} plain-CLIP baseline after"] = (base["test"]["p_live"], (base["test"]["label"] == 0).astype(int))
    u = cfg.get("unseen") or {}
    if u.get("enabled"):
        side = fit_protocol(run, cfg, str(u["protocol"]), int(u["max_epochs"]), "unseen", False)
        sb, sa = side["before"], side["after"]
        run.log(f"[unseen {u['protocol']}] ACER {sb['acer']:.4f} -> {sa['acer']:.4f}")
        extra["unseen_attack_run"] = {"protocol": u["protocol"], "before": _brief(sb), "after": _brief(sa), "steps": side["steps"],
                                      "checkpoint": side["selected"]}
        curves[f"{u['protocol']} (unseen attacks) after"] = (side["test"]["p_live"], (side["test"]["label"] == 0).astype(int))
    t = main["test"]
    roc_plot(run.path("roc.png"), curves, "test ROC (live = positive)")
    histogram_plot(run.path("score_histograms.png"), t["p_live"], t["label"], a["threshold"], f"{cfg['data']['protocol']} test, dev EER threshold")
    pred = np.where(t["p_live"] >= a["threshold"], 0, t["p_family"][:, 1:].argmax(1) + 1)
    confusion_plot(run.path("confusion.png"), pred, t["label"], f"{cfg['data']['protocol']} test: decision + attack family")
    training_curves(run.path("training_curves.png"), run.out / "logs" / "metrics.csv")
    return run.finish(metric="acer", higher_is_better=False, before=head_b["acer"], after=head_a["acer"], **extra)
