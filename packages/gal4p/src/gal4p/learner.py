"""Learners: the LightningModules that personalise Stable Diffusion on a round's weighted training set.

The learner classes live in :mod:`vislab.diffusion.learners` (compinv fine-tunes with them too) and are
re-exported here; this module keeps gal4p's config-driven :func:`build_learner` and the gal4p model-folder
layout (``gal4p_model.json``, checkpoint metadata under ``"gal4p"``).

- :class:`DreamBoothLearner` (the paper's learner, faithful default): full UNet fine-tune, frozen text
  encoder and VAE, the identifier is plain text split into ordinary sub-tokens.
- :class:`TextualInversionLearner` (extension, not in the official code): only the identifier's new
  token embedding(s) train.
- :class:`LoRALearner` (extension, not in the official code): peft LoRA adapters on the UNet's attention
  projections.

All share the weighted DreamBooth step (:func:`gal4p.losses.dreambooth_loss` with per-sample weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.diffusion.learners import (  # noqa: F401 - re-exported gal4p names
    LEARNERS,
    DreamBoothLearner,
    LoRALearner,
    PersonalizationLearner,
    TextualInversionLearner,
)
from vislab.diffusion.learners import load_personalized as _load_personalized
from vislab.errors import VislabError

MODEL_FILE = "gal4p_model.json"


def build_learner(name: str, sd, cfg: dict[str, Any], identifier: str | None, class_word: str | None, round_index: int = 0):
    """A learner from the config's ``learner`` name and its ``optim`` / ``dreambooth`` / ``textual_inversion`` / ``lora`` sections."""
    if name not in LEARNERS:
        raise VislabError(f"unknown learner {name!r} (choose {', '.join(LEARNERS)})")
    o = cfg["optim"]
    kw: dict[str, Any] = dict(lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"], eps=o["eps"],
                              prior_loss_weight=cfg["dreambooth"]["prior_loss_weight"],
                              shared_timestep=cfg["dreambooth"]["shared_timestep"],
                              gradient_checkpointing=cfg["dreambooth"]["gradient_checkpointing"], round_index=round_index,
                              latents=cfg["dreambooth"]["latents"])
    if name == "textual_inversion":
        ti = cfg["textual_inversion"]
        if not identifier:
            raise VislabError("textual inversion needs data.identifier (the placeholder token)")
        kw.update(placeholder=identifier, init_word=ti["init_word"] or class_word, num_vectors=ti["num_vectors"])
        if ti.get("lr"):
            kw["lr"] = ti["lr"]
    elif name == "lora":
        lc = cfg["lora"]
        kw.update(rank=lc["rank"], alpha=lc["alpha"], target_modules=lc["target_modules"])
        if lc.get("lr"):
            kw["lr"] = lc["lr"]
    kw.update(model_file=MODEL_FILE, checkpoint_key="gal4p")
    return LEARNERS[name](sd, **kw)


def load_personalized(model_dir: str | Path, base: str | Path | None = None, device=None):
    """Load a saved gal4p model folder (written by ``learner.save_model``) as ``SDComponents``: the base
    Stable Diffusion (``base`` or the path recorded in ``gal4p_model.json``) with the learned UNet /
    embeddings / LoRA applied. Returns ``(sd, info)``."""
    return _load_personalized(model_dir, base, device, model_file=MODEL_FILE, what="gal4p",
                              hint="give a round folder such as <run>/model")
