"""pvlr: PVLR: prompt-driven visual-linguistic representation learning for multi-label recognition (arXiv:2401.17881)."""

__version__ = "0.1.0"
