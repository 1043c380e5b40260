"""Command line of compinv: ``compinv`` / ``python -m compinv`` / ``train compinv`` and ``compinv generate``."""

from __future__ import annotations

from vislab.run import Run, method_main


def _train(run: Run):
    from compinv.train import train

    return train(run)


def _generate(argv: list[str]) -> int:
    from compinv.commands import generate_main

    return generate_main(argv)


def _regularize(argv: list[str]) -> int:
    from compinv.commands import regularize_main

    return regularize_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the embedded default (no arguments), a real inversion run, ``compinv generate`` or ``compinv regularize``."""
    return method_main("compinv", _train, argv, commands={"generate": _generate, "regularize": _regularize},
                       description="Compositional inversion for Stable Diffusion (semantic + spatial inversion).")
