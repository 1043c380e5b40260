"""LightningModules, one per training stage.

Stage 1 (:class:`DiffusionModule`, run twice): an unconditional pixel-space DDPM ``eps_G`` on live
training frames and ``eps_S`` on spoof training frames. Stage 2 (:class:`ClassifierModule`): the
two-stream DepthNet on (x, N) with depth supervision. The classifier checkpoint also carries both
diffusion models (frozen) and the bridge settings, so one ``.ckpt`` is the whole de-spoofing pipeline
(:meth:`ClassifierModule.despoof` / :meth:`ClassifierModule.predict_images`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn

from despoofdiff.losses import depth_loss, diffusion_loss
from despoofdiff.model import (
    DDIMBridge,
    NoiseStandardizer,
    TwoStreamDepthNet,
    build_unet,
    liveness_score,
    make_scheduler,
    spoof_noise,
)


class DiffusionModule(pl.LightningModule):
    """One de-spoofing diffusion model (``domain`` = ``genuine`` for eps_G, ``spoof`` for eps_S).

    Batch: (B,3,H,W) images in [-1,1]. Loss: :func:`diffusion_loss` at t ~ U{0..T-1},
    x_t = sqrt(a_t) x0 + sqrt(1-a_t) eps. Optional EMA of the weights (``ema_decay`` > 0) is what
    :meth:`denoiser` returns. ``init_state`` loads pretrained UNet weights (e.g. CelebA-HQ DDPM) first.
    """

    def __init__(
        self,
        unet: dict[str, Any],
        domain: str = "genuine",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        ema_decay: float = 0.0,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        init_state: dict[str, torch.Tensor] | None = None,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        if domain not in ("genuine", "spoof"):
            raise ValueError(f"domain must be genuine or spoof, got {domain!r}")
        self.save_hyperparameters(ignore=["init_state"])
        self.unet = build_unet(unet)
        if init_state is not None:
            self.unet.load_state_dict(init_state)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.scheduler = make_scheduler(num_train_timesteps, beta_schedule)
        self.ema = None
        if ema_decay > 0:
            self.ema = copy.deepcopy(self.unet).requires_grad_(False)

    def denoiser(self) -> nn.Module:
        """The weights used for the bridge: the EMA copy when enabled, else the trained UNet."""
        return self.ema if self.ema is not None else self.unet

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        x0 = batch["x"] if isinstance(batch, dict) else batch
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        x_t = self.scheduler.add_noise(x0, noise, t)
        loss = diffusion_loss(self.unet(x_t, t).sample, noise)
        self.log(f"{self.hparams.domain}/train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x0.shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            d = float(self.hparams.ema_decay)
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.unet.parameters()):
                    pe.lerp_(p.detach(), 1 - d)
                for be, b in zip(self.ema.buffers(), self.unet.buffers()):
                    be.copy_(b)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.unet.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class ClassifierModule(pl.LightningModule):
    """The two-stream DepthNet with depth supervision, plus (frozen) the de-spoofing bridge.

    Batch dict: ``x`` (B,3,H,W) in [-1,1], ``noise`` raw N (B,3,H,W), ``depth`` (B,1,h,w) target
    (pseudo-depth for live, zeros for spoof), ``live`` (B,) in {0,1}.
    Loss: :func:`depth_loss` = MSE + CDL. Score: :func:`liveness_score` (mean of D_hat).
    Validation logs AUC, EER and the EER threshold (kept as :attr:`threshold`); test logs
    APCER/BPCER/ACER/HTER at that dev threshold and AUC.
    """

    def __init__(
        self,
        classifier: dict[str, Any],
        bridge: dict[str, Any],
        unet_genuine: dict[str, Any],
        unet_spoof: dict[str, Any] | None,
        resolution: int,
        noise_mode: str = "standardize",
        lr: float = 1e-4,
        weight_decay: float = 5e-5,
        lr_step_epochs: int = 40,
        lr_gamma: float = 0.5,
        cdl_weight: float = 1.0,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = TwoStreamDepthNet(**classifier)
        self.standardizer = NoiseStandardizer(3, noise_mode)
        eps_g = build_unet(unet_genuine).requires_grad_(False)
        eps_s = build_unet(unet_spoof).requires_grad_(False) if unet_spoof is not None else None
        sched = make_scheduler(num_train_timesteps, beta_schedule)
        self.bridge = DDIMBridge(eps_g, eps_s, sched.alphas_cumprod, **bridge)
        self.register_buffer("threshold", torch.tensor(0.5))
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._test: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    # ----------------------------------------------------------------- pipeline
    def set_diffusion(self, eps_g: nn.Module, eps_s: nn.Module | None) -> None:
        """Copy trained diffusion weights into the (frozen) bridge."""
        self.bridge.eps_g.load_state_dict(eps_g.state_dict())
        if eps_s is not None and self.bridge.eps_s is not None:
            self.bridge.eps_s.load_state_dict(eps_s.state_dict())

    @torch.no_grad()
    def despoof(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,H,W) in [-1,1] -> (x_g, N = x - x_g)."""
        x_g = self.bridge(x)
        return x_g, spoof_noise(x, x_g)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """(x, raw N) -> D_hat (B,1,h,w)."""
        return self.net(x, self.standardizer(noise))

    def score(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Liveness score (higher = live), (B,)."""
        return liveness_score(self(x, noise))

    @torch.no_grad()
    def predict_images(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full inference: x (B,3,H,W) in [-1,1] -> score, live decision, depth, x_g, N."""
        x_g, n = self.despoof(x)
        d = self(x, n)
        s = liveness_score(d)
        return {"score": s, "live": (s >= self.threshold).long(), "depth": d, "x_g": x_g, "noise": n}

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        d = self(batch["x"], batch["noise"])
        loss = depth_loss(d, batch["depth"], self.hparams.cdl_weight)
        self.log("cls/train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=d.shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        d = self(batch["x"], batch["noise"])
        self.log("cls/val_loss", depth_loss(d, batch["depth"], self.hparams.cdl_weight), batch_size=d.shape[0], sync_dist=True)
        self._val.append((liveness_score(d).detach(), batch["live"].detach()))

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        if self.trainer is not None and self.trainer.world_size > 1:
            return self.all_gather(t).reshape(-1)
        return t

    def on_validation_epoch_end(self) -> None:
        from despoofdiff.metrics import auc, eer_threshold

        if not self._val:
            return
        s = self._gather(torch.cat([a for a, _ in self._val])).cpu().numpy()
        y = self._gather(torch.cat([b for _, b in self._val])).cpu().numpy()
        self._val.clear()
        if len(set(y.tolist())) < 2:
            return
        thr, eer = eer_threshold(s, y)
        self.threshold.fill_(float(thr))
        self.log_dict({"cls/val_auc": auc(s, y), "cls/val_eer": eer, "cls/val_threshold": float(thr)}, sync_dist=False)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        d = self(batch["x"], batch["noise"])
        self._test.append((liveness_score(d).detach(), batch["live"].detach(), list(batch.get("attack", []))))

    def on_test_epoch_end(self) -> None:
        from despoofdiff.metrics import evaluate

        if not self._test:
            return
        s = self._gather(torch.cat([a for a, _, _ in self._test])).cpu().numpy()
        y = self._gather(torch.cat([b for _, b, _ in self._test])).cpu().numpy()
        attacks = sum((c for _, _, c in self._test), []) or None
        if attacks is not None and len(attacks) != len(s):  # strings are not gathered across DDP ranks
            attacks = None
        self._test.clear()
        m = evaluate(s, y, float(self.threshold), attacks)
        self.log_dict({f"cls/test_{k}": float(v) for k, v in m.items() if isinstance(v, (int, float))})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(self.hparams.lr_step_epochs)), gamma=self.hparams.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
