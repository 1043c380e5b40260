"""The run contract every vislab package's ``train`` follows, implemented once.

``<pkg>`` (or ``train <pkg>``) with no arguments runs the package's embedded default
(``configs/default.yaml``). Options: ``--output-dir DIR`` (default
``runs/<pkg>/<timestamp>``, printed at start), ``--preset NAME`` (a YAML shipped in the
package's ``configs/``), ``--config FILE`` (the user's YAML, merged over the preset),
``--resume`` (continue from ``DIR/checkpoints/last.ckpt``), ``--overwrite`` (replace a finished
run in ``DIR``), ``--logger`` (``csv`` always; ``tensorboard``, ``wandb``, ``mlflow`` added when
installed), ``--print-config``, and dotted overrides such as ``--trainer.max_steps 20
--trainer.strategy ddp``. Every key and value is checked against the package's schema
(:mod:`vislab.schema`, read from ``configs/default.yaml``) before anything runs; ``--help``
lists every key with its type, default and description.

A non-empty output folder is refused unless ``--resume`` or ``--overwrite`` is given, so a
finished run is never silently overwritten.

At the end ``DIR`` holds ``config.yaml`` (resolved), ``checkpoints/``, pictures and
``metrics.json`` with at least ``package, metric, higher_is_better, before, after,
seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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
from vislab.errors import ConfigError, InputError, VislabError
from vislab.io import write_json
from vislab.runtime import is_main_process
from vislab.schema import Schema, schema_from_text, validate

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
    loggers: tuple[str, ...] = ("csv",)
    trainers: list[Any] = field(default_factory=list, repr=False)  # every Trainer built for this run

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

    def trained_steps(self) -> int | None:
        """Optimiser steps taken by this run's Trainers (None when the run built no Trainer)."""
        if not self.trainers:
            return None
        return sum(int(getattr(t, "global_step", 0) or 0) for t in self.trainers)

    def finish(
        self, metric: str, higher_is_better: bool, before: float, after: float, trained: bool | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Write ``metrics.json`` (headline metric before/after plus ``extra``) and print the headline.

        ``trained``: whether any training happened; by default, whether this run's Trainers took a
        step. An untrained run is written with ``"trained": false`` and is never called improved.
        """
        if trained is None:
            steps = self.trained_steps()
            trained = True if steps is None else steps > 0
        result = {
            "package": self.package,
            "metric": metric,
            "higher_is_better": bool(higher_is_better),
            "before": float(before),
            "after": float(after),
            "trained": bool(trained),
            "seconds": round(time.time() - self.started, 2),
            **extra,
        }
        if is_main_process():
            write_json(self.out / "metrics.json", result)
            better = (after > before) if higher_is_better else (after < before)
            if not trained:
                arrow = "[red]untrained: no training step was taken[/red]"
            else:
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


def package_schema(package: str) -> Schema:
    """The package's config schema (``configs/default.yaml`` with its comments; see :mod:`vislab.schema`)."""
    folder = package_configs(package)
    others = [cfgmod.read_yaml(folder / f"{n}.yaml") for n in list_presets(package) if n != "default"]
    return schema_from_text(package, (folder / "default.yaml").read_text(), others)


def load_preset(package: str, name: str = "default") -> dict[str, Any]:
    """``<package>/configs/<name>.yaml`` merged over ``default.yaml`` (a preset is an override of the schema)."""
    folder = package_configs(package)
    p = folder / f"{name}.yaml"
    if not p.is_file():
        raise ConfigError(f"{package} has no preset {name!r} (presets: {', '.join(list_presets(package))})")
    default = cfgmod.read_yaml(folder / "default.yaml")
    if name == "default":
        return default
    preset = cfgmod.read_yaml(p)
    cfgmod.check_keys(default, preset, str(p))
    return cfgmod.deep_merge(default, preset)


def resolve_config(package: str, preset: str = "default", user_file: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Preset, then the user's YAML, then command-line overrides, checked against the schema (types, ranges, choices)."""
    config = cfgmod.resolve(load_preset(package, preset), user_file, overrides)
    return validate(package_schema(package), config)


def default_output_dir(package: str) -> Path:
    """``runs/<pkg>/<timestamp>`` (``-2``, ``-3`` ... when that folder is taken), shared with DDP workers
    through ``VISLAB_RUN_DIR`` (a worker re-runs the command and must land in rank 0's folder)."""
    if os.environ.get(RUN_DIR_ENV) and not is_main_process():
        return Path(os.environ[RUN_DIR_ENV])
    base = Path("runs") / package / datetime.now().strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists() and (not out.is_dir() or any(out.iterdir())):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")


def train_parser(package: str, description: str = "", config_help: str = "") -> argparse.ArgumentParser:
    """The argument parser of the run contract (overrides are the unknown arguments)."""
    epilog = ("config keys (override any with --key value or --key=value; a YAML --config holds the same keys):\n"
              + config_help + "\n\n") if config_help else ""
    epilog += f"Other commands: {package} <command> --help."
    p = argparse.ArgumentParser(
        prog=package,
        description=(description or f"Train {package}.") + " With no arguments: the embedded default run.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--output-dir", type=Path, default=None, help="output folder (default runs/<pkg>/<timestamp>)")
    p.add_argument("--preset", default="default", help="a config shipped with the package (default: the tiny embedded default)")
    p.add_argument("--config", type=Path, default=None, help="a YAML file merged over the preset")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.ckpt")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUTPUT_DIR (its files are deleted)")
    p.add_argument("--logger", action="append", choices=LOGGERS, default=None,
                   help="experiment logger, repeatable (CSV logs/metrics.csv is always written; the others need their package installed)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def _help_config(package: str, argv: list[str]) -> str:
    """The schema listing for ``--help``, with the values of the preset named in ``argv``."""
    name = "default"
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    schema = package_schema(package)
    try:
        values = load_preset(package, name)
    except ConfigError:
        values = schema.default
    return schema.help_text(values)


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless resuming or overwriting a run folder (then clear it)."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "--output-dir is an existing file, not a folder")
    if not out.is_dir() or resume or not any(out.iterdir()):
        return
    is_run = (out / "config.yaml").is_file() or (out / "metrics.json").is_file() or (out / "checkpoints").is_dir()
    if not overwrite:
        what = "holds a finished run" if (out / "metrics.json").is_file() else "is not empty"
        raise InputError(out, f"output folder {what}; give --resume to continue it, --overwrite to replace it, or another --output-dir")
    if not is_run:
        raise InputError(out, "--overwrite refused: the folder is not empty and does not look like a run folder (no config.yaml)")
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_loggers(names: list[str] | None) -> tuple[str, ...]:
    """``csv`` plus the requested loggers; a logger whose package is missing is a one-line error."""
    wanted = ["csv"] + [n for n in (names or []) if n != "csv"]
    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}
    import importlib.util

    for n in wanted[1:]:
        if not any(importlib.util.find_spec(m) for m in needs[n]):
            raise ConfigError(f"--logger {n}: the {needs[n][0]} package is not installed (pip install {needs[n][0]})")
    return tuple(dict.fromkeys(wanted))


def start_run(package: str, argv: list[str], description: str = "") -> Run | None:
    """Parse the run contract's arguments, resolve the config, create and announce the folder."""
    parser = train_parser(package, description)
    args, rest = parser.parse_known_args(argv)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    config = resolve_config(package, args.preset, args.config, rest)
    if args.print_config:
        sys.stdout.write(config_header(package, args.preset, argv) + cfgmod.dump_yaml(config))
        return None
    loggers = check_loggers(args.logger)
    out = args.output_dir if args.output_dir is not None else default_output_dir(package)
    if args.resume and args.output_dir is None:
        raise ConfigError("--resume needs --output-dir (the folder of the run to continue)")
    out = out.expanduser().resolve()
    if args.resume and not (out / "checkpoints" / "last.ckpt").is_file() and not resumable(out):
        raise VislabError(f"{out / 'checkpoints' / 'last.ckpt'}: --resume given but there is no last checkpoint in this output folder")
    if is_main_process():  # DDP workers (non-zero ranks) re-run the command into rank 0's folder
        check_output_dir(out, args.resume, args.overwrite)
    os.environ[RUN_DIR_ENV] = str(out)  # DDP workers re-run this command: same folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create the output folder ({e.strerror})") from None
    run = Run(package=package, out=out, config=config, resume=args.resume, loggers=loggers)
    if is_main_process():
        (out / "config.yaml").write_text(config_header(package, args.preset, argv) + cfgmod.dump_yaml(config))
        run.log(f"[bold]{package}[/bold]: output folder [bold]{out}[/bold]")
    return run


def resumable(out: Path) -> bool:
    """A run folder with any ``last.ckpt`` under ``checkpoints/`` (multi-stage packages keep one per stage)."""
    return (out / "checkpoints").is_dir() and any((out / "checkpoints").rglob("last.ckpt"))


def config_header(package: str, preset: str, argv: list[str]) -> str:
    """Comment lines on top of ``config.yaml``: the package, its version, the preset and the command."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(package)
    except PackageNotFoundError:
        ver = "unknown"
    cmd = " ".join([package, *argv]) if argv else package
    return (f"# {package} {ver}; preset {preset}; command: {cmd}\n"
            f"# the complete resolved config: rerun with  {package} --config config.yaml\n")


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
    parses its own arguments. User errors (:class:`VislabError`, and Lightning's
    MisconfigurationException) print one line and exit 2; ``VISLAB_DEBUG=1`` shows the
    traceback. Ctrl-C prints one line and exits 130, also when Lightning caught it in ``fit``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = dict(commands or {})
    INTERRUPTED.clear()
    try:
        if argv and argv[0] in commands:
            with one_line_usage_errors():
                rc = commands[argv[0]](argv[1:])
            return int(rc or 0)
        if argv and argv[0] == "train":
            argv = argv[1:]
        if any(a in ("-h", "--help") for a in argv):
            train_parser(package, description, _help_config(package, argv)).print_help()
            if commands:
                print(f"\ncommands: {package} [train] | " + " | ".join(f"{package} {c}" for c in commands))
            return 0
        run = start_run(package, argv, description)
        if run is not None:
            train(run)
        return 0
    except VislabError as e:
        return _error(package, str(e))
    except KeyboardInterrupt:
        return _interrupted(package)
    except SystemExit as e:
        if INTERRUPTED:  # Lightning turns Ctrl-C inside fit into exit(1) after its graceful shutdown
            return _interrupted(package)
        raise e
    except Exception as e:  # noqa: BLE001 - only Lightning's configuration errors are the user's
        if type(e).__name__ == "MisconfigurationException":
            return _error(package, f"invalid trainer configuration: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        raise


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """While a sub-command parses its arguments, an argparse usage error is one line (and exit 2), not the usage block."""
    original = argparse.ArgumentParser.error

    def error(self: argparse.ArgumentParser, message: str):  # type: ignore[no-untyped-def]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


INTERRUPTED: set[str] = set()  # filled by vislab.lightning's interrupt callback


def _error(package: str, message: str) -> int:
    if os.environ.get("VISLAB_DEBUG"):
        traceback.print_exc()
    print(f"{package}: error: {message}", file=sys.stderr)
    return 2


def _interrupted(package: str) -> int:
    print(f"{package}: interrupted; finished checkpoints are kept (continue with --resume --output-dir <folder>)", file=sys.stderr)
    return 130
