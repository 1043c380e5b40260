"""Command line of despoofdiff: ``despoofdiff [train options]``, ``despoofdiff predict`` and ``despoofdiff study``.

Nothing heavy is imported here: training, prediction and the study import torch and Lightning only when
they run, so ``despoofdiff --help`` answers at once.
"""

from __future__ import annotations

DESCRIPTION = (
    "De-spoofing diffusion for face anti-spoofing (arXiv:2401.08275): genuine and spoof diffusion models, "
    "a DDIM bridge that de-spoofs every face, and a two-stream depth classifier on image + spoof noise."
)


def main(argv: list[str] | None = None) -> int:
    import sys

    from vislab.run import method_main

    argv = list(sys.argv[1:] if argv is None else argv)

    def train(run):  # --resume: each stage (diffusion pairs, classifier) continues from its own last.ckpt
        from despoofdiff.train import train as _train

        return _train(run)

    def predict(args: list[str]) -> int:
        from despoofdiff.commands import predict_main

        return predict_main(args)

    def study(args: list[str]) -> int:
        from despoofdiff.study import study_main

        return study_main(args)

    return method_main("despoofdiff", train, argv, commands={"predict": predict, "study": study}, description=DESCRIPTION)
