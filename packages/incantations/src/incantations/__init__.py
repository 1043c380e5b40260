"""incantations: Seek for incantations: text-to-image synthesis through prompt learning (arXiv:2401.06345)."""

__version__ = "0.1.0"
