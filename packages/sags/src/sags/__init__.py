"""sags: SA-GS: Segment Anything in 3D Gaussians (arXiv:2401.17857)."""

__version__ = "0.1.0"
