"""gal4p: Generative Active Learning for image synthesis personalization (arXiv:2403.14987)."""

__version__ = "0.1.0"
