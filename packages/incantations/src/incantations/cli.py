"""Command line of incantations: ``incantations`` / ``python -m incantations`` / ``train incantations`` and
``incantations learn`` / ``incantations calibrate``."""

from __future__ import annotations

from vislab.run import Run, method_main


def _train(run: Run):
    from incantations.train import train

    return train(run)


def _learn(argv: list[str]) -> int:
    from incantations.commands import learn_main

    return learn_main(argv)


def _calibrate(argv: list[str]) -> int:
    from incantations.commands import calibrate_main

    return calibrate_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Learn incantations for a prompt set (the embedded default with no arguments), or ``incantations learn``."""
    return method_main("incantations", _train, argv, commands={"learn": _learn, "calibrate": _calibrate},
                       description="Seek for incantations: prompt learning for accurate text-to-image synthesis.")
