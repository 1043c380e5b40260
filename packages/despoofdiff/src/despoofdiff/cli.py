"""Command line of despoofdiff: ``despoofdiff [train options]`` and ``despoofdiff predict``."""

from __future__ import annotations

from vislab.run import method_main

DESCRIPTION = (
    "De-spoofing diffusion for face anti-spoofing (arXiv:2401.08275): genuine and spoof diffusion models, "
    "a DDIM bridge that de-spoofs every face, and a two-stream depth classifier on image + spoof noise."
)


def main(argv: list[str] | None = None) -> int:
    from despoofdiff.commands import predict_main
    from despoofdiff.train import train

    return method_main("despoofdiff", train, argv, commands={"predict": predict_main}, description=DESCRIPTION)
