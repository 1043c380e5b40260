"""Command line of incantations: ``incantations`` / ``python -m incantations`` / ``train incantations``."""

from __future__ import annotations

from vislab.errors import VislabError
from vislab.run import Run, method_main


def _train(run: Run) -> None:
    raise VislabError("incantations: training is not implemented yet")


def main(argv: list[str] | None = None) -> int:
    """Run the embedded default, or a real run from --config / overrides."""
    return method_main("incantations", _train, argv)
