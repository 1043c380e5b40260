"""diffspeaker: DiffSpeaker: speech-driven 3D facial animation with a diffusion transformer (arXiv:2402.05712).

Public API: :class:`DiffSpeaker` (the model), :class:`DiffSpeakerModule` (Lightning),
:class:`TalkingFaceDataModule` (VOCASET / BIWI / synthetic), :func:`fit` (train on a config's data),
:func:`load_checkpoint`, :func:`load` (a run folder's trained model), the losses and metrics.
"""

__version__ = "0.1.0"

_LAZY = {
    "DiffSpeaker": "diffspeaker.model",
    "BiasedDenoiser": "diffspeaker.model",
    "AudioEncoder": "diffspeaker.model",
    "DiffSpeakerModule": "diffspeaker.module",
    "load_checkpoint": "diffspeaker.module",
    "load": "diffspeaker.module",
    "fit": "diffspeaker.train",
    "evaluate": "diffspeaker.module",
    "TalkingFaceDataModule": "diffspeaker.data",
    "read_audio": "diffspeaker.data",
    "read_mesh": "diffspeaker.data",
    "lip_vertex_error": "diffspeaker.metrics",
    "upper_face_dynamics_deviation": "diffspeaker.metrics",
    "diffspeaker_loss": "diffspeaker.losses",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = sorted(_LAZY)
