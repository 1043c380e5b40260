"""Command line of diffspeaker: ``diffspeaker`` (train), ``animate``, ``evaluate``, ``convert``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from vislab.run import method_main

    def command(name: str):
        def run(args: list[str]) -> int | None:
            from diffspeaker import commands

            return getattr(commands, f"{name}_main")(args)

        return run

    def train(run):
        from diffspeaker.train import train as fit_and_evaluate

        return fit_and_evaluate(run)

    return method_main(
        "diffspeaker",
        train,
        argv,
        commands={name: command(name) for name in ("animate", "convert", "evaluate")},
        description="DiffSpeaker: speech-driven 3D facial animation with a diffusion transformer (arXiv:2402.05712).",
    )
