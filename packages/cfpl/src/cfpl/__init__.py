"""cfpl: CFPL-FAS: Class Free Prompt Learning for generalizable face anti-spoofing (arXiv:2403.14333)."""

__version__ = "0.1.0"
