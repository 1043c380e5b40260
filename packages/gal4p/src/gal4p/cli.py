"""Command line of gal4p: ``gal4p`` / ``python -m gal4p`` / ``train gal4p``."""

from __future__ import annotations

from vislab.errors import VislabError
from vislab.run import Run, method_main


def _train(run: Run) -> None:
    raise VislabError("gal4p: training is not implemented yet")


def main(argv: list[str] | None = None) -> int:
    """Run the embedded default, or a real run from --config / overrides."""
    return method_main("gal4p", _train, argv)
