"""Stage 2: learn the incantation P* of one prompt (a LightningModule over the slot parameters only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from vislab.devices import FollowsDevice

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
    select_seeds: tuple[int, ...] = (0,)  # seeds of the fixed selection latents (learned-on seeds, never evaluated)
    select_step: int | None = None  # DDIM step index of the fixed selection timestep (None: k_c)
    select_every: int = 1  # soft mode: score the iterate every n steps (hard mode: every new token set)
    steps: int = 50
    cfg: float = 7.5
    k_c: int = 10
    k_f: int = 30
    seed: int = 0

    @property
    def k_sel(self) -> int:
        return self.k_c if self.select_step is None else self.select_step

    def lambdas(self) -> dict[str, float]:
        return {"q": 0.5, "s": 1.0, "tt": 0.6, "ti": 0.0, "sp": 0.5, **(self.weights or {})}


class IncantationLearner(FollowsDevice, pl.LightningModule):
    """Optimises the K prompt slots; the frozen model is held outside the module's state (never updated,
    never saved).

    Best iterate: the total loss is no selection criterion (the timestep of L_ti moves over the iterations and
    the slots drift), so each iterate's *projected* prompt is scored by :meth:`selection_score`, the alignment
    cos(g(p), f(D(x0))) of the image the frozen model predicts with it from fixed latents (the probe trajectory
    of p at ``select_seeds``, step ``select_step``); the highest score is kept (``best_ids`` / ``best_P``).
    """

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
        self.best_score = -math.inf
        self.best_iter = -1
        self.register_buffer("best_P", self.prompt.P.detach().clone(), persistent=False)
        self.register_buffer("best_ids", self.prompt.project().clone(), persistent=False)
        self.history: list[dict[str, float]] = []
        self._ti_cache: dict[int, torch.Tensor] = {}
        self._ti_uncond_cache: dict[int, torch.Tensor] = {}  # eps_u at the cached latent of step k (no learned prompt in it)
        self._scored: dict[tuple[int, ...], float] = {}
        self._sched = ddim_scheduler(frozen.sd, cfg.steps)
        self._uncond_cache: torch.Tensor | None = None
        self._select_uncond_cache: torch.Tensor | None = None
        self.register_buffer("_select_z", self._selection_latents(), persistent=False)

    def _selection_latents(self) -> torch.Tensor:
        """The fixed latents z_k (S, C, h, w): the probe trajectory of the original prompt p at each selection
        seed, kept at step ``select_step``; they never change during learning."""
        fr, c = self.frozen, self.cfg
        with torch.no_grad():
            emb, _ = fr.embed(self.guidance.prompt, None, 0)
            cond, uncond = fr.H(emb), encode_uncond(fr)
            zs = [sample(fr.sd, cond, uncond, initial_latents(fr.sd, s), c.steps, c.cfg, keep_latents=(c.k_sel,),
                         stop_after=c.k_sel)["z"][c.k_sel] for s in c.select_seeds]
        return torch.cat(zs)

    def uncond(self) -> torch.Tensor:
        """H("") (1, L, D): the frozen unconditional conditioning, computed once per device."""
        u = self._uncond_cache
        if u is None or u.device != self.frozen.sd.device:
            with torch.no_grad():
                u = self._uncond_cache = encode_uncond(self.frozen)
        return u

    @torch.no_grad()
    def selection_score(self, slots: torch.Tensor) -> float:
        """mean_s cos(g(p), f(D(x0(z_k^s; p (+) slots)))) at the fixed latents and the fixed timestep.

        The unconditional branch at the fixed latents never changes: it runs once, then each score runs only the
        conditional UNet branch."""
        fr, c = self.frozen, self.cfg
        emb, _ = fr.embed(self.guidance.prompt, slots.detach(), self.slot_id)
        sched = self._sched
        t = sched.timesteps[c.k_sel]
        z = self._select_z
        n = z.shape[0]
        if self._select_uncond_cache is None or self._select_uncond_cache.device != z.device:
            self._select_uncond_cache = fr.sd.unet(z, t, encoder_hidden_states=self.uncond().expand(n, -1, -1)).sample
        cond = fr.H(emb).expand(n, -1, -1)
        eps = guided_eps(fr.sd, z, t, cond, self.uncond().expand(n, -1, -1), c.cfg, eps_uncond=self._select_uncond_cache)
        img = fr.sd.decode_latents(x0_from_eps(sched, z, eps, t))
        return float((fr.f(img) @ self.g_p.t().to(img.device)).mean())

    @property
    def frozen(self) -> Frozen:
        return self._frozen[0]

    def frozen_modules(self) -> list[torch.nn.Module]:
        """The frozen SD and guidance CLIP: never saved, but they follow the module's device."""
        sd = self.frozen.sd
        return [sd.text_encoder, sd.vae, sd.unet, self.frozen.clip]

    def on_fit_end(self) -> None:
        self._ti_cache, self._ti_uncond_cache = {}, {}  # latents of the last refresh: not needed after learning

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
            "sp": sparsity_loss(slots, self.prompt.e_neutral),  # on the projected tokens (hard mode)
        }
        if lam.get("ti", 0.0):
            t["ti"] = self.ti_term(emb)
        return t

    def ti_term(self, emb: torch.Tensor) -> torch.Tensor:
        """L_ti through one grad-enabled CFG UNet call at a cached latent of the learned prompt's trajectory
        (refreshed every ``ti_refresh`` steps; step index moves from k_c to k_f over the iterations).

        The unconditional branch eps_u at a cached latent does not depend on the learned prompt: it runs once per
        refresh and step index, without gradient; each iteration runs (and back-propagates) only the conditional
        branch, which is all the gradient flows through."""
        fr, c = self.frozen, self.cfg
        it = int(self.global_step)
        if it % c.ti_refresh == 0 or not self._ti_cache:
            with torch.no_grad():
                out = sample(fr.sd, fr.H(emb), self.uncond(), initial_latents(fr.sd, c.seed), c.steps, c.cfg,
                             keep_latents=tuple(range(c.k_c, c.k_f + 1)))
            self._ti_cache, self._ti_uncond_cache = out["z"], {}
        k = c.k_c + round((c.k_f - c.k_c) * min(it / max(c.iters - 1, 1), 1.0))
        sched = self._sched
        t = sched.timesteps[k]
        z = self._ti_cache[k]
        if k not in self._ti_uncond_cache:
            with torch.no_grad():
                self._ti_uncond_cache[k] = fr.sd.unet(z, t, encoder_hidden_states=self.uncond()).sample
        eps = guided_eps(fr.sd, z, t, fr.H(emb), self.uncond(), c.cfg, eps_uncond=self._ti_uncond_cache[k])
        img = fr.sd.decode_latents(x0_from_eps(sched, self._ti_cache[k], eps, t))
        return alignment_loss(self.g_p, fr.f(img))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        terms = self.terms()
        loss = total_loss(terms, self.cfg.lambdas())
        value = float(loss.detach())
        score = self._select(batch_idx)
        self.history.append({"loss": value, "select": score, **{k: float(v.detach()) for k, v in terms.items()}})
        self.log("loss", loss, prog_bar=True, batch_size=1)
        return loss

    def _select(self, it: int) -> float:
        """Score the current iterate (before the optimiser step) and keep it if it is the best so far."""
        if self.cfg.mode == "hard":
            ids = self.prompt.project()
            key = tuple(int(i) for i in ids)
            if key not in self._scored:
                self._scored[key] = self.selection_score(self.prompt.table[ids])
            score = self._scored[key]
        elif it % self.cfg.select_every == 0 or it == self.cfg.iters - 1:
            score = self.selection_score(self.prompt.P)
        else:
            return float("nan")
        if score > self.best_score:
            self.best_score, self.best_iter = score, it
            self.best_P = self.prompt.P.detach().clone()
            self.best_ids = self.prompt.project().clone()
        return score

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
        """The evaluated prompt ``p (+) P*`` as text (hard mode): p followed by all K learned tokens, neutral "-"
        slots included, so that tokenising it gives exactly the token ids the evaluation used. Soft mode
        returns p (the incantation is the ``prompt_embeds`` tensor)."""
        if self.cfg.mode != "hard":
            return self.guidance.prompt
        return f"{self.guidance.prompt} {self.prompt.render(self.frozen.sd.tokenizer, self.best_ids, keep_neutral=True)}"

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
