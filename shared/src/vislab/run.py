"""The run contract every vislab package's ``train`` follows, implemented once.

``<pkg>`` (or ``train <pkg>``) with no arguments runs the package's embedded default
(``configs/default.yaml``). Options: ``--output-dir DIR`` (default
``runs/<pkg>/<timestamp>``, printed at start), ``--preset NAME`` (a YAML shipped in the
package's ``configs/``), ``--config FILE`` (the user's YAML, merged over the preset),
``--resume`` (continue from ``DIR/checkpoints/last.ckpt``), ``--print-config``, and
dotted overrides such as ``--trainer.max_steps 20 --trainer.strategy ddp``.

At the end ``DIR`` holds ``config.yaml`` (resolved), ``checkpoints/``, pictures and
``metrics.json`` with at least ``package, metric, higher_is_better, before, after,
seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from vislab import config as cfgmod
from vislab.errors import ConfigError, VislabError
from vislab.io import write_json
from vislab.runtime import is_main_process

T = TypeVar("T")
RUN_DIR_ENV = "VISLAB_RUN_DIR"


def console():
    """A rich console on stderr (progress and messages; stdout stays for data)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def track(items: Iterable[T], description: str = "working", total: int | None = None) -> Iterator[T]:
    """A rich progress bar over ``items`` (silent on non-zero DDP ranks)."""
    if not is_main_process():
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*cols, console=console(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@dataclass
class Run:
    """One run of a package: its resolved config and its output folder."""

    package: str
    out: Path
    config: dict[str, Any]
    resume: bool = False
    started: float = field(default_factory=time.time)

    @property
    def checkpoints(self) -> Path:
        """``out/checkpoints`` (created)."""
        p = self.out / "checkpoints"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def path(self, *parts: str) -> Path:
        """A path inside the output folder; parent folders are created."""
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def resume_checkpoint(self) -> Path | None:
        """``checkpoints/last.ckpt`` when ``--resume`` was given (error if it does not exist)."""
        if not self.resume:
            return None
        last = self.out / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise VislabError(f"{last}: --resume given but there is no last checkpoint in this output folder")
        return last

    def log(self, message: str) -> None:
        """Print a message on the main process."""
        if is_main_process():
            console().print(message, soft_wrap=True)

    def trainer(self, **overrides: Any):
        """A Lightning Trainer from ``config['trainer']`` with vislab's defaults (see vislab.lightning)."""
        from vislab.lightning import build_trainer

        return build_trainer(self, {**self.config.get("trainer", {}), **overrides})

    def finish(self, metric: str, higher_is_better: bool, before: float, after: float, **extra: Any) -> dict[str, Any]:
        """Write ``metrics.json`` (headline metric before/after plus ``extra``) and print the headline."""
        result = {
            "package": self.package,
            "metric": metric,
            "higher_is_better": bool(higher_is_better),
            "before": float(before),
            "after": float(after),
            "seconds": round(time.time() - self.started, 2),
            **extra,
        }
        if is_main_process():
            write_json(self.out / "metrics.json", result)
            better = (after > before) if higher_is_better else (after < before)
            arrow = "[green]improved[/green]" if better else "[red]not improved[/red]"
            self.log(f"[bold]{metric}[/bold]: {before:.4f} -> {after:.4f} ({arrow}, {result['seconds']:.0f} s)")
            self.log(f"outputs in [bold]{self.out}[/bold]")
        return result


def package_configs(package: str) -> Path:
    """The ``configs/`` folder shipped inside a package."""
    return Path(str(resources.files(package).joinpath("configs")))


def list_presets(package: str) -> list[str]:
    """Names of the YAML presets a package ships."""
    return sorted(p.stem for p in package_configs(package).glob("*.yaml"))


def load_preset(package: str, name: str = "default") -> dict[str, Any]:
    """Read ``<package>/configs/<name>.yaml``."""
    p = package_configs(package) / f"{name}.yaml"
    if not p.is_file():
        raise ConfigError(f"{package} has no preset {name!r} (presets: {', '.join(list_presets(package))})")
    return cfgmod.read_yaml(p)


def default_output_dir(package: str) -> Path:
    """``runs/<pkg>/<timestamp>``, shared with DDP workers through ``VISLAB_RUN_DIR``."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    return Path("runs") / package / datetime.now().strftime("%Y%m%d-%H%M%S")


def train_parser(package: str, description: str = "") -> argparse.ArgumentParser:
    """The argument parser of the run contract (overrides are the unknown arguments)."""
    p = argparse.ArgumentParser(
        prog=package,
        description=(description or f"Train {package}.") + " With no arguments: the embedded default run.",
        epilog="Any other --key.sub=value overrides the config, e.g. --trainer.max_steps 20 --trainer.strategy ddp. "
        f"Other commands: {package} <command> --help.",
    )
    p.add_argument("--output-dir", type=Path, default=None, help="output folder (default runs/<pkg>/<timestamp>)")
    p.add_argument("--preset", default="default", help="a config shipped with the package (default: the tiny embedded default)")
    p.add_argument("--config", type=Path, default=None, help="a YAML file merged over the preset")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.ckpt")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def start_run(package: str, argv: list[str], description: str = "") -> Run | None:
    """Parse the run contract's arguments, resolve the config, create and announce the folder."""
    parser = train_parser(package, description)
    args, rest = parser.parse_known_args(argv)
    preset = load_preset(package, args.preset)
    config = cfgmod.resolve(preset, args.config, rest)
    if args.print_config:
        sys.stdout.write(cfgmod.dump_yaml(config))
        return None
    out = args.output_dir if args.output_dir is not None else default_output_dir(package)
    if args.resume and args.output_dir is None:
        raise ConfigError("--resume needs --output-dir (the folder of the run to continue)")
    out = out.resolve()
    if args.resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise VislabError(f"{out / 'checkpoints' / 'last.ckpt'}: --resume given but there is no last checkpoint in this output folder")
    os.environ[RUN_DIR_ENV] = str(out)  # DDP workers re-run this command: same folder
    out.mkdir(parents=True, exist_ok=True)
    run = Run(package=package, out=out, config=config, resume=args.resume)
    if is_main_process():
        (out / "config.yaml").write_text(cfgmod.dump_yaml(config))
        run.log(f"[bold]{package}[/bold]: output folder [bold]{out}[/bold]")
    return run


Command = Callable[[list[str]], int | None]


def method_main(
    package: str,
    train: Callable[[Run], Any],
    argv: list[str] | None = None,
    commands: dict[str, Command] | None = None,
    description: str = "",
) -> int:
    """Entry point of a package: ``<pkg> [train options]`` or ``<pkg> <command> ...``.

    ``train(run)`` does the work and calls ``run.finish(...)``. Each ``commands[name](argv)``
    parses its own arguments. User errors (:class:`VislabError`) print one line and exit 2;
    ``VISLAB_DEBUG=1`` shows the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = dict(commands or {})
    try:
        if argv and argv[0] in commands:
            rc = commands[argv[0]](argv[1:])
            return int(rc or 0)
        if argv and argv[0] == "train":
            argv = argv[1:]
        if argv and argv[0] in ("-h", "--help") and commands:
            train_parser(package, description).print_help()
            print(f"\ncommands: {package} [train] | " + " | ".join(f"{package} {c}" for c in commands))
            return 0
        run = start_run(package, argv, description)
        if run is not None:
            train(run)
        return 0
    except VislabError as e:
        if os.environ.get("VISLAB_DEBUG"):
            traceback.print_exc()
        print(f"{package}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{package}: interrupted; finished checkpoints are kept", file=sys.stderr)
        return 130
