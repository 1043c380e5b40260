"""``flallm`` training: stage 1 (visual initialing), then stage 2 (LLM fine-tuning), as one run.

Headline metric: dev BLEU-4 before training -> after stage 2 (``metrics.json`` also holds
the after-stage-1 score, the stage-2-only baseline on the frozen ImageNet-style backbone, the
constant-output reference, and test BLEU-1..4 / ROUGE-L). Checkpoints: ``checkpoints/stage1.ckpt`` (the finished stage 1),
``checkpoints/stage2-best.ckpt`` (best dev BLEU-4 in stage 2, the paper's choice) and
``checkpoints/last.ckpt`` (the latest of the running stage, for ``--resume``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from vislab import runtime
from vislab.errors import VislabError
from vislab.io import load_torch, write_json
from vislab.lightning import build_trainer
from vislab.run import Run, track

from flallm.data import (
    FeatureDataModule,
    FeatureDataset,
    SignDataModule,
    SignVideoDataset,
    VideoCollator,
    load_splits,
)
from flallm.metrics import bleu_signature, translation_scores
from flallm.module import Stage1Module, Stage2Module
from flallm.tokenizer import SignTokenizer


def build_tokenizer(cfg: dict[str, Any], train_texts: list[str]) -> SignTokenizer:
    """The (trimmed) mBART tokenizer of ``model.llm.tokenizer`` / ``model.llm.path``, or the toy
    word-level tokenizer built from the training sentences."""
    from flallm.tokenizer import DATASET_LANG

    llm = cfg["model"]["llm"]
    lang = cfg["data"].get("lang") or DATASET_LANG.get(cfg["data"]["source"])
    if not lang:
        raise VislabError(f"data.lang is not set and data.source={cfg['data']['source']} has no default language code")
    tdir = llm.get("tokenizer") or llm.get("path")
    if tdir:
        return SignTokenizer.from_dir(tdir, lang)
    return SignTokenizer.build_word_level(train_texts, lang)


def video_loader(samples: list[dict[str, Any]], cfg: dict[str, Any], tok: SignTokenizer | None) -> DataLoader:
    ds = SignVideoDataset(samples, cfg["data"], train=False)
    return DataLoader(ds, batch_size=int(cfg["eval_batch_size"]), shuffle=False, collate_fn=VideoCollator(tok, cfg["data"].get("max_label_len")),
                      num_workers=int(cfg["data"].get("num_workers", 0)))


def _autocast(dev: torch.device):
    """bf16/fp16 autocast on GPUs (vislab.runtime's choice), nothing on the CPU (fp32)."""
    import contextlib

    dt = runtime.autocast_dtype(dev)
    return torch.autocast(dev.type, dtype=dt) if dt is not None else contextlib.nullcontext()


@torch.no_grad()
def evaluate(module: Stage1Module | Stage2Module, loader: DataLoader, desc: str = "evaluating") -> tuple[dict[str, float], list[dict[str, str]]]:
    """Beam-search every batch; BLEU-1..4 and ROUGE-L against the references."""
    was_training = module.training
    module.eval()
    dev = runtime.device()
    module.to(dev)  # Lightning moves modules back to the CPU after fit
    rows = []
    for batch in track(loader, desc):
        b = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in batch.items()}
        with _autocast(dev):
            hyps = module.translate_batch(b)
        for i, h, r in zip(batch["ids"], hyps, module.tok.normalize(batch["texts"])):
            rows.append({"id": i, "hyp": h, "ref": r})
    module.train(was_training)
    scores = translation_scores([r["hyp"] for r in rows], [r["ref"] for r in rows], module.lang)
    return scores, rows


@torch.no_grad()
def extract_features(module: Stage2Module, samples: list[dict[str, Any]], cfg: dict[str, Any], desc: str) -> list[dict[str, Any]]:
    """Sign-wise features F (N_i, C) of every sample from the frozen encoder (cached for all epochs)."""
    module.visual.eval()
    dev = runtime.device()
    module.to(dev)
    out = []
    for batch in track(video_loader(samples, cfg, None), desc):
        with _autocast(dev):
            f = module.features(batch["frames"].to(dev), batch["lengths"].to(dev)).float().cpu()
        for b, (i, t) in enumerate(zip(batch["ids"], batch["texts"])):
            out.append({"id": i, "text": t, "feats": f[b, : int(batch["lengths"][b])].clone()})
    return out


def _stage_trainer(run: Run | None, stage_cfg: dict[str, Any], callbacks: list[pl.Callback] | None = None,
                   cfg: dict[str, Any] | None = None, **kw: Any):
    tcfg = dict((run.config if run is not None else cfg or {}).get("trainer", {}))
    if run is None:
        tcfg.pop("checkpoint", None)
    if "max_epochs" not in tcfg and "max_steps" not in tcfg:
        kw["max_epochs"] = int(stage_cfg["epochs"])
    epochs = int(tcfg.get("max_epochs", stage_cfg["epochs"]))
    kw.setdefault("check_val_every_n_epoch", max(1, min(int(stage_cfg["val_every"]), epochs)))
    if runtime.accelerator() == "gpu" and "sync_batchnorm" not in tcfg:
        kw["sync_batchnorm"] = True  # SyncBN when distributed (GFSLT-VLP)
    return build_trainer(run, {**tcfg, **kw}, callbacks=callbacks)


def _keep_logs(run: Run, name: str) -> None:
    """The CSV logger writes logs/metrics.csv for every trainer; keep each stage's copy."""
    src = run.out / "logs" / "metrics.csv"
    if runtime.is_main_process() and src.is_file():
        os.replace(src, run.out / "logs" / f"{name}_metrics.csv")


def _ckpt_stage(path: Path) -> int | None:
    try:
        return int(load_torch(path)["flallm"]["stage"])
    except Exception:  # noqa: BLE001
        return None


class KeepBestOnDev(pl.Callback):
    """Keeps, in memory, the weights of the validation epoch with the best dev ``monitor`` (no files)."""

    def __init__(self, monitor: str = "val_bleu4"):
        self.monitor, self.best, self.epoch, self.state = monitor, float("-inf"), -1, None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        v = trainer.callback_metrics.get(self.monitor)
        if v is not None and not trainer.sanity_checking and float(v) > self.best:
            self.best, self.epoch = float(v), int(trainer.current_epoch)
            self.state = {k: t.detach().cpu().clone() for k, t in pl_module.state_dict().items()}


def train_stage2(run: Run | None, cfg: dict[str, Any], tok: SignTokenizer, splits: dict[str, list[dict[str, Any]]],
                 visual_state: dict[str, torch.Tensor] | None, tag: str, checkpoints: bool = True,
                 ckpt_path: Path | None = None) -> tuple[Stage2Module, Any]:
    """Stage 2 from the stage-1 encoder (``visual_state``) or, with None, from ``model.visual.weights``
    (the ImageNet backbone; random when unset). A frozen encoder's features are cached once for all
    epochs; an unfrozen one (``stage2.freeze_visual: false``) trains on frames. The weights of the best
    dev BLEU-4 epoch are kept (``checkpoints/stage2-best.ckpt`` with ``checkpoints``, in memory otherwise)."""
    s2 = Stage2Module(cfg, tok)
    if visual_state is not None:
        s2.load_visual_from(visual_state)
    c2 = cfg["stage2"]
    if s2.freeze_visual:
        feats = {k: extract_features(s2, v, cfg, f"{tag}: caching {k} features") for k, v in splits.items() if k in ("train", "dev", "test")}
        dm = FeatureDataModule(feats, tok, int(c2["batch_size"]), int(cfg["eval_batch_size"]), cfg["data"].get("max_label_len"))
    else:
        feats = None
        dm = SignDataModule(splits, cfg["data"], tok, int(c2["batch_size"]), int(cfg["eval_batch_size"]), int(cfg["seed"]))
    keep = KeepBestOnDev()
    if checkpoints:
        tr = _stage_trainer(run, c2, cfg=cfg, checkpoint={"monitor": "val_bleu4", "mode": "max", "filename": "stage2-best",
                                                          "enable_version_counter": False})
    else:
        tr = _stage_trainer(run, c2, cfg=cfg, enable_checkpointing=False, logger=False, callbacks=[keep])
    tr.fit(s2, dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    best = getattr(tr.checkpoint_callback, "best_model_path", "") if checkpoints else ""
    if best and Path(best).is_file():  # the paper keeps the best dev BLEU-4 checkpoint
        s2.load_state_dict(load_torch(best, "stage-2 checkpoint")["state_dict"])
    elif keep.state is not None:
        s2.load_state_dict(keep.state)
    s2.feature_cache = feats  # type: ignore[attr-defined]
    s2.best_epoch = keep.epoch  # type: ignore[attr-defined]
    return s2, tr


def stage2_loader(module: Stage2Module, split: str, splits: dict[str, list[dict[str, Any]]], cfg: dict[str, Any],
                  tok: SignTokenizer) -> DataLoader:
    """Cached features when the encoder was frozen, frames otherwise."""
    cache = getattr(module, "feature_cache", None)
    return feature_loader(cache[split], cfg, tok) if cache else video_loader(splits[split], cfg, tok)


def feature_loader(items: list[dict[str, Any]], cfg: dict[str, Any], tok: SignTokenizer) -> DataLoader:
    return DataLoader(FeatureDataset(items), batch_size=int(cfg["eval_batch_size"]), collate_fn=VideoCollator(tok, cfg["data"].get("max_label_len")))


def fit(cfg: dict[str, Any], run: Run | None = None, splits: dict[str, list[dict[str, Any]]] | None = None,
        tok: SignTokenizer | None = None, stage1: Stage1Module | None = None) -> Stage1Module | Stage2Module:
    """FLa-LLM's two stages on the data of ``cfg`` (a resolved ``flallm`` config); returns the trained model.

    Stage 1 (visual initialing) trains ``stage1`` (default: a fresh :class:`Stage1Module`); stage 2 (LLM
    fine-tuning) starts from its visual encoder and keeps the weights of the best dev BLEU-4 epoch. The
    result is the :class:`Stage2Module` (the :class:`Stage1Module` when ``stage2.enabled`` is false), in
    eval mode, with the finished stage-1 module as ``.stage1``.

    With a ``run``, checkpoints go to its folder (``stage1.ckpt``, ``stage2-best.ckpt``, ``last.ckpt``) and a
    run started with ``--resume`` continues where it stopped; without one nothing is written except the
    ImageNet-style toy backbone in the vislab cache when the config asks for it.
    """
    splits = splits if splits is not None else load_splits(cfg["data"])
    ensure_visual_weights(run, cfg)
    tok = tok if tok is not None else build_tokenizer(cfg, [s["text"] for s in splits["train"]])
    c1 = cfg["stage1"]
    dm = SignDataModule(splits, cfg["data"], tok, int(c1["batch_size"]), int(cfg["eval_batch_size"]), int(cfg["seed"]))
    s1 = stage1 if stage1 is not None else Stage1Module(cfg, tok)
    last = run.resume_checkpoint() if run is not None else None
    resume_stage = _ckpt_stage(last) if last else None
    stage1_file = run.checkpoints / "stage1.ckpt" if run is not None else None
    stage1_done = last is not None and stage1_file is not None and stage1_file.is_file()
    if not stage1_done:
        if run is not None:
            # last.ckpt at every epoch end (and every trainer.checkpoint interval), so a killed stage 1 resumes
            # where it stopped; with save_top_k=0 Lightning wrote no last.ckpt before the stage ended
            tr1 = _stage_trainer(run, c1, checkpoint={"save_top_k": 1, "filename": "stage1-latest",
                                                      **(run.config.get("trainer", {}).get("checkpoint") or {})})
        else:
            tr1 = _stage_trainer(None, c1, cfg=cfg, enable_checkpointing=False, logger=False)
        tr1.fit(s1, dm, ckpt_path=str(last) if (last and resume_stage == 1) else None)
        if run is not None:
            tr1.save_checkpoint(stage1_file)  # rank 0 writes; every rank then loads the same weights (BN stats)
            tr1.strategy.barrier()
            _keep_logs(run, "stage1")
    if stage1_file is not None:
        s1.load_state_dict(load_torch(stage1_file)["state_dict"])
    s1.history = s1.history or {}
    if not cfg["stage2"]["enabled"]:
        s1.stage1 = s1  # type: ignore[attr-defined]
        return s1.eval()
    visual_state = {k: v.clone() for k, v in s1.visual.state_dict().items()}
    s2, _ = train_stage2(run, cfg, tok, splits, visual_state, "stage 2", checkpoints=run is not None,
                         ckpt_path=last if (stage1_done and resume_stage == 2) else None)
    if run is not None:
        _keep_logs(run, "stage2")
    s2.stage1 = s1  # type: ignore[attr-defined]
    return s2.eval()


BEFORE_FILE = "before.json"


def measure_before(run: Run, module: Stage1Module, dev_loader: DataLoader) -> tuple[dict[str, float], str]:
    """Dev scores of the untrained model and how they were obtained.

    The first measurement is kept in ``checkpoints/before.json``; a resumed run reads it back instead of
    reporting a score it never measured. A resumed run without that file re-measures the freshly built
    model, which is the run's initialisation (same seed, same construction order)."""
    f = run.checkpoints / BEFORE_FILE
    if run.resume and f.is_file():
        try:
            return json.loads(f.read_text())["dev"], "measured at the start of the run (read back on resume)"
        except (OSError, ValueError, KeyError):
            pass
    before, _ = evaluate(module, dev_loader, "before training: dev")
    write_json(f, {"dev": before})
    return before, "re-measured on resume from the same seeded initialisation" if run.resume else "measured at the start of the run"


def train(run: Run) -> dict[str, Any]:
    """The ``flallm`` run: dev BLEU-4 before training -> :func:`fit` -> after stage 1 and stage 2, the
    stage-2-only baseline, test scores, pictures, ``metrics.json``."""
    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    main = runtime.is_main_process()
    if main and not (run.out / "config.yaml").is_file():  # runs built in-process (vislab.testing.make_run)
        from vislab.config import dump_yaml

        (run.out / "config.yaml").write_text(dump_yaml(cfg))
    if cfg.get("ablation", {}).get("seeds"):
        from flallm.ablation import run_ablation

        return run_ablation(run)
    splits = load_splits(cfg["data"])
    ensure_visual_weights(run, cfg)
    tok = build_tokenizer(cfg, [s["text"] for s in splits["train"]])
    run.log(f"data: {cfg['data']['source']}  train/dev/test = {len(splits['train'])}/{len(splits['dev'])}/{len(splits['test'])}, "
            f"vocabulary {tok.vocab_size}, language {tok.lang}; BLEU: {bleu_signature(tok.lang)}")
    s1 = Stage1Module(cfg, tok)
    dev_loader = video_loader(splits["dev"], cfg, tok)
    result: dict[str, Any] = {}

    before: dict[str, float] = {}
    if main:
        before, how = measure_before(run, s1, dev_loader)
        result["before_source"] = how
        run.log(f"before training: dev BLEU-4 {before['bleu4']:.2f} ({how})")
    final = fit(cfg, run, splits, tok, s1)
    s1 = final.stage1  # type: ignore[attr-defined]
    after1 = None
    if main:
        after1, rows1 = evaluate(s1, dev_loader, "after stage 1: dev")
        run.log(f"after stage 1: dev BLEU-4 {after1['bleu4']:.2f}")
        result["dev_after_stage1"] = after1

    if not cfg["stage2"]["enabled"]:
        if main:
            _pictures(run, splits, {"stage 1": rows1}, {"stage 1": s1.history})
            run.finish(metric="dev_bleu4", higher_is_better=True, before=before["bleu4"], after=after1["bleu4"], **result)
        return result

    s2 = final
    histories = {"stage 1": s1.history, "stage 2": s2.history}
    base = None
    if cfg.get("baseline_stage2_only"):
        torch.manual_seed(int(cfg["seed"]) + 1)
        sb, _ = train_stage2(run, cfg, tok, splits, None, "stage 2 only (ImageNet-style backbone)", checkpoints=False)
        histories["stage 2 only"] = sb.history
        if main:
            base, _ = evaluate(sb, stage2_loader(sb, "dev", splits, cfg, tok), "stage-2-only: dev")
            base_test, _ = evaluate(sb, stage2_loader(sb, "test", splits, cfg, tok), "stage-2-only: test")
            result.update(dev_stage2_only=base, test_stage2_only=base_test)
    if main:
        from flallm.ablation import constant_reference

        after2, rows2 = evaluate(s2, stage2_loader(s2, "dev", splits, cfg, tok), "after stage 2: dev")
        test_scores, _ = evaluate(s2, stage2_loader(s2, "test", splits, cfg, tok), "after stage 2: test")
        result.update(dev_after_stage2=after2, test_after_stage2=test_scores, bleu_signature=bleu_signature(tok.lang),
                      dev_before=before, vocab_size=tok.vocab_size, constant_reference=constant_reference(splits, tok),
                      examples=[{"ref": r["ref"], "stage1": a["hyp"], "stage2": r["hyp"]} for r, a in zip(rows2[:8], rows1[:8])])
        bars = {"before": before["bleu4"], "stage 1": after1["bleu4"], "stage 2": after2["bleu4"]}
        if base is not None:
            bars["stage 2 only"] = base["bleu4"]
        _pictures(run, splits, {"stage 1": rows1, "stage 2": rows2}, histories, bars)
        run.finish(metric="dev_bleu4", higher_is_better=True, before=before["bleu4"], after=after2["bleu4"], **result)
    return result


def ensure_visual_weights(run: Run | None, cfg: dict[str, Any]) -> None:
    """``model.visual.toy_pretrain`` with a ``tiny_cnn`` backbone and no weights file: train the ImageNet-style
    initialisation (``flallm.pretrain``) once, save it in the run folder (in the vislab cache without a run)
    and point ``model.visual.weights`` at it."""
    v = cfg["model"]["visual"]
    if v.get("weights") or not v.get("toy_pretrain") or v["backbone"] != "tiny_cnn":
        return
    from flallm.pretrain import pretrain_tiny_backbone

    width, size, seed = int(v.get("tiny_width", 16)), int(cfg["data"]["image_size"]), int(cfg["seed"])
    if run is not None:
        path = run.checkpoints / f"toy_backbone_seed{seed}.pth"
    else:
        from vislab.toy.cache import cache_root

        path = cache_root() / "flallm" / f"toy_backbone_w{width}_s{size}_seed{seed}.pth"
    if not path.is_file():
        sd, acc = pretrain_tiny_backbone(width, size, seed=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(sd, tmp)
        os.replace(tmp, path)  # every DDP rank computes the same weights; the last rename wins
        if run is not None:
            run.log(f"ImageNet-style toy backbone: shape/hue accuracy {acc:.1f} % on held-out still images -> {path.name}")
    v["weights"] = str(path)


def _pictures(run: Run, splits: dict[str, list[dict[str, Any]]], rows: dict[str, list[dict[str, str]]],
              histories: dict[str, dict[str, list]], bars: dict[str, float] | None = None) -> None:
    from flallm.plots import plot_bars, plot_curves, plot_frame_strips

    cfg = run.config
    n = int(cfg["pictures"]["n_clips"])
    plot_frame_strips(run.path("dev_translations.png"), splits["dev"][:n], cfg["data"], {k: v[:n] for k, v in rows.items()})
    plot_curves(run.path("curves.png"), histories)
    if bars:
        plot_bars(run.path("bleu4.png"), bars)


__all__ = ["fit", "train", "measure_before", "evaluate", "extract_features", "build_tokenizer", "VislabError"]
