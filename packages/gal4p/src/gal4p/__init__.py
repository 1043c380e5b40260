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
__all__ = sorted([*_WHERE, "load"])


def load(run_dir, base=None, round_index: int | None = None):
    """The personalised Stable Diffusion of a ``gal4p`` output folder (``vislab.models.load_run``'s hook).

    Returns :class:`vislab.diffusion.SDComponents`: the base SD recorded in the model folder (or ``base``) with the
    learned UNet / token embeddings / LoRA of the final active-learning round (``<run_dir>/model``) or of
    ``round_index`` (``<run_dir>/al/rounds/<round_index>/model``) applied, in eval mode on the CPU, as ``gal4p generate``
    loads it. Its ``info`` attribute holds the saved model description (learner, round, identifier). Nothing is
    trained."""
    from vislab.errors import InputError
    from vislab.io import require_dir

    from gal4p.learner import load_personalized

    d = require_dir(run_dir, "gal4p run folder")
    model_dir = d / "model" if round_index is None else d / "al" / "rounds" / str(int(round_index)) / "model"
    if not model_dir.is_dir():
        raise InputError(model_dir, "no saved gal4p model here (an unfinished run keeps its rounds in al/rounds/<r>/model; pass round_index=)")
    sd, info = load_personalized(model_dir, base, device="cpu")
    for m in (sd.text_encoder, sd.vae, sd.unet):
        m.eval()
    sd.info = info
    return sd


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"gal4p.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gal4p' has no attribute {name!r}")
