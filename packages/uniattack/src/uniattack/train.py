"""``uniattack`` training run: Protocol-1-style toy UniAttackData, ACER before -> after at the dev EER
threshold with a per-attack breakdown, plus an unseen-attack protocol run beside it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from vislab.run import Run


@torch.no_grad()
def predict_dataset(model, ds, batch_size: int = 64) -> dict[str, Any]:
    """P(live), family probabilities, labels and attack names for every item of a :class:`Faces` dataset."""
    from torch.utils.data import DataLoader

    from uniattack.data import collate

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    p_live, p_fam, labels, attacks = [], [], [], []
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        s = model.scores(b["image"].to(dev))
        p_live.append(s["p_live"].double().cpu())  # float64: see UniAttack.scores
        p_fam.append(s["p_family"].double().cpu())
        labels.append(b["label"])
        attacks.extend(b["attack"])
    model.train(was)
    return {"p_live": torch.cat(p_live).numpy(), "p_family": torch.cat(p_fam).numpy(),
            "label": torch.cat(labels).numpy(), "attack": attacks}


def assess(model, dev_ds, test_ds) -> tuple[dict, dict]:
    """Test metrics at the dev EER threshold, with APCER per family and per attack type."""
    from uniattack.metrics import FAMILY_OF_LABEL, evaluate

    dev = predict_dataset(model, dev_ds)
    test = predict_dataset(model, test_ds)
    live = (test["label"] == 0).astype(int)
    fam = [FAMILY_OF_LABEL[int(v)] for v in test["label"]]
    r = evaluate(test["p_live"], live, dev["p_live"], (dev["label"] == 0).astype(int), family=fam, attack=test["attack"])
    attack_idx = test["label"] != 0
    if attack_idx.any():  # attack-family accuracy of the specific head on the attacks
        pred = test["p_family"][:, 1:].argmax(1) + 1
        r["family_accuracy_on_attacks"] = float((pred[attack_idx] == test["label"][attack_idx]).mean())
    return r, test


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
                             meta={**checkpoint_meta(cfg), "protocol": protocol})
    if tag == "main":
        trainer = run.trainer(max_epochs=max_epochs)
        ckpt = run.resume_checkpoint() if resume else None
    else:  # the side run keeps its checkpoints out of the main run's last.ckpt
        from vislab.lightning import build_trainer

        # one process: the DDP workers of the main run have exited by now
        tcfg = {**cfg.get("trainer", {}), "max_epochs": max_epochs, "logger": False, "enable_checkpointing": False,
                "strategy": "auto", "devices": 1}
        trainer = build_trainer(None, tcfg)
        ckpt = None
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    if not trainer.is_global_zero:
        return {}
    after, test_pred = assess(model, dev_eval, test_eval)
    return {"before": before, "after": after, "test": test_pred, "model": model, "steps": int(trainer.global_step)}


def _brief(r: dict) -> dict:
    keys = ("acer", "apcer", "bpcer", "acc", "auc", "eer", "threshold", "apcer_per_family", "apcer_per_attack", "family_accuracy_on_attacks")
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
    if last.is_file():  # the dev EER threshold, for `uniattack predict`
        from vislab.io import load_torch, save_torch

        ck = load_torch(last)
        ck.setdefault("uniattack_meta", {})["threshold"] = float(a["threshold"])
        save_torch(ck, last)
    run.log(f"[main] ACER {b['acer']:.4f} -> {a['acer']:.4f}, AUC {b['auc']:.4f} -> {a['auc']:.4f}")
    extra: dict[str, Any] = {"protocol": cfg["data"]["protocol"], "before_detail": _brief(b), "after_detail": _brief(a),
                             "auc_before": b["auc"], "auc_after": a["auc"], "acc_after": a["acc"], "eer_after": a["eer"],
                             "steps": main["steps"], "trainable_parameters": sum(p.numel() for p in main["model"].head_parameters())}
    curves = {f"{cfg['data']['protocol']} after": (main["test"]["p_live"], (main["test"]["label"] == 0).astype(int))}
    bl = cfg.get("baseline") or {}
    if bl.get("enabled"):  # plain CLIP on the same initialisation, data and steps: what TSP/UKM/SLPI add
        base = fit_protocol(run, baseline_config(cfg), str(cfg["data"]["protocol"]), int(cfg["trainer"].get("max_epochs", 1)), "baseline", False)
        bb, ba = base["before"], base["after"]
        run.log(f"[baseline] ACER {bb['acer']:.4f} -> {ba['acer']:.4f}, AUC {bb['auc']:.4f} -> {ba['auc']:.4f}")
        extra["baseline_run"] = {"protocol": cfg["data"]["protocol"], "model": dict(bl.get("model") or {}),
                                 "lambda_s": float(bl.get("lambda_s", 0.0)), "lambda_ukm": float(bl.get("lambda_ukm", 0.0)),
                                 "before": _brief(bb), "after": _brief(ba), "steps": base["steps"]}
        curves[f"{cfg['data']['protocol']} plain-CLIP baseline after"] = (base["test"]["p_live"], (base["test"]["label"] == 0).astype(int))
    u = cfg.get("unseen") or {}
    if u.get("enabled"):
        side = fit_protocol(run, cfg, str(u["protocol"]), int(u["max_epochs"]), "unseen", False)
        sb, sa = side["before"], side["after"]
        run.log(f"[unseen {u['protocol']}] ACER {sb['acer']:.4f} -> {sa['acer']:.4f}")
        extra["unseen_attack_run"] = {"protocol": u["protocol"], "before": _brief(sb), "after": _brief(sa), "steps": side["steps"]}
        curves[f"{u['protocol']} (unseen attacks) after"] = (side["test"]["p_live"], (side["test"]["label"] == 0).astype(int))
    t = main["test"]
    roc_plot(run.path("roc.png"), curves, "test ROC (live = positive)")
    histogram_plot(run.path("score_histograms.png"), t["p_live"], t["label"], a["threshold"], f"{cfg['data']['protocol']} test, dev EER threshold")
    pred = np.where(t["p_live"] >= a["threshold"], 0, t["p_family"][:, 1:].argmax(1) + 1)
    confusion_plot(run.path("confusion.png"), pred, t["label"], f"{cfg['data']['protocol']} test: decision + attack family")
    training_curves(run.path("training_curves.png"), run.out / "logs" / "metrics.csv")
    return run.finish(metric="acer", higher_is_better=False, before=b["acer"], after=a["acer"], **extra)
