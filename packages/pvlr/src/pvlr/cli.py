"""Command line of pvlr: ``pvlr`` / ``python -m pvlr`` / ``train pvlr`` and ``pvlr predict``."""

from __future__ import annotations

from vislab.run import Run, method_main


def _train(run: Run):
    from pvlr.train import train

    return train(run)


def _predict(argv: list[str]) -> int:
    from pvlr.predict import predict_main

    return predict_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Train PVLR (the embedded default with no arguments), or ``pvlr predict``."""
    return method_main("pvlr", _train, argv, commands={"predict": _predict},
                       description="PVLR: prompt-driven visual-linguistic representation learning for multi-label recognition.")
