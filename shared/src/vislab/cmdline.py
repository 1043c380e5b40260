"""Command-line options of inference commands declared from a package's config schema.

An inference command (``pvlr predict``, ``diffspeaker animate``, ...) often takes options that set
a field of the training config (``--steps`` is ``sampling.steps``). Declaring them here keeps the
type, the closed choices, the range and the description in one place, ``configs/default.yaml``::

    p = argparse.ArgumentParser(prog="diffspeaker animate")
    add_config_options(p, "diffspeaker", {"--steps": "sampling.steps", "--guidance": "sampling.guidance"})
    args = p.parse_args(argv)
    over = config_overrides(args)          # {"sampling.steps": 20} when the user gave --steps 20

An option's default is ``None`` ("the trained run's value", see ``unset``) unless a config
(``defaults=``, e.g. a preset) or the :class:`Option` gives one. A value is checked against the
schema field while the arguments are parsed: a wrong type, a value outside the closed choices or
below the range raises :class:`~vislab.errors.ConfigError` (one line, exit 2 under
:func:`vislab.run.method_main`). Boolean fields become ``--name/--no-name`` pairs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vislab.errors import ConfigError
from vislab.schema import Field, _get, coerce

_FIELDS = "_config_fields"  # namespace attribute: dest -> (dotted key, Field as checked)
_GIVEN = "_config_given"  # namespace attribute: dests the user gave
_MISSING: Any = object()


@dataclass(frozen=True)
class Option:
    """An option bound to the config field ``key``, with what the command changes about it.

    ``default``: the command's own default (else ``defaults``' value, else None); ``choices``: a
    subset of the field's closed choices the command accepts; ``type``: converts the text of a field
    whose default is null and no preset says its type (e.g. ``pathlib.Path``); ``help``: replaces the
    YAML comment; ``required``/``dest``/``metavar``: as in argparse."""

    key: str
    default: Any = _MISSING
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    help: str | None = None
    required: bool = False
    dest: str | None = None
    metavar: str | None = None


def _presets(package: str) -> list[dict[str, Any]]:
    from vislab.run import list_presets, load_preset

    out = []
    for name in list_presets(package):
        try:
            out.append(load_preset(package, name))
        except ConfigError:
            continue
    return out


def field_of(package: str, key: str, _cache: dict[str, Any] | None = None) -> Field:
    """The schema field ``key`` of ``package``; a null default takes its type from a shipped preset that sets it."""
    from vislab.run import package_schema

    cache = _cache if _cache is not None else {}
    if "schema" not in cache:
        cache["schema"] = package_schema(package)
    f = cache["schema"].fields.get(key)
    if f is None or (f.kind == "dict" and not f.open):
        raise KeyError(f"{package} config has no field {key!r}")  # a programming error of the command
    if f.default is None:
        if "presets" not in cache:
            cache["presets"] = _presets(package)
        typed = [v for v in (_get(c, key) for c in cache["presets"]) if v is not None]
        if typed:
            f = dataclasses.replace(f, default=typed[0], nullable=True)
    return f


def _scalar(text: str) -> Any:
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            return float(v)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            return v
    return v


def _converter(f: Field, option: str, explicit: Callable[[str], Any] | None) -> Callable[[str], Any]:
    checked = dataclasses.replace(f, key=option)  # error messages name the option the user typed

    def convert(text: str) -> Any:
        if f.nullable and text == "null":
            return None
        kind = f.kind
        if explicit is not None:
            return explicit(text)
        if kind == "str":
            value: Any = text
        elif kind == "list":
            value = _scalar(text)
            if not isinstance(value, list):
                value = [_scalar(x.strip()) for x in text.split(",") if x.strip()]
        elif kind == "any":
            value = _scalar(text)
            if not isinstance(value, (int, float, str, bool)) or isinstance(value, bool):
                value = text  # a field of unknown type: keep the text (a path, "x,y;x,y")
        else:
            value = _scalar(text)
        return coerce(checked, value, "")

    convert.__name__ = f.kind  # argparse names the type in its own messages
    return convert


def _shown(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


class _Given(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
        setattr(namespace, self.dest, values)
        _mark(namespace, self.dest)


class _GivenBool(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
        super().__call__(parser, namespace, values, option_string)
        _mark(namespace, self.dest)


def _mark(namespace: argparse.Namespace, dest: str) -> None:
    given = set(getattr(namespace, _GIVEN, None) or ())
    given.add(dest)
    setattr(namespace, _GIVEN, given)


def add_config_options(
    parser: argparse.ArgumentParser,
    package: str,
    options: dict[str, str | Option],
    defaults: dict[str, Any] | None = None,
    unset: str = "the trained run's value",
) -> None:
    """Add one option per ``{"--name": "dotted.key" | Option(...)}`` to ``parser``.

    Type, closed choices, range and description come from the schema field of ``package``;
    ``defaults`` (a config: a preset, the checkpoint's) gives the defaults; an option without a
    default is None, shown in ``--help`` as ``unset``. Read the values the user gave with
    :func:`config_overrides`."""
    registry = parser.get_default(_FIELDS)
    if registry is None:
        registry = {}
        parser.set_defaults(**{_FIELDS: registry, _GIVEN: None})
    cache: dict[str, Any] = {}
    for name, spec in options.items():
        opt = spec if isinstance(spec, Option) else Option(str(spec))
        f = field_of(package, opt.key, cache)
        if opt.choices is not None:
            if f.choices and set(opt.choices) - set(f.choices):
                raise KeyError(f"{opt.key}: {sorted(set(opt.choices) - set(f.choices))} are not choices of the field")
            f = dataclasses.replace(f, choices=tuple(opt.choices))
        if opt.default is not _MISSING:
            default = opt.default
        elif defaults is not None and _get(defaults, opt.key) is not None:
            default = copy.deepcopy(_get(defaults, opt.key))
        else:
            default = None
        dest = opt.dest or name.lstrip("-").replace("-", "_")
        desc = opt.help if opt.help is not None else f.help
        shown = "required" if opt.required else f"default: {unset if default is None else _shown(default)}"
        help_text = f"{desc + ' ' if desc else ''}[{opt.key}: {f.type_text()}] ({shown})".replace("%", "%%")
        kw: dict[str, Any] = {"dest": dest, "default": default, "help": help_text, "required": opt.required}
        if f.kind == "bool" and opt.type is None:
            parser.add_argument(name, action=_GivenBool, **kw)
        else:
            metavar = opt.metavar or ("{" + ",".join(f.choices) + "}" if f.choices else
                                      getattr(opt.type, "__name__", {"any": "VALUE"}.get(f.kind, f.kind)).upper())
            parser.add_argument(name, action=_Given, type=_converter(f, name, opt.type), metavar=metavar, **kw)
        registry[dest] = (opt.key, f, name)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``{dotted key: value}`` of the config options the user gave on the command line, each checked
    against its schema field again (a Namespace built by hand gets the same checks)."""
    registry = getattr(args, _FIELDS, None) or {}
    given = getattr(args, _GIVEN, None) or set()
    out = {}
    for dest, (key, f, name) in registry.items():
        if dest in given:
            value = getattr(args, dest)
            if f.kind in ("any",) or not isinstance(value, (str, int, float, bool, list, type(None))):
                out[key] = value  # a field of unknown type converted by the command's own type
            else:
                out[key] = coerce(dataclasses.replace(f, key=name), value, "")
    return out


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """``{dotted key: value}`` of every config option, given or default (None = unset)."""
    registry = getattr(args, _FIELDS, None) or {}
    return {key: getattr(args, dest) for dest, (key, _f, _n) in registry.items()}


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested ``config`` with the dotted ``overrides`` set."""
    out = copy.deepcopy(config)
    for key, value in overrides.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[last] = value
    return out


def trained_config(checkpoint: str | Path, package: str) -> dict[str, Any]:
    """The resolved ``config.yaml`` of the run folder a checkpoint lies in (``RUN/checkpoints/x.ckpt``
    -> ``RUN/config.yaml``); the package's default preset for a checkpoint moved out of its run folder (or keys the run lacks)."""
    from vislab.config import deep_merge, read_yaml
    from vislab.run import load_preset

    base = load_preset(package)  # keys a run of an older version did not write keep their default
    p = Path(checkpoint).expanduser().resolve()
    for folder in (p.parent, p.parent.parent):
        if (folder / "config.yaml").is_file():
            return deep_merge(base, read_yaml(folder / "config.yaml"))
    return base
