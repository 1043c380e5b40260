"""Lightning module of UniAttackDetection: the three losses, Adam + cosine, dev-set ACER."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from uniattack.losses import specific_loss, total_loss, ukm_loss, unified_loss
from uniattack.metrics import evaluate
from uniattack.model import UniAttack


class UniAttackModule(pl.LightningModule):
    """Batches: ``image`` (B, 3, H, W) in [0, 1], ``label`` (B,) detailed 0-3; y_bin = (label != 0)."""

    def __init__(self, model: UniAttack, optim: dict[str, Any] | None = None, lambda_s: float = 1.0, lambda_ukm: float = 1.0,
                 meta: dict | None = None, video_level: bool = False):
        super().__init__()
        self.video_level = video_level  # dev ACER on frame scores averaged per video (video protocols)
        self.model = model
        self.optim = dict(optim or {})
        self.lambda_s, self.lambda_ukm = lambda_s, lambda_ukm
        self.meta = dict(meta or {})
        self._s: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []
        self._v: list[str] = []

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        y_det = batch["label"].long()
        y_bin = (y_det != 0).long()
        out = self.model(batch["image"])
        l_u = unified_loss(out["z_u"], y_bin)
        l_s = specific_loss(out["z_s"], y_det)
        l_ukm = ukm_loss(out["u_hat"], self.model.teacher, self.model.cfg.ukm_form, self.model.cfg.ukm_temperature)
        loss = total_loss(l_u, l_s, l_ukm, self.lambda_s, self.lambda_ukm)
        acc = (out["z_u"].argmax(-1) == y_bin).float().mean()
        return {"loss": loss, "unified": l_u, "specific": l_s, "ukm": l_ukm, "acc": acc}

    def training_step(self, batch, batch_idx):
        parts = self.losses(batch)
        n = len(batch["label"])
        for k, v in parts.items():
            self.log(f"train/{k}", v, prog_bar=k in ("loss", "acc"), batch_size=n, sync_dist=True)
        return parts["loss"]

    def validation_step(self, batch, batch_idx):
        self._s.append(self.model.scores(batch["image"])["p_live"].cpu())
        self._y.append(batch["live"].cpu())
        self._v.extend(batch.get("video") or [])

    def on_validation_epoch_end(self):
        if not self._s:
            return
        s, y, v = torch.cat(self._s), torch.cat(self._y), self._v
        self._s, self._y, self._v = [], [], []
        if self.trainer is not None and self.trainer.world_size > 1:  # each rank scored a shard: frame level
            s, y = self.all_gather(s).reshape(-1).cpu(), self.all_gather(y).reshape(-1).cpu()
        elif self.video_level and len(v) == len(s):  # video protocols: frame scores averaged per video
            from vislab.metrics import video_scores

            vs = video_scores(s.double().numpy(), v, y.numpy())
            s, y = torch.as_tensor(vs["scores"]), torch.as_tensor(vs["live"])
        if y.min() == y.max():
            return
        r = evaluate(s.numpy(), y.numpy())  # dev: its own EER threshold
        # the same value on every rank (gathered scores), so ModelCheckpoint(monitor="val/acer") works under DDP
        for k in ("acer", "auc", "eer"):
            self.log(f"val/{k}", float(r[k]), prog_bar=k == "acer", sync_dist=False)

    def configure_optimizers(self):
        o = self.optim
        groups = [{"params": self.model.head_parameters(), "lr": float(o.get("lr", 2e-3))}]
        enc = self.model.encoder_parameters()
        if enc:
            groups.append({"params": enc, "lr": float(o.get("encoder_lr", 1e-6))})
        opt = torch.optim.Adam(groups, weight_decay=float(o.get("weight_decay", 0.0)))
        total = self._total_steps()
        warm = int(o.get("warmup_steps", 0) or 0)
        floor = float(o.get("min_lr_ratio", 0.0))

        def factor(step: int) -> float:
            """Linear warm-up, then cosine from the peak to ``min_lr_ratio`` of it."""
            if warm > 0 and step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "step"}}

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
        checkpoint["uniattack_meta"] = {**self.meta, "uniattack": self.model.cfg.to_dict()}
