"""uniattack: UniAttackDetection: unified physical-digital face attack detection (arXiv:2401.17699)."""

__version__ = "0.1.0"
