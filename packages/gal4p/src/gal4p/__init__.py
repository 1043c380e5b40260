"""gal4p: Generative Active Learning for image synthesis personalization (Zhang et al., ACM MM 2024, arXiv:2403.14987).

Public API (imported lazily): learners (:class:`DreamBoothLearner`, :class:`TextualInversionLearner`,
:class:`LoRALearner`), the loop (:class:`GALLoop`, :class:`LoopState`), the data module
(:class:`PersonalizationDataModule`), :func:`load_personalized`, the uncertainty and metric functions.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_WHERE = {
    "DreamBoothLearner": "learner", "TextualInversionLearner": "learner", "LoRALearner": "learner",
    "PersonalizationLearner": "learner", "build_learner": "learner", "load_personalized": "learner",
    "GALLoop": "loop", "LoopState": "loop",
    "PersonalizationDataModule": "data", "PersonalizationDataset": "data", "read_records": "data",
    "ClipScorer": "scoring", "load_scorer": "scoring",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"gal4p.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gal4p' has no attribute {name!r}")
