"""despoofdiff: De-spoofing diffusion: modeling spoof noise for face anti-spoofing (arXiv:2401.08275)."""

__version__ = "0.1.0"
