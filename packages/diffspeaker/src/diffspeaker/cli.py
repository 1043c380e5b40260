"""Command line of diffspeaker: ``diffspeaker`` (train), ``animate``, ``evaluate``, ``convert``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from vislab.run import method_main

    from diffspeaker.commands import animate_main, convert_main, evaluate_main
    from diffspeaker.train import train

    return method_main(
        "diffspeaker",
        train,
        argv,
        commands={"animate": animate_main, "convert": convert_main, "evaluate": evaluate_main},
        description="DiffSpeaker: speech-driven 3D facial animation with a diffusion transformer (arXiv:2402.05712).",
    )
