"""CLIP for vislab: an offline tokenizer, loaders for Hugging Face and open_clip checkpoints behind one
:class:`ClipEncoder` interface, random-init tiny CLIPs for tests, and the CoOp prompt learner.

Names are imported lazily so ``from vislab.clip import clip_tokenizer`` does not pay for torch models.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "clip_tokenizer",
    "bpe_vocab_path",
    "ClipEncoder",
    "load_clip",
    "tiny_clip",
    "tiny_clip_config",
    "PromptLearner",
    "CLIP_MEAN",
    "CLIP_STD",
    "BOS_ID",
    "EOS_ID",
    "VOCAB_SIZE",
]

_WHERE = {
    "clip_tokenizer": "tokenizer",
    "bpe_vocab_path": "tokenizer",
    "BOS_ID": "tokenizer",
    "EOS_ID": "tokenizer",
    "VOCAB_SIZE": "tokenizer",
    "ClipEncoder": "encoder",
    "load_clip": "encoder",
    "tiny_clip": "encoder",
    "tiny_clip_config": "encoder",
    "CLIP_MEAN": "encoder",
    "CLIP_STD": "encoder",
    "PromptLearner": "prompt",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        mod = importlib.import_module(f"vislab.clip.{_WHERE[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module 'vislab.clip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
