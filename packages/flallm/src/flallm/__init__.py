"""flallm: FLa-LLM: factorized learning with an LLM for gloss-free sign language translation (arXiv:2403.12556).

Public API (imported lazily, so ``flallm --help`` stays fast):

- models: ``VisualEncoder``, ``Backbone``, ``LocalTemporalModule``, ``VLAdapter``, ``LLMAdapter``,
  ``build_light_t``, ``build_llm``
- training stages: ``Stage1Module``, ``Stage2Module``; ``load_module(ckpt)`` rebuilds either from a file
- data: ``SignDataModule``, ``FeatureDataModule``, the layout readers, ``make_world`` (synthetic signs)
- text: ``SignTokenizer``; ``trim_mbart``; metrics ``bleu``, ``rouge_l``, ``translation_scores``
- inference: ``translate_files(ckpt, inputs)``; ``load(run_dir)`` restores a run's trained model
  (``vislab.models.load_run``'s hook)
- training: ``fit(cfg)`` (both stages on the config's data, returns the model); ``train(run)`` (the ``flallm`` run)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "VisualEncoder": "model", "Backbone": "model", "LocalTemporalModule": "model", "VLAdapter": "model",
    "LLMAdapter": "model", "build_light_t": "model", "build_llm": "model",
    "Stage1Module": "module", "Stage2Module": "module", "load_module": "module",
    "SignDataModule": "data", "FeatureDataModule": "data", "read_phoenix14t": "data", "read_csl_daily": "data",
    "read_how2sign": "data", "read_gfslt": "data", "read_manifest": "data", "read_video": "data",
    "make_world": "world", "SignTokenizer": "tokenizer", "trim_mbart": "commands", "translate_files": "commands",
    "bleu": "metrics", "rouge_l": "metrics", "translation_scores": "metrics", "generation_loss": "losses",
    "train": "train", "fit": "train", "load": "module",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"flallm.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'flallm' has no attribute {name!r}")
