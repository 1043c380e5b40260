"""Command line of gal4p."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point (filled in by the package issue)."""
    raise SystemExit("gal4p: not implemented yet")
