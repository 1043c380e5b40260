"""incantations: prompt learning for accurate text-to-image synthesis (Seek for Incantations, arXiv:2401.06345)."""

__version__ = "0.1.0"
