"""Command line of despoofdiff: ``despoofdiff [train options]``, ``despoofdiff predict`` and ``despoofdiff study``.

Nothing heavy is imported here: training, prediction and the study import torch and Lightning only when
they run, so ``despoofdiff --help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = (
    "De-spoofing diffusion for face anti-spoofing (arXiv:2401.08275): genuine and spoof diffusion models, "
    "a DDIM bridge that de-spoofs every face, and a two-stream depth classifier on image + spoof noise."
)

#: stage checkpoints (relative to the output folder) from which ``--resume`` can continue a run that was
#: stopped before the classifier wrote ``checkpoints/last.ckpt``
STAGE_CHECKPOINTS = ("checkpoints/dm_genuine", "checkpoints/dm_spoof", "checkpoints/crossfit")


def _output_dir(argv: list[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--output-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--output-dir="):
            return Path(a.split("=", 1)[1])
    return None


def stage_resume(argv: list[str]) -> bool:
    """True when ``--resume`` asks to continue a run that stopped in stage 1 or in the de-spoofing pass:
    the folder has a stage checkpoint but no ``checkpoints/last.ckpt`` (the classifier's) yet."""
    if "--resume" not in argv:
        return False
    out = _output_dir(argv)
    if out is None or (out / "checkpoints" / "last.ckpt").is_file():
        return False
    return any(any((out / d).rglob("last.ckpt")) for d in STAGE_CHECKPOINTS if (out / d).is_dir())


def main(argv: list[str] | None = None) -> int:
    import sys

    from vislab.run import method_main

    argv = list(sys.argv[1:] if argv is None else argv)
    resume_stages = stage_resume(argv)
    if resume_stages:  # the run contract wants the classifier's last.ckpt; each stage resumes from its own
        argv = [a for a in argv if a != "--resume"]

    def train(run):
        from despoofdiff.train import train as _train

        if resume_stages:
            run.resume = True
            run.log("resuming: stage checkpoints found, each stage continues from its own last.ckpt")
        return _train(run)

    def predict(args: list[str]) -> int:
        from despoofdiff.commands import predict_main

        return predict_main(args)

    def study(args: list[str]) -> int:
        from despoofdiff.study import study_main

        return study_main(args)

    return method_main("despoofdiff", train, argv, commands={"predict": predict, "study": study}, description=DESCRIPTION)
