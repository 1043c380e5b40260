"""Stage 2: learn the incantation P* of one prompt (a LightningModule over the slot parameters only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from incantations.guidance import Guidance, encode_uncond
from incantations.losses import (
    alignment_loss,
    consistency_loss,
    quality_loss,
    semantic_loss,
    sparsity_loss,
    total_loss,
)
from incantations.model import Frozen, IncantationPrompt, neutral_id, word_vocabulary
from incantations.sampling import ddim_scheduler, guided_eps, initial_latents, sample, x0_from_eps


class _Steps(Dataset):
    """``n`` optimisation steps (the loss does not depend on the item: one prompt, one probe)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@dataclass
class LearnConfig:
    k: int = 8
    mode: str = "hard"
    iters: int = 1000
    lr: float = 0.1
    weight_decay: float = 0.1
    weights: dict[str, float] | None = None  # q, s, tt, ti, sp
    vocab_words: list[str] | None = None  # restrict the hard projection (toy vocabulary); None: whole words
    ti_refresh: int = 25
    steps: int = 50
    cfg: float = 7.5
    k_c: int = 10
    k_f: int = 30
    seed: int = 0

    def lambdas(self) -> dict[str, float]:
        return {"q": 0.5, "s": 1.0, "tt": 0.6, "ti": 0.0, "sp": 0.5, **(self.weights or {})}


class IncantationLearner(pl.LightningModule):
    """Optimises the K prompt slots; the frozen model is held outside the module's state (never updated,
    never saved). Keeps the best iterate by total loss (``best_ids`` in hard mode, ``best_P`` in soft)."""

    def __init__(self, frozen: Frozen, guidance: Guidance, cfg: LearnConfig):
        super().__init__()
        self._frozen = [frozen]  # a list hides the frozen modules from nn.Module registration
        self.guidance, self.cfg = guidance, cfg
        tok = frozen.sd.tokenizer
        self.slot_id = neutral_id(tok)
        self.prompt = IncantationPrompt(frozen.table, word_vocabulary(tok, cfg.vocab_words), self.slot_id, cfg.k, cfg.mode)
        with torch.no_grad():
            emb, ids = frozen.embed(guidance.prompt, None, 0)
            self.register_buffer("g_p", frozen.g(emb, ids), persistent=False)
            self.register_buffer("g_sem", frozen.g_text([guidance.p_sem]) if guidance.p_sem else torch.empty(0), persistent=False)
        self.best_loss = math.inf
        self.best_P = self.prompt.P.detach().clone()
        self.best_ids = self.prompt.project().clone()
        self.history: list[dict[str, float]] = []
        self._ti_cache: dict[int, torch.Tensor] = {}

    @property
    def frozen(self) -> Frozen:
        return self._frozen[0]

    def terms(self) -> dict[str, torch.Tensor]:
        """Every loss term at the current slots."""
        fr, lam = self.frozen, self.cfg.lambdas()
        slots = self.prompt.slots()
        emb, ids = fr.embed(self.guidance.prompt, slots, self.slot_id)
        g = fr.g(emb, ids)
        t = {
            "q": quality_loss(g, self.g_p, self.guidance.delta.to(g)),
            "s": semantic_loss(g, self.g_sem if self.g_sem.numel() else None),
            "tt": consistency_loss(g, self.g_p),
            "sp": sparsity_loss(self.prompt.P, self.prompt.e_neutral),
        }
        if lam.get("ti", 0.0):
            t["ti"] = self.ti_term(emb)
        return t

    def ti_term(self, emb: torch.Tensor) -> torch.Tensor:
        """L_ti through one grad-enabled CFG UNet call at a cached latent of the learned prompt's trajectory
        (refreshed every ``ti_refresh`` steps; step index moves from k_c to k_f over the iterations)."""
        fr, c = self.frozen, self.cfg
        it = int(self.global_step)
        if it % c.ti_refresh == 0 or not self._ti_cache:
            with torch.no_grad():
                out = sample(fr.sd, fr.H(emb), encode_uncond(fr), initial_latents(fr.sd, c.seed), c.steps, c.cfg,
                             keep_latents=tuple(range(c.k_c, c.k_f + 1)))
            self._ti_cache = out["z"]
        k = c.k_c + round((c.k_f - c.k_c) * min(it / max(c.iters - 1, 1), 1.0))
        sched = ddim_scheduler(fr.sd, c.steps)
        t = sched.timesteps[k]
        with torch.no_grad():
            uncond = encode_uncond(fr)
        eps = guided_eps(fr.sd, self._ti_cache[k], t, fr.H(emb), uncond, c.cfg)
        img = fr.sd.decode_latents(x0_from_eps(sched, self._ti_cache[k], eps, t))
        return alignment_loss(self.g_p, fr.f(img))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        terms = self.terms()
        loss = total_loss(terms, self.cfg.lambdas())
        value = float(loss.detach())
        if value < self.best_loss:
            self.best_loss = value
            self.best_P = self.prompt.P.detach().clone()
            self.best_ids = self.prompt.project().clone()
        self.history.append({"loss": value, **{k: float(v.detach()) for k, v in terms.items()}})
        self.log("loss", loss, prog_bar=True, batch_size=1)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW([self.prompt.P], lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Steps(self.cfg.iters), batch_size=1)

    # ------------------------------------------------------------------ results
    def best_slots(self) -> torch.Tensor:
        """The best iterate's slot embeddings (K, W): projected vocabulary rows (hard) or P (soft)."""
        if self.cfg.mode == "hard":
            return self.prompt.table[self.best_ids]
        return self.best_P

    def text(self) -> str:
        """``p, <incantation>`` (hard mode; soft mode returns p)."""
        if self.cfg.mode != "hard":
            return self.guidance.prompt
        words = self.prompt.render(self.frozen.sd.tokenizer, self.best_ids)
        return f"{self.guidance.prompt}, {words}" if words else self.guidance.prompt

    def prompt_embeds(self) -> torch.Tensor:
        """UNet conditioning H(p (+) P*) (1, L, D) of the best iterate."""
        with torch.no_grad():
            emb, _ = self.frozen.embed(self.guidance.prompt, self.best_slots(), self.slot_id)
            return self.frozen.H(emb)


def learn(frozen: Frozen, guidance: Guidance, cfg: LearnConfig, trainer_kwargs: dict[str, Any] | None = None) -> IncantationLearner:
    """Run the learning stage with a Lightning Trainer (CPU/GPU, DDP-capable); returns the fitted learner."""
    from vislab.lightning import build_trainer

    learner = IncantationLearner(frozen, guidance, cfg)
    kw = {"max_epochs": 1, "enable_progress_bar": False, **(trainer_kwargs or {})}
    build_trainer(None, kw).fit(learner)
    return learner
