"""3D Gaussian Splatting fit as a LightningModule (gsplat 1.5.3 ``simple_trainer`` recipe).

Manual optimisation with one Adam per parameter (eps 1e-15); gsplat's ``DefaultStrategy`` hooks
around backward (``step_pre_backward`` → backward → optimiser steps → ``step_post_backward``);
opacity reset done explicitly (gsplat 1.5.3's reset condition never fires); means LR decays
exponentially to 1 % over ``max_steps``; SH degree grows by one band every ``sh_degree_interval``.

The Gaussians change in number while training, so they are kept out of the module's registered
parameters (DDP could not follow them): they live in ``self.splats`` (a plain dict of Parameters),
are saved in the checkpoint under ``"splats"``, and under DDP their gradients and the strategy's
running statistics are all-reduced by hand, which keeps every rank's Gaussians identical.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa
from torch import Tensor

from sags.gaussians import Splats, activated, rgb_to_sh
from sags.losses import photometric_loss
from sags.render import psnr, rasterize


def _dist() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


class SyncedDefaultStrategy(DefaultStrategy):
    """gsplat's ``DefaultStrategy``; under DDP the grad2d/count statistics are summed over ranks
    before growing, so every rank densifies the same Gaussians."""

    def _grow_gs(self, params, optimizers, state, step):  # noqa: ANN001 - gsplat's signature
        if _dist() and state.get("grad2d") is not None:
            torch.distributed.all_reduce(state["grad2d"])
            torch.distributed.all_reduce(state["count"])
        return super()._grow_gs(params, optimizers, state, step)


def knn_init_scales(points: Tensor, k: int = 3) -> Tensor:
    """log of the RMS distance to the k nearest neighbours, per point (gsplat's init) [N] -> [N, 3]."""
    n = len(points)
    out = torch.empty(n)
    for s in range(0, n, 2048):
        d = torch.cdist(points[s : s + 2048], points)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        nn = d.topk(min(k, max(n - 1, 1)), largest=False).values
        out[s : s + 2048] = torch.sqrt((nn**2).mean(-1)).clamp(min=1e-7)
    return torch.log(out)[:, None].repeat(1, 3)


def init_splats(
    points: Tensor,
    rgb: Tensor,
    sh_degree: int,
    init_opacity: float = 0.1,
    generator: torch.Generator | None = None,
) -> Splats:
    """gsplat's initialisation: knn log-scales, quats ~ U[0,1)⁴, opacity 0.1, sh0 from colour, shN = 0."""
    N = len(points)
    K = (sh_degree + 1) ** 2
    return {
        "means": points.float().clone(),
        "scales": knn_init_scales(points.float()),
        "quats": torch.rand(N, 4, generator=generator),
        "opacities": torch.logit(torch.full((N,), init_opacity)),
        "sh0": rgb_to_sh(rgb.float())[:, None, :],
        "shN": torch.zeros(N, K - 1, 3),
    }


class GaussianSplatModule(pl.LightningModule):
    """Fit 3D Gaussians to posed images. Batches: {image [1,H,W,3], viewmat [1,4,4], K [1,3,3]}."""

    LR_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")

    def __init__(
        self,
        splats: Splats,
        scene_scale: float = 1.0,
        sh_degree: int = 3,
        sh_degree_interval: int = 1000,
        ssim_lambda: float = 0.2,
        lr: dict[str, float] | None = None,
        means_lr_final_ratio: float = 0.01,
        max_steps: int = 30000,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        strategy: dict[str, Any] | None = None,
        near_plane: float = 0.01,
        far_plane: float = 1e10,
        eps2d: float = 0.3,
        rasterize_mode: str = "classic",
        backend: str = "auto",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["splats"])
        self.lr = {
            "means": 1.6e-4,
            "scales": 5e-3,
            "quats": 1e-3,
            "opacities": 5e-2,
            "sh0": 2.5e-3,
            "shN": 2.5e-3 / 20,
            **(lr or {}),
        }
        self.splats: dict[str, torch.nn.Parameter] = {
            k: torch.nn.Parameter(v.detach().clone().float()) for k, v in splats.items()
        }
        self.strategy = SyncedDefaultStrategy(**(strategy or {}))
        self.strategy_state = self.strategy.initialize_state(scene_scale=scene_scale)
        self._anchor = torch.nn.Parameter(torch.zeros(1))  # DDP needs one registered parameter
        self.register_buffer("bg", torch.tensor(background, dtype=torch.float32))

    # ---------------------------------------------------------------- parameters on the right device
    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        """``to``/``cuda``/``cpu`` also move the Gaussians and the strategy state (not registered: their
        number changes), as :meth:`_to_module_device` does before the optimisers are made."""
        super()._apply(fn, recurse)
        for k, v in self.splats.items():
            out = fn(v)
            if out is not v:
                keep = isinstance(v, torch.nn.Parameter) and not isinstance(out, torch.nn.Parameter)
                self.splats[k] = torch.nn.Parameter(out, requires_grad=v.requires_grad) if keep else out
        for k, v in self.strategy_state.items():
            if isinstance(v, torch.Tensor):
                self.strategy_state[k] = fn(v)
        return self

    def _to_module_device(self) -> None:
        dev = self._anchor.device
        if self.splats["means"].device != dev:
            self.splats = {k: torch.nn.Parameter(v.detach().to(dev)) for k, v in self.splats.items()}

    def export_splats(self) -> Splats:
        """Detached CPU copy of the Gaussians (pre-activation)."""
        return {k: v.detach().cpu().clone() for k, v in self.splats.items()}

    # ---------------------------------------------------------------- rendering
    def render(
        self, viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor, dict]:
        """RGB [C,H,W,3], alpha [C,H,W,1], expected depth [C,H,W,1], info."""
        a = activated(self.splats)
        deg = self.hparams.sh_degree if sh_degree is None else sh_degree
        C = viewmats.shape[0]
        out, alpha, info = rasterize(
            a["means"],
            a["quats"],
            a["scales"],
            a["opacities"],
            a["colors"],
            viewmats,
            Ks,
            width,
            height,
            sh_degree=deg,
            backgrounds=self.bg.to(a["means"].device).expand(C, 3),
            near_plane=self.hparams.near_plane,
            far_plane=self.hparams.far_plane,
            eps2d=self.hparams.eps2d,
            rasterize_mode=self.hparams.rasterize_mode,
            backend=self.hparams.backend,
        )
        return out[..., :3], alpha, out[..., 3:4], info

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        # called after the strategy moved the module (and after a checkpoint restored the splats)
        self._to_module_device()
        eps = 1e-15
        return [
            torch.optim.Adam(
                [self.splats[k]], lr=self.lr[k] * (self.hparams.scene_scale if k == "means" else 1.0), eps=eps
            )
            for k in self.LR_KEYS
        ]

    def _raw_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return {k: getattr(o, "optimizer", o) for k, o in zip(self.LR_KEYS, opts)}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        step = self.global_step
        hp = self.hparams
        opts = self.optimizers()
        raw = self._raw_optimizers()
        # means LR: exponential decay to means_lr_final_ratio over max_steps
        gamma = hp.means_lr_final_ratio ** (min(step, hp.max_steps) / max(hp.max_steps, 1))
        raw["means"].param_groups[0]["lr"] = self.lr["means"] * hp.scene_scale * gamma
        img = batch["image"]
        H, W = img.shape[1:3]
        deg = min(step // max(hp.sh_degree_interval, 1), hp.sh_degree)
        rgb, alpha, depth, info = self.render(batch["viewmat"], batch["K"], W, H, deg)
        self.strategy.step_pre_backward(self.splats, raw, self.strategy_state, step, info)
        loss, parts = photometric_loss(rgb, img, hp.ssim_lambda)
        self.manual_backward(loss + 0.0 * self._anchor.sum())
        if _dist():
            ws = torch.distributed.get_world_size()
            for p in self.splats.values():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad /= ws
        for i, o in enumerate(opts if isinstance(opts, list) else [opts]):
            # one Lightning step (counts global_step once per batch), the rest directly
            if i == 0:
                o.step()
            else:
                o.optimizer.step()
            o.zero_grad(set_to_none=True)
        n_before = len(self.splats["means"])
        self.strategy.step_post_backward(self.splats, raw, self.strategy_state, step, info, packed=False)
        if step > 0 and step % self.strategy.reset_every == 0 and step < self.strategy.refine_stop_iter:
            reset_opa(self.splats, raw, self.strategy_state, value=self.strategy.prune_opa * 2.0)
        if _dist() and len(self.splats["means"]) != n_before:
            for p in self.splats.values():
                torch.distributed.broadcast(p.data, 0)
        self.log_dict(
            {
                "train/loss": loss.detach(),
                "train/l1": parts["l1"],
                "train/ssim": parts["ssim"],
                "train/psnr": psnr(rgb.detach(), img),
            },
            prog_bar=True,
            batch_size=1,
        )
        self.log("train/num_gs", float(len(self.splats["means"])), batch_size=1)
        return loss.detach()

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        img = batch["image"]
        H, W = img.shape[1:3]
        rgb, _, _, _ = self.render(batch["viewmat"], batch["K"], W, H)
        self.log("val/psnr", psnr(rgb.clamp(0, 1), img), prog_bar=True, batch_size=1, sync_dist=True)

    @torch.no_grad()
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        img = batch["image"]
        H, W = img.shape[1:3]
        rgb, _, _, _ = self.render(batch["viewmat"], batch["K"], W, H)
        self.log("test/psnr", psnr(rgb.clamp(0, 1), img), batch_size=1, sync_dist=True)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["splats"] = self.export_splats()
        checkpoint["strategy_state"] = {
            k: (v.detach().cpu() if isinstance(v, Tensor) else v) for k, v in self.strategy_state.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "splats" not in checkpoint:
            from vislab.errors import VislabError

            raise VislabError("checkpoint holds no 'splats' (not a sags Gaussian-splatting checkpoint)")
        self.splats = {k: torch.nn.Parameter(v.float().clone()) for k, v in checkpoint["splats"].items()}
        self.strategy_state = dict(checkpoint.get("strategy_state", self.strategy_state))


@torch.no_grad()
def evaluate_psnr(
    splats: Splats,
    images: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    sh_degree: int,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
) -> float:
    """Mean PSNR of renders of ``splats`` against images [V, H, W, 3]."""
    from vislab.runtime import device

    dev = device()
    a = activated({k: v.detach().to(dev) for k, v in splats.items()})
    images, viewmats, Ks = images.to(dev), viewmats.to(dev), Ks.to(dev)
    H, W = images.shape[1:3]
    vals = []
    bg = torch.tensor(background, device=dev)
    for i in range(len(images)):
        out, _, _ = rasterize(
            a["means"],
            a["quats"],
            a["scales"],
            a["opacities"],
            a["colors"],
            viewmats[i : i + 1],
            Ks[i : i + 1],
            W,
            H,
            sh_degree=min(sh_degree, int(math.isqrt(a["colors"].shape[1])) - 1),
            backgrounds=bg[None],
            backend=backend,
        )
        vals.append(float(psnr(out[0, ..., :3].clamp(0, 1), images[i])))
    return float(np.mean(vals))
