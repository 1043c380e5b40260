"""Command line of sags: ``sags`` (train, the embedded default), ``sags segment | render | edit | collide | eval | view``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sags`` script, ``python -m sags`` and ``train sags``."""
    from vislab.run import method_main

    def lazy(name: str):
        def cmd(args: list[str]) -> int | None:
            from sags.commands import COMMANDS

            return COMMANDS[name](args)

        return cmd

    def train(run):
        from sags.train import train as _train

        return _train(run)

    def view(args: list[str]) -> int | None:
        from sags.view import view_main

        return view_main(args)

    commands = {n: lazy(n) for n in ("segment", "render", "edit", "collide", "eval")}
    commands["view"] = view
    return method_main(
        "sags",
        train,
        argv,
        commands=commands,
        description="SA-GS (Segment Anything in 3D Gaussians): fit 3D Gaussians, then segment objects from clicks.",
    )
