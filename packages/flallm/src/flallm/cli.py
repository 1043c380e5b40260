"""Command line of flallm: ``flallm`` (train), ``flallm translate``, ``flallm trim``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``flallm [train options]`` | ``flallm translate ...`` | ``flallm trim ...``."""
    from vislab.run import method_main

    def _train(run):
        from flallm.train import train

        return train(run)

    def _translate(a):
        from flallm.commands import translate_main

        return translate_main(a)

    def _trim(a):
        from flallm.commands import trim_main

        return trim_main(a)

    return method_main("flallm", _train, argv, commands={"translate": _translate, "trim": _trim},
                       description="FLa-LLM: two-stage gloss-free sign language translation (visual initialing, then LLM fine-tuning).")
