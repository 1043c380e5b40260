"""LightningModules: one per training stage of FLa-LLM.

``Stage1Module`` (visual initialing): VisualEncoder -> VLAdapter -> Light-T, all trained with
the label-smoothed generation loss; SGD + cosine.
``Stage2Module`` (LLM fine-tuning): the stage-1 VisualEncoder frozen (``eval()`` always, so
BatchNorm statistics never move) -> LLMAdapter -> mBART ``inputs_embeds``; full fine-tune or
LoRA; Adam with separate learning rates for the LLM and the adapter; cosine; beam search.
Both save their config and tokenizer inside the checkpoint (``checkpoint["flallm"]``), so
``load_module(path)`` rebuilds either from the file alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from vislab.errors import InputError

from flallm.losses import generation_loss
from flallm.metrics import translation_scores
from flallm.model import LLMAdapter, VisualEncoder, VLAdapter, build_light_t, build_llm, lengths_to_mask
from flallm.tokenizer import SignTokenizer


def adam(groups: list[dict[str, Any]], weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over parameter groups with PyTorch's fused kernel where every parameter is a float tensor on CPU or CUDA
    (same update as the per-parameter loop, one kernel per step), else the multi-tensor ``foreach`` kernel."""
    ps = [p for g in groups for p in g["params"]]
    fused = {p.device.type for p in ps} <= {"cpu", "cuda"} and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in ps)
    return torch.optim.Adam(groups, weight_decay=weight_decay, **({"fused": True} if fused else {"foreach": True}))


def build_visual(mcfg: dict[str, Any]) -> VisualEncoder:
    v = mcfg["visual"]
    return VisualEncoder(v["backbone"], v.get("weights"), int(v["temporal_dim"]), int(v["temporal_kernel"]), int(v.get("tiny_width", 16)))


def _gather_objects(obj: list[Any]) -> list[Any]:
    """All ranks' lists concatenated (identity without torch.distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return [x for part in out for x in part]


class _TranslationModule(pl.LightningModule):
    """Shared validation/test (beam search, BLEU-1..4, ROUGE-L) and checkpoint payload."""

    stage = 0

    def __init__(self, config: dict[str, Any], tokenizer: SignTokenizer):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.tok = tokenizer
        self.lang = tokenizer.lang
        self._hyps: list[tuple[str, str, str]] = []
        self.history: dict[str, list[tuple[int, float]]] = {}

    # subclasses: encode(batch) -> (embeds (B, N, H), mask (B, N)); head: Seq2SeqHead
    head: nn.Module

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode_cfg(self) -> dict[str, Any]:
        return self.config[f"stage{self.stage}"]["decode"]

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        emb, mask = self.encode(batch)
        logits = self.head(emb, mask, batch["decoder_input_ids"])
        labels = batch["labels"].masked_fill(batch["labels"].eq(-100), self.tok.pad_id)
        return generation_loss(logits, labels, self.tok.pad_id, float(self.config[f"stage{self.stage}"]["label_smoothing"]))

    @torch.no_grad()
    def translate_batch(self, batch: dict[str, Any], num_beams: int | None = None) -> list[str]:
        d = self.decode_cfg()
        emb, mask = self.encode(batch)
        ids = self.head.generate(emb, mask, self.tok.lang_id, num_beams=int(num_beams or d["num_beams"]),
                                 max_new_tokens=int(d["max_new_tokens"]), length_penalty=float(d["length_penalty"]))
        return self.tok.decode(ids)

    def _record(self, name: str, value: float) -> None:
        self.history.setdefault(name, []).append((int(self.global_step), float(value)))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["texts"]))
        if self.trainer.is_global_zero:
            self._record("train_loss", loss.item())
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, Any], split: str) -> None:
        self.log(f"{split}_loss", self.loss(batch), batch_size=len(batch["texts"]), sync_dist=True)
        for i, h, r in zip(batch["ids"], self.translate_batch(batch), self.tok.normalize(batch["texts"])):
            self._hyps.append((i, h, r))

    def _eval_end(self, split: str) -> None:
        rows = dict((i, (h, r)) for i, h, r in _gather_objects(self._hyps))  # DDP padding duplicates removed
        self._hyps = []
        if not rows:
            return
        hyps, refs = zip(*rows.values())
        scores = translation_scores(list(hyps), list(refs), self.lang)
        for k, v in scores.items():
            self.log(f"{split}_{k}", v, rank_zero_only=False, sync_dist=False)
        if self.trainer.is_global_zero:
            self._record(f"{split}_bleu4", scores["bleu4"])

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def _cosine(self, opt: torch.optim.Optimizer) -> dict[str, Any]:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def payload(self) -> dict[str, Any]:
        return {"stage": self.stage, "config": self.config, "tokenizer": self.tok.state()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["flallm"] = self.payload()


class Stage1Module(_TranslationModule):
    """Visual initialing: frames -> VisualEncoder -> VLAdapter -> Light-T -> p(o_i | o_<i, V)."""

    stage = 1

    def __init__(self, config: dict[str, Any], tokenizer: SignTokenizer):
        super().__init__(config, tokenizer)
        m = config["model"]
        self.visual = build_visual(m)
        self.head = build_light_t(m["light_t"], tokenizer.vocab_size, tokenizer.pad_id, tokenizer.eos_id)
        self.vl_adapter = VLAdapter(self.visual.out_dim, self.head.d_model)

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, 3, S, S) frames -> Light-T encoder input g (B, N, D) and mask (B, N)."""
        f = self.visual(batch["frames"], batch["lengths"])
        return self.vl_adapter(f), lengths_to_mask(batch["lengths"], f.shape[1])

    def configure_optimizers(self):
        c = self.config["stage1"]
        opt = torch.optim.SGD(self.parameters(), lr=float(c["lr"]), momentum=float(c["momentum"]), weight_decay=float(c["weight_decay"]))
        return self._cosine(opt)


class Stage2Module(_TranslationModule):
    """LLM fine-tuning: VisualEncoder -> F (B, N, C) -> LLMAdapter -> mBART.

    The visual encoder starts from ``model.visual.weights`` (the ImageNet backbone) and is replaced by
    the stage-1 encoder with :meth:`load_visual_from`. With ``stage2.freeze_visual`` (the paper's
    method) it has no trainable parameters and stays in ``eval()`` whatever ``train()`` says, and
    batches may carry cached features ``feats`` (B, N, C); without it the encoder is trained end to
    end with the LLM at ``stage2.lr_visual`` (the paper's "not frozen" / end-to-end ablations).
    """

    stage = 2

    def __init__(self, config: dict[str, Any], tokenizer: SignTokenizer, llm_config: dict[str, Any] | None = None):
        super().__init__(config, tokenizer)
        m = config["model"]
        self.freeze_visual = bool(config["stage2"].get("freeze_visual", True))
        self.visual = build_visual(m)
        if self.freeze_visual:
            self.visual.requires_grad_(False)
            self.visual.eval()
        lcfg = dict(m["llm"])
        if llm_config is not None:
            lcfg["config"] = llm_config
        self.head = build_llm(lcfg, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.eos_id)
        self.llm_adapter = LLMAdapter(self.visual.out_dim, self.head.d_model)

    def train(self, mode: bool = True) -> Stage2Module:
        super().train(mode)
        if self.freeze_visual:
            self.visual.eval()  # frozen BatchNorm statistics too (BN in train mode would drift)
        return self

    @torch.no_grad()
    def features(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sign-wise features F (B, N, C) from the frozen encoder."""
        self.visual.eval()
        return self.visual(frames, lengths)

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "feats" in batch:
            f = batch["feats"]
        elif self.freeze_visual:
            f = self.features(batch["frames"], batch["lengths"])
        else:
            f = self.visual(batch["frames"], batch["lengths"])
        return self.llm_adapter(f), lengths_to_mask(batch["lengths"], f.shape[1])

    def configure_optimizers(self):
        c = self.config["stage2"]
        groups = [{"params": [p for p in self.head.parameters() if p.requires_grad], "lr": float(c["lr_llm"])},
                  {"params": list(self.llm_adapter.parameters()), "lr": float(c["lr_adapter"])}]
        if not self.freeze_visual:
            groups.append({"params": list(self.visual.parameters()), "lr": float(c["lr_visual"])})
        groups = [g for g in groups if g["params"]]
        return self._cosine(adam(groups, weight_decay=float(c.get("weight_decay", 0.0))))

    def payload(self) -> dict[str, Any]:
        p = super().payload()
        p["llm_config"] = self.head.model.config.to_dict()
        return p

    def load_visual_from(self, stage1: Stage1Module | dict[str, torch.Tensor]) -> None:
        """Copy the stage-1 visual encoder (backbone + temporal module, incl. BN statistics)."""
        sd = stage1.visual.state_dict() if isinstance(stage1, nn.Module) else stage1
        self.visual.load_state_dict(sd)
        self.train(self.training)


def load_module(path: str | Path, map_location: str = "cpu") -> Stage1Module | Stage2Module:
    """Rebuild a Stage1Module or Stage2Module from a flallm checkpoint file alone."""
    from vislab.io import load_torch

    ckpt = load_torch(path, "flallm checkpoint", map_location)
    if not isinstance(ckpt, dict) or "flallm" not in ckpt or "state_dict" not in ckpt:
        raise InputError(path, "not a flallm checkpoint (no 'flallm' payload; was it written by flallm train?)")
    p = ckpt["flallm"]
    try:
        tok = SignTokenizer.from_state(p["tokenizer"])
        cfg = copy.deepcopy(p["config"])
        cfg["model"]["visual"]["weights"] = None  # weights come from the checkpoint
        mod = Stage1Module(cfg, tok) if p["stage"] == 1 else Stage2Module(cfg, tok, p.get("llm_config"))
        mod.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise InputError(path, f"checkpoint does not match the flallm architecture ({e.__class__.__name__}: {str(e)[:200]})") from None
    return mod.eval()


def load(run_dir: str | Path, checkpoint: str | None = None) -> Stage1Module | Stage2Module:
    """The trained model of a ``flallm`` output folder, eval mode, CPU: ``checkpoints/stage2-best.ckpt`` (the
    paper's choice, best dev BLEU-4), else ``stage1.ckpt`` (stage 2 disabled or not run yet); ``checkpoint``
    names another file in ``checkpoints/``. Nothing is trained or downloaded."""
    from vislab.io import require_dir

    ck = require_dir(run_dir, "flallm run folder") / "checkpoints"
    if checkpoint is None:
        checkpoint = next((n for n in ("stage2-best.ckpt", "stage1.ckpt") if (ck / n).is_file()), "stage2-best.ckpt")
    return load_module(ck / checkpoint)
