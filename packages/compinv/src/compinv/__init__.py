"""compinv: Compositional Inversion for Stable Diffusion models (arXiv:2312.08048)."""

__version__ = "0.1.0"
