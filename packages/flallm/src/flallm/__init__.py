"""flallm: FLa-LLM: factorized learning with an LLM for gloss-free sign language translation (arXiv:2403.12556)."""

__version__ = "0.1.0"
