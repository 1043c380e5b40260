"""The PVLR LightningModule: ASL training, AdamW with a x0.1 backbone group, OneCycle, mAP validation."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from pvlr.losses import asymmetric_loss
from pvlr.metrics import mean_average_precision, prf_metrics
from pvlr.model import PVLR, PVLRConfig


def build_clip(spec: dict[str, Any]):
    """The frozen CLIP of the config's ``clip`` section, by :func:`vislab.models.create_clip` (``source``: toy |
    tiny | a local Hugging Face folder | an OpenAI ``.pt`` | an open_clip name with ``checkpoint`` | ``embedded``,
    the architecture stored in a pvlr checkpoint, whose state dict then fills the weights). Never trains: the
    training run makes the toy CLIP first (:func:`vislab.models.pretrain_toy`)."""
    from vislab.models import create_clip

    return create_clip(spec)


def clip_architecture(clip, spec: dict[str, Any]) -> dict[str, Any]:
    """The ``clip`` config that rebuilds ``clip``'s architecture without its original files (see build_clip)."""
    from vislab.models import embedded_clip_spec

    return embedded_clip_spec(clip, spec)


def adamw(groups: list[dict[str, Any]]) -> torch.optim.AdamW:
    """AdamW over parameter groups, with PyTorch's fused kernel where every parameter is a float tensor on CPU or
    CUDA (same update as the per-parameter loop, one kernel per step), else the multi-tensor ``foreach`` kernel."""
    ps = [p for g in groups for p in g["params"]]
    fused = {p.device.type for p in ps} <= {"cpu", "cuda"} and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in ps)
    return torch.optim.AdamW(groups, **({"fused": True} if fused else {"foreach": True}))


class PVLRModule(pl.LightningModule):
    """Trains :class:`PVLR`; logs ``val/mAP`` (and CF1/OF1) each validation epoch."""

    def __init__(self, classnames: list[str], model: dict[str, Any], clip: dict[str, Any], optim: dict[str, Any],
                 loss: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.model = PVLR(build_clip(clip), classnames, PVLRConfig(**model))
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        loss = asymmetric_loss(self(images), targets, **self.hparams.loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self._val.append((self(images).float().cpu(), targets.cpu()))  # logits: sigmoids saturate and tie

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logits = torch.cat([s for s, _ in self._val])
        targets = torch.cat([t for _, t in self._val])
        self._val.clear()
        if self.trainer.world_size > 1:
            logits = self.all_gather(logits).flatten(0, 1).cpu()
            targets = self.all_gather(targets).flatten(0, 1).cpu()
        prf = prf_metrics(torch.sigmoid(logits.double()), targets)
        self.log("val/mAP", mean_average_precision(logits, targets), prog_bar=True, sync_dist=False)
        self.log("val/CF1", prf["CF1"])
        self.log("val/OF1", prf["OF1"])

    test_step = validation_step

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The checkpoint holds every weight (CLIP and backbone included), so it must not need the original
        CLIP or ResNet files: store the CLIP architecture instead of its path, and no backbone weight file."""
        hp = checkpoint.get("hyper_parameters")
        if hp is not None:
            hp = dict(hp)
            hp["clip"] = clip_architecture(self.model.clip, dict(hp["clip"]))
            hp["model"] = {**hp["model"], "visual_weights": None}
            checkpoint["hyper_parameters"] = hp
    on_test_epoch_end = on_validation_epoch_end

    def configure_optimizers(self):
        o = self.hparams.optim
        groups = self.model.trainable_groups()
        params = [
            {"params": groups["decay"], "lr": o["lr"], "weight_decay": o["weight_decay"]},
            {"params": groups["no_decay"], "lr": o["lr"], "weight_decay": 0.0},
        ]
        if groups["backbone"]:
            params.append({"params": groups["backbone"], "lr": o["lr"] * o["backbone_lr_mult"], "weight_decay": o["weight_decay"]})
        opt = adamw([g for g in params if g["params"]])
        total = int(self.trainer.estimated_stepping_batches)
        if o.get("schedule", "onecycle") != "onecycle" or total < 2:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                    pct_start=o["pct_start"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> dict[str, float]:
    """mAP (ranked by logits) and the threshold/top-3 metrics (on sigmoid probabilities) of ``model`` on
    ``loader`` (eval mode, on the model's device)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    scores, targets = [], []
    for images, t in loader:
        scores.append(model(images.to(dev)).float().cpu())
        targets.append(t)
    model.train(was)
    s, t = torch.cat(scores), torch.cat(targets)
    return {"mAP": mean_average_precision(s, t), **prf_metrics(torch.sigmoid(s.double()), t)}
