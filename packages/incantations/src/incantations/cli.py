"""Command line of incantations."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point (filled in by the package issue)."""
    raise SystemExit("incantations: not implemented yet")
