"""diffspeaker: DiffSpeaker: speech-driven 3D facial animation with a diffusion transformer (arXiv:2402.05712)."""

__version__ = "0.1.0"
