"""Command line of uniattack."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point (filled in by the package issue)."""
    raise SystemExit("uniattack: not implemented yet")
