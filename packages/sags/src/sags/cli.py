"""Command line of sags."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point (filled in by the package issue)."""
    raise SystemExit("sags: not implemented yet")
