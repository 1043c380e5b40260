"""Stable Diffusion for vislab: load components from a local diffusers folder or build a tiny random
set, textual-inversion token handling, cross-attention capture through attention processors, and
personalisation learners (DreamBooth, textual inversion, LoRA) as LightningModules.

Names are imported lazily (diffusers is slow to import).
"""

from __future__ import annotations

from typing import Any

_WHERE = {
    "SDComponents": "components",
    "load_sd": "components",
    "tiny_sd": "components",
    "TINY_SD": "components",
    "check_sd_folder": "components",
    "add_placeholder_tokens": "inversion",
    "placeholder_names": "inversion",
    "expand_placeholder": "inversion",
    "TokenRowsGuard": "inversion",
    "save_learned_embeds": "inversion",
    "read_learned_embeds": "inversion",
    "load_learned_embeds": "inversion",
    "AttentionStore": "attention",
    "StoreCrossAttnProcessor": "attention",
    "capture_cross_attention": "attention",
    "cross_attention_layers": "attention",
    "PersonalizationLearner": "learners",
    "DreamBoothLearner": "learners",
    "TextualInversionLearner": "learners",
    "LoRALearner": "learners",
    "LEARNERS": "learners",
    "load_personalized": "learners",
    "dreambooth_loss": "learners",
    "weighted_mse": "learners",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"vislab.diffusion.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vislab.diffusion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
