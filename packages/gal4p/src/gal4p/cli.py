"""Command line of gal4p: ``gal4p`` / ``python -m gal4p`` / ``train gal4p`` (training), ``gal4p generate`` (inference)."""

from __future__ import annotations

from vislab.run import method_main


def _train(run):
    from gal4p.train import train

    return train(run)


def _generate(argv: list[str]) -> int:
    from gal4p.commands import generate_main

    return generate_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the embedded default, or a real run from --config / overrides; ``gal4p generate --help`` for inference."""
    return method_main("gal4p", _train, argv, commands={"generate": _generate},
                       description="GAL: generative active learning for image synthesis personalization (DreamBooth learner).")
