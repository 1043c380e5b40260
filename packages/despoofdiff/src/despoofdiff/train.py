"""``despoofdiff`` training: stage 1 (two diffusion models), spoof-noise precomputation, stage 2 (classifier).

Headline: test ACER of the two-stream classifier before (random init) and after training, with the
cross-domain HTER, AUC and the RGB-only / noise-only ablations beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vislab.errors import ConfigError, VislabError
from vislab.run import Run

from despoofdiff.data import (
    ClassifierDataModule,
    ClassifierDataset,
    DiffusionDataModule,
    FaceItems,
    ImagesView,
)
from despoofdiff.model import unet_config

# --------------------------------------------------------------------------- helpers


def stage_trainer(run: Run, name: str, steps: int, checkpoint_dir: Path | None, **extra: Any):
    """A Trainer for one stage with its own CSV log (``logs/<name>``) and checkpoint folder."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger
    from vislab.lightning import build_trainer

    cfg = {**dict(run.config.get("trainer", {}) or {}), **extra}
    user_max = cfg.get("max_steps")
    cfg["max_steps"] = int(steps) if user_max in (None, -1) else min(int(steps), int(user_max))
    cfg.pop("checkpoint", None)
    cfg.setdefault("max_epochs", -1)
    cfg["logger"] = CSVLogger(str(run.out), name="logs", version=name)
    cfg["default_root_dir"] = str(run.out)
    callbacks = []
    if checkpoint_dir is not None and not cfg.get("fast_dev_run"):
        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True))
        cfg["enable_checkpointing"] = True
    else:
        cfg["enable_checkpointing"] = False
    return build_trainer(None, cfg, callbacks=callbacks)


def save_last(trainer, path: Path) -> None:
    """Write ``path`` (a stage's last.ckpt) after fit, atomically: Lightning's epoch-end checkpoint misses a
    ``max_steps`` that ends mid-epoch. Called on every rank (Lightning's save has a barrier); rank 0 renames."""
    import os

    if trainer.fast_dev_run or not trainer.checkpoint_callbacks:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(str(tmp))
    if trainer.is_global_zero and tmp.is_file():
        os.replace(tmp, path)


def resume_path(run: Run, path: Path) -> str | None:
    """``path`` when --resume was given and it exists (each stage resumes from its own last.ckpt)."""
    return str(path) if run.resume and path.is_file() else None


def build_data(cfg: dict[str, Any]) -> dict[str, FaceItems]:
    """``{"train", "dev", "test"[, "cross"]}`` FaceItems for the configured source and protocol."""
    from despoofdiff.sources import load_source

    return load_source(cfg["data"])


def load_dm_checkpoint(path: str, domain: str):
    """A trained DiffusionModule checkpoint (stage 1 of an earlier run) -> its denoiser."""
    from despoofdiff.commands import load_module
    from despoofdiff.module import DiffusionModule

    m = load_module(path, DiffusionModule)
    if m.hparams.domain != domain:
        raise VislabError(f"{path}: this diffusion checkpoint is the {m.hparams.domain} model, expected {domain}")
    return m


def train_diffusion(run: Run, items: FaceItems, domain: str, unet_cfg: dict[str, Any], fold: int | None = None):
    """Stage 1 for one domain: fit a DiffusionModule on the live (genuine) or spoof training frames.

    ``fold`` (cross-fitting): the models of fold k see only the training frames outside fold k; their
    checkpoints live in ``checkpoints/crossfit/f<k>/dm_<domain>/``."""
    from despoofdiff.model import load_unet
    from despoofdiff.module import DiffusionModule

    d = run.config["diffusion"]
    if d.get(f"{domain}_checkpoint"):
        return load_dm_checkpoint(d[f"{domain}_checkpoint"], domain), 0.0
    init = None
    if d.get(f"init_{domain}"):
        pre = load_unet(d[f"init_{domain}"])
        unet_cfg = {k: v for k, v in dict(pre.config).items() if not k.startswith("_")}
        init = pre.state_dict()
    module = DiffusionModule(
        unet_cfg, domain, lr=float(d["lr"]), weight_decay=float(d["weight_decay"]), ema_decay=float(d["ema_decay"]),
        num_train_timesteps=int(d["num_train_timesteps"]), beta_schedule=d["beta_schedule"], init_state=init,
        gradient_checkpointing=bool(d["gradient_checkpointing"]),
    )
    dm = DiffusionDataModule(items, live=(domain == "genuine"), batch_size=int(d["batch_size"]), num_workers=int(run.config["data"]["num_workers"]), hflip=bool(d["hflip"]))
    name = f"dm_{domain}" if fold is None else f"dm_{domain}_f{fold}"
    ckdir = run.path("checkpoints", f"dm_{domain}") if fold is None else run.path("checkpoints", "crossfit", f"f{fold}", f"dm_{domain}")
    trainer = stage_trainer(run, name, int(d["steps"]), ckdir)
    where = "" if fold is None else f" (cross-fit fold {fold}: frames outside fold {fold})"
    run.log(f"stage 1: {domain} diffusion model on {len(dm.ds)} frames{where}, {trainer.max_steps} steps")
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(run, ckdir / "last.ckpt"))
    save_last(trainer, ckdir / "last.ckpt")
    loss = trainer.callback_metrics.get(f"{domain}/train_loss")
    run.log(f"  {domain} DM done in {time.time() - t0:.1f} s, last loss {float(loss) if loss is not None else float('nan'):.4f}")
    return module.cpu().eval(), float(loss) if loss is not None else float("nan")


def crossfit_folds(items: FaceItems, k: int) -> np.ndarray:
    """(n,) fold index in 0..k-1 of every training frame: identities (else videos) in sorted order are dealt
    round-robin to the folds, so all frames of one person (or video) share a fold."""
    groups = items.groups()
    lives = items.lives()
    kind: dict[str, set[int]] = {}
    for g, y in zip(groups, lives.tolist()):
        kind.setdefault(g, set()).add(int(y))
    # stratified: live-only, spoof-only and mixed groups (videos / identities) are dealt separately
    rank: dict[str, int] = {}
    for cls in sorted({tuple(sorted(v)) for v in kind.values()}):
        for i, g in enumerate(sorted(g for g, v in kind.items() if tuple(sorted(v)) == cls)):
            rank[g] = i % k
    folds = np.array([rank[g] for g in groups], dtype=np.int64)
    for j in range(k):
        outside = lives[folds != j]
        if not ((outside == 1).any() and (outside == 0).any()):
            raise ConfigError(f"bridge.crossfit={k}: the training split has too few identities/videos of each class for {k} folds "
                              f"(the frames outside fold {j} lack live or spoof ones); use bridge.crossfit 0")
    return folds


def make_classifier(cfg: dict[str, Any], streams: str, unet_g: dict[str, Any], unet_s: dict[str, Any] | None):
    from despoofdiff.module import ClassifierModule

    c, b, d = cfg["classifier"], cfg["bridge"], cfg["diffusion"]
    return ClassifierModule(
        classifier={"width": int(c["width"]), "blocks": int(c["blocks"]), "streams": streams, "image_input": c["image_input"], "theta": float(c["theta"]), "head_width": int(c["head_width"])},
        bridge={k: b[k] for k in ("translator", "t_star", "steps", "clamp_encode", "clamp_decode")},
        unet_genuine=unet_g,
        unet_spoof=unet_s,
        resolution=int(cfg["data"]["resolution"]),
        noise_mode=c["noise_mode"],
        lr=float(c["lr"]), weight_decay=float(c["weight_decay"]), lr_step_epochs=int(c["lr_step_epochs"]), lr_gamma=float(c["lr_gamma"]),
        cdl_weight=float(c["cdl_weight"]), num_train_timesteps=int(d["num_train_timesteps"]), beta_schedule=d["beta_schedule"],
    )


@torch.no_grad()
def scores_of(module, ds: ClassifierDataset, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """(frame scores, live, attack types, video ids) of a ClassifierDataset in eval mode."""
    from torch.utils.data import DataLoader

    from despoofdiff.model import liveness_score

    was = module.training
    module.eval()
    s, y, a, v = [], [], [], []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False):
        d = module(batch["x"], batch["noise"])
        s.append(liveness_score(d))
        y.append(batch["live"])
        a += list(batch["attack"])
        v += list(batch["video"])
    module.train(was)
    return torch.cat(s), torch.cat(y), a, v


def evaluate_split(module, sets: dict[str, ClassifierDataset]) -> dict[str, Any]:
    """Dev threshold at EER, then APCER/BPCER/ACER on test and HTER on the cross-domain set."""
    from despoofdiff.metrics import eer_threshold, evaluate

    s_dev, y_dev, _, _ = scores_of(module, sets["dev"])
    thr, dev_eer = eer_threshold(s_dev, y_dev)
    out: dict[str, Any] = {"threshold": thr, "dev_eer": dev_eer}
    raw = {}
    for name in ("test", "cross"):
        if name not in sets:
            continue
        s, y, a, v = scores_of(module, sets[name])
        out[name] = evaluate(s, y, thr, a)
        raw[name] = (s.numpy(), y.numpy())
        if len(set(v)) < len(v):  # several frames per video: the video score is the mean frame score
            import vislab.metrics as vm

            vs = vm.video_scores(s.numpy(), v, y.numpy(), a)
            out[name].update({f"video_{k}": val for k, val in evaluate(vs["scores"], vs["live"], thr, vs["attack"]).items()})
    return {"metrics": out, "raw": raw}


# --------------------------------------------------------------------------- train


def train(run: Run) -> dict[str, Any]:
    from vislab import runtime

    from despoofdiff.cache import NoiseCache, compute_noise
    from despoofdiff.pictures import save_despoof_grid, save_roc, save_samples
    from despoofdiff.sources import DEFAULT_PROTOCOL

    cfg = run.config
    runtime.setup(int(cfg["seed"]), threads=cfg.get("threads"))
    c, b, d = cfg["classifier"], cfg["bridge"], cfg["diffusion"]
    if c["streams"] not in ("both", "rgb", "noise"):
        raise ConfigError(f"classifier.streams must be both, rgb or noise, got {c['streams']!r}")
    res = int(cfg["data"]["resolution"])
    timings: dict[str, float] = {}

    t0 = time.time()
    data = build_data(cfg)
    timings["data_s"] = round(time.time() - t0, 2)
    run.log("data: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()))

    # ---- stage 1: the two diffusion models (protocol training split only). Cross-fitting (bridge.crossfit = k
    # >= 2): the training frames are split into k folds by identity (else video); the pair of fold j is fitted
    # on the frames outside fold j and de-spoofs fold j, so no training frame's N comes from a model that saw
    # it. Dev/test/cross frames (and predict) use the pair of fold 0, which never saw them either.
    ucfg = unet_config(d["unet"], res, **(d.get("unet_overrides") or {}))
    ddib = b["translator"] == "ddib"
    k = int(b.get("crossfit") or 0)
    if k >= 2 and (d.get("genuine_checkpoint") or d.get("spoof_checkpoint")):
        run.log("bridge.crossfit ignored: given diffusion checkpoints were fitted on the whole training split")
        k = 0
    t0 = time.time()
    pairs: list[tuple[Any, Any]] = []
    losses: dict[str, float] = {}
    folds = crossfit_folds(data["train"], k) if k >= 2 else None
    for j in range(k if folds is not None else 1):
        fit_items = data["train"] if folds is None else data["train"].subset(np.flatnonzero(folds != j), name=f"train outside fold {j}")
        fold = None if folds is None else j
        dm_g, loss_g = train_diffusion(run, fit_items, "genuine", ucfg, fold)
        dm_s, loss_s = train_diffusion(run, fit_items, "spoof", ucfg, fold) if ddib else (None, float("nan"))
        pairs.append((dm_g, dm_s))
        tag = "" if fold is None else f"_f{j}"
        losses[f"genuine{tag}"], losses[f"spoof{tag}"] = loss_g, loss_s
    dm_g, dm_s = pairs[0]
    timings["diffusion_s"] = round(time.time() - t0, 2)

    def classifier_with(pair, streams: str):
        g, sp = pair
        m = make_classifier(cfg, streams, dict(g.denoiser().config), dict(sp.denoiser().config) if sp is not None else None)
        m.set_diffusion(g.denoiser(), sp.denoiser() if sp is not None else None)
        return m

    # ---- the classifier module carries the bridge (both DMs of fold 0, frozen)
    torch.manual_seed(int(cfg["seed"]))
    model = classifier_with(pairs[0], c["streams"])
    bridges = [model.bridge] + [classifier_with(p, c["streams"]).bridge for p in pairs[1:]]

    # ---- spoof noise for every frame, cached on disk under the bridge fingerprint
    cache_root = Path(b["cache_dir"]).expanduser() if b.get("cache_dir") else run.out / "cache"
    fp = model.bridge.fingerprint(res)
    noise: dict[str, torch.Tensor] = {}
    t0 = time.time()
    computed = 0
    dev = runtime.device()
    for name, items in data.items():
        keys = [items[i]["key"] for i in range(len(items))]
        n_all = torch.zeros(len(items), 3, res, res)
        parts = [(0, np.arange(len(items)))] if (name != "train" or folds is None) else [(j, np.flatnonzero(folds == j)) for j in range(k)]
        for j, idx in parts:
            br = bridges[j].to(dev)  # float32 on every device (DDIM inversion is precision-sensitive)
            cache = NoiseCache(cache_root, br.fingerprint(res), b["cache_dtype"])
            sub = items.subset(idx) if len(idx) < len(items) else items
            label = f"de-spoofing {name}" + (f" (fold {j})" if len(parts) > 1 else "")
            n_part, got = compute_noise(br, ImagesView(sub), [keys[i] for i in idx], cache, int(b["batch_size"]), device=dev, progress=label)
            n_all[torch.as_tensor(idx)] = n_part
            computed += got
            br.cpu()
        noise[name] = n_all
    timings["bridge_s"] = round(time.time() - t0, 2)
    run.log(f"spoof noise: {computed} computed, {sum(len(v) for v in data.values()) - computed} from cache ({cache_root / 'noise'}), {timings['bridge_s']} s")
    noise_stats = {}
    for name, items in data.items():
        lv = torch.as_tensor(items.lives())
        mag = noise[name].abs().flatten(1).mean(1)
        noise_stats[name] = {"live_mean_abs_N": float(mag[lv == 1].mean()) if (lv == 1).any() else None, "spoof_mean_abs_N": float(mag[lv == 0].mean()) if (lv == 0).any() else None}

    depth_size = res // (2 ** int(c["blocks"]))
    sets = {name: ClassifierDataset(items, noise[name], depth_size, train=(name == "train"), hflip=bool(c["hflip"]), color_jitter=float(c["color_jitter"])) for name, items in data.items()}
    eval_sets = {name: ClassifierDataset(items, noise[name], depth_size, train=False) for name, items in data.items()}

    def fit_classifier(streams: str, name: str, checkpoint: bool):
        torch.manual_seed(int(cfg["seed"]))
        m = classifier_with(pairs[0], streams)
        m.standardizer.fit(noise["train"])
        before = evaluate_split(m, eval_sets)
        dm = ClassifierDataModule(sets["train"], sets["dev"], None, batch_size=int(c["batch_size"]), num_workers=int(cfg["data"]["num_workers"]))
        if checkpoint:
            tr = run.trainer(max_steps=_cap(run, int(c["steps"])), max_epochs=-1, check_val_every_n_epoch=int(c["val_every_n_epochs"]))
            ck = resume_path(run, run.out / "checkpoints" / "last.ckpt")
        else:
            tr = stage_trainer(run, name, int(c["steps"]), None, check_val_every_n_epoch=int(c["val_every_n_epochs"]))
            ck = None
        run.log(f"stage 2: {name} classifier ({streams}), {tr.max_steps} steps")
        tr.fit(m, datamodule=dm, ckpt_path=ck)
        m = m.cpu().eval()
        after = evaluate_split(m, eval_sets)
        m.threshold.fill_(after["metrics"]["threshold"])  # the dev EER threshold travels with the checkpoint
        if checkpoint:
            save_last(tr, run.checkpoints / "last.ckpt")
        return m, before, after

    t0 = time.time()
    model, before, after = fit_classifier(c["streams"], "classifier", checkpoint=True)
    timings["classifier_s"] = round(time.time() - t0, 2)
    abl: dict[str, Any] = {}
    for s in cfg.get("ablations") or []:
        if s == c["streams"]:
            continue
        if s not in ("both", "rgb", "noise"):
            raise ConfigError(f"ablations: unknown stream switch {s!r} (both, rgb, noise)")
        _, bb, aa = fit_classifier(s, f"ablation_{s}", checkpoint=False)
        abl[s] = {"before": _flat(bb["metrics"]), "after": _flat(aa["metrics"])}

    from vislab.runtime import is_main_process

    extra: dict[str, Any] = {
        "protocol": str(cfg["data"]["protocol"] if cfg["data"]["protocol"] is not None else DEFAULT_PROTOCOL.get(cfg["data"]["source"])),
        "source": cfg["data"]["source"],
        "streams": c["streams"],
        "translator": b["translator"],
        "t_star": b["t_star"],
        "ddim_steps": b["steps"],
        "before_all": _flat(before["metrics"]),
        "after_all": _flat(after["metrics"]),
        "ablations": abl,
        "diffusion_final_loss": losses,
        "crossfit_folds": k if folds is not None else 0,
        "spoof_noise": noise_stats,
        "bridge_hash": fp,
        "timings": timings,
    }
    if "cross" in after["metrics"]:
        extra["cross_hter_before"] = before["metrics"]["cross"]["hter"]
        extra["cross_hter_after"] = after["metrics"]["cross"]["hter"]
        extra["cross_auc_after"] = after["metrics"]["cross"].get("auc")
    # frame level beside video level (video score = mean frame score, the protocols' convention)
    extra["levels"] = {
        split: {f"{lvl}_{m}_{when}": r["metrics"][split].get(f"{'video_' if lvl == 'video' else ''}{m}")
                for lvl in ("frame", "video") for m in ("acer", "hter", "apcer", "bpcer") for when, r in (("before", before), ("after", after))}
        for split in ("test", "cross") if split in after["metrics"]
    }
    extra["test_video_acer_after"] = after["metrics"]["test"].get("video_acer")
    if "cross" in after["metrics"]:
        extra["cross_video_hter_after"] = after["metrics"]["cross"].get("video_hter")
    extra["test_auc_before"] = before["metrics"]["test"].get("auc")
    extra["test_auc_after"] = after["metrics"]["test"].get("auc")
    if is_main_process():
        from vislab.io import save_torch

        save_torch({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "despoofdiff": "pipeline"}, run.checkpoints / "despoofdiff.ckpt")
        if dm_g is not None:
            save_samples(model, run.path("dm_samples.png"), n=8, seed=int(cfg["seed"]))
        save_despoof_grid(model, data["test"], run.path("despoof_test.png"), per_class=int(cfg.get("pictures", 6)))
        if "cross" in data:
            save_despoof_grid(model, data["cross"], run.path("despoof_cross.png"), per_class=int(cfg.get("pictures", 6)))
        save_roc({f"{n} before": before["raw"][n] for n in before["raw"]} | {f"{n} after": after["raw"][n] for n in after["raw"]}, run.path("roc.png"))
    return run.finish(
        metric="test_acer",
        higher_is_better=False,
        before=before["metrics"]["test"]["acer"],
        after=after["metrics"]["test"]["acer"],
        **extra,
    )


def _cap(run: Run, steps: int) -> int:
    user = (run.config.get("trainer") or {}).get("max_steps")
    return steps if user in (None, -1) else min(steps, int(user))


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    out = {"threshold": m["threshold"], "dev_eer": m["dev_eer"]}
    for k in ("test", "cross"):
        if k in m:
            out.update({f"{k}_{kk}": v for kk, v in m[k].items()})
    return out
