"""Command line of cfpl: ``cfpl`` (train, the run contract) and ``cfpl predict``."""

from __future__ import annotations


def _predict(argv: list[str]) -> int:
    from cfpl.commands import predict_main

    return predict_main(argv)


def main(argv: list[str] | None = None) -> int:
    from vislab.run import method_main

    def train(run):
        from cfpl.train import train as _train

        return _train(run)

    return method_main(
        "cfpl",
        train,
        argv,
        commands={"predict": _predict},
        description="CFPL-FAS: class-free prompt learning for domain-generalised face anti-spoofing (CVPR 2024).",
    )
