"""Lightning module of CFPL: optimisation (Adam, warm-up + cosine), the losses, target-domain evaluation."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from cfpl.losses import cls_loss, ptm_loss, total_loss
from cfpl.metrics import evaluate_scores
from cfpl.model import CFPL


class CFPLModule(pl.LightningModule):
    """Trains the CFPL head on a frozen (or fine-tuned) CLIP.

    Batches are dicts with ``image`` (B, 3, H, W) in [0, 1] and ``live`` (B,) (1 live, 0 spoof);
    the internal label is ``y = 1 - live`` (0 live, 1 spoof). Validation/test batches may also
    carry ``video`` (str) so frame scores are averaged per video.
    """

    def __init__(self, model: CFPL, optim: dict[str, Any] | None = None, lambda_ptm: float = 1.0, augment=None, meta: dict | None = None):
        super().__init__()
        self.model = model
        self.optim = dict(optim or {})
        self.lambda_ptm = lambda_ptm
        self.augment = augment
        self.meta = dict(meta or {})
        self._scores: list[torch.Tensor] = []
        self._live: list[torch.Tensor] = []
        self._videos: list[str] = []
        self.last_eval: dict[str, float] = {}
        # True: under DDP each rank scored a shard of the evaluation set (gathered, per frame); False: every rank
        # scored all of it (``use_distributed_sampler=False``), so the video ids are kept
        self.eval_sharded = True

    # -- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch["image"]
        if self.augment is not None:
            x = self.augment(x)
        y = (1 - batch["live"]).long()
        out = self.model(x)
        l_cls = cls_loss(out["logits"], y)
        l_ptm = None
        if self.model.cfg.ptm:
            logits, target = self.model.ptm_logits(out["p_c"], y)
            l_ptm = ptm_loss(logits, target)
            self.log("train/ptm", l_ptm, prog_bar=False, batch_size=len(y), sync_dist=True)
        loss = total_loss(l_cls, l_ptm, self.lambda_ptm)
        acc = (out["logits"].argmax(-1) == y).float().mean()
        self.log("train/cls", l_cls, batch_size=len(y), sync_dist=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train/acc", acc, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    # -- evaluation: P(live) per frame, averaged per video, HTER / AUC / TPR@FPR=1%
    def _eval_step(self, batch: dict[str, Any]) -> None:
        s = self.model.live_score(batch["image"])
        self._scores.append(s.detach().cpu())
        self._live.append(batch["live"].detach().cpu())
        vids = batch.get("video")
        self._videos.extend(list(vids) if vids is not None else [f"{len(self._videos) + i}" for i in range(len(s))])

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def _eval_end(self, stage: str) -> None:
        if not self._scores:
            return
        scores = torch.cat(self._scores)
        live = torch.cat(self._live)
        if self.eval_sharded and self.trainer is not None and self.trainer.world_size > 1:
            scores = self.all_gather(scores).reshape(-1).cpu()
            live = self.all_gather(live).reshape(-1).cpu()
            videos = None  # per-frame under DDP (video ids are strings)
        else:
            videos = self._videos
        res = evaluate_scores(scores.numpy(), live.numpy(), videos)
        self.last_eval = res
        for k in ("hter", "auc", "tpr_at_fpr1", "eer"):
            self.log(f"{stage}/{k}", float(res[k]), prog_bar=k == "hter", sync_dist=False, rank_zero_only=True)
        self._scores, self._live, self._videos = [], [], []

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def on_test_epoch_end(self):
        self._eval_end("test")

    # -- optimisation
    def configure_optimizers(self):
        o = self.optim
        groups = [{"params": self.model.head_parameters(), "lr": float(o.get("lr", 1e-4))}]
        enc = self.model.encoder_parameters()
        if enc:
            groups.append({"params": enc, "lr": float(o.get("encoder_lr", 1e-6))})
        opt = torch.optim.Adam(groups, weight_decay=float(o.get("weight_decay", 0.05)))
        total = self._total_steps()
        warm = int(o.get("warmup_steps", 0) or 0)
        if o.get("warmup_epochs"):
            warm = int(float(o["warmup_epochs"]) * self._steps_per_epoch())
        min_ratio = float(o.get("min_lr", 1e-6)) / max(float(o.get("lr", 1e-4)), 1e-12)

        def factor(step: int) -> float:
            """Linear warm-up from min_lr, then cosine to min_lr (factor of the peak LR)."""
            if warm > 0 and step < warm:
                return min_ratio + (1 - min_ratio) * step / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _steps_per_epoch(self) -> int:
        tr = self.trainer
        try:
            return max(1, int(tr.estimated_stepping_batches) // max(1, int(tr.max_epochs or 1)))
        except Exception:  # noqa: BLE001
            return 1

    def _total_steps(self) -> int:
        tr = self.trainer
        if tr is None:
            return 1000
        if tr.max_steps and tr.max_steps > 0:
            return int(tr.max_steps)
        try:
            return max(1, int(tr.estimated_stepping_batches))
        except Exception:  # noqa: BLE001
            return 1000

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["cfpl_meta"] = {**self.meta, "cfpl": self.model.cfg.to_dict()}
