"""Command line of uniattack: ``uniattack`` (train, the run contract) and ``uniattack predict``."""

from __future__ import annotations


def _predict(argv: list[str]) -> int:
    from uniattack.commands import predict_main

    return predict_main(argv)


def main(argv: list[str] | None = None) -> int:
    from vislab.run import method_main

    def train(run):
        from uniattack.train import train as _train

        return _train(run)

    return method_main("uniattack", train, argv, commands={"predict": _predict},
                       description="UniAttackDetection: unified physical-digital face attack detection with CLIP (IJCAI 2024).")
