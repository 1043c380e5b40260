"""Command line of pvlr: ``pvlr`` / ``python -m pvlr`` / ``train pvlr``."""

from __future__ import annotations

from vislab.errors import VislabError
from vislab.run import Run, method_main


def _train(run: Run) -> None:
    raise VislabError("pvlr: training is not implemented yet")


def main(argv: list[str] | None = None) -> int:
    """Run the embedded default, or a real run from --config / overrides."""
    return method_main("pvlr", _train, argv)
