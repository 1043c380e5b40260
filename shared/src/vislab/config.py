"""Configs: a package's YAML presets, a user's YAML file and dotted command-line overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from vislab.errors import ConfigError, InputError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or malformed YAML raises a clear error."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(p, "config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InputError(p, f"malformed YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(p, "config must be a YAML mapping at the top level")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively with ``update`` (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn ``--a.b=1 --c d --flag`` into ``{"a": {"b": 1}, "c": "d", "flag": True}``.

    Values are parsed as YAML scalars (``1e-3``, ``true``, ``null``, ``[1, 2]``).
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or len(a) <= 2:
            raise ConfigError(f"unexpected argument {a!r}: overrides look like --key.sub=value")
        key, eq, val = a[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                val = args[i + 1]
                i += 1
            else:
                val = "true"
        try:
            value = yaml.safe_load(val)
        except yaml.YAMLError:
            value = val
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {a!r} conflicts with another override")
        node[parts[-1]] = value
        i += 1
    return out


def check_keys(config: dict[str, Any], update: dict[str, Any], where: str, open_sections: tuple[str, ...] = ("trainer",)) -> None:
    """Raise ConfigError if ``update`` names a key that ``config`` does not have.

    Sections listed in ``open_sections`` (Trainer keyword arguments) and mappings that are empty in
    ``config`` (``{}``: keyword arguments passed on to a library) accept new keys.
    """
    for k, v in update.items():
        if k not in config:
            known = ", ".join(sorted(config))
            raise ConfigError(f"{where}: unknown key {k!r} (known: {known})")
        if isinstance(v, dict) and isinstance(config[k], dict) and config[k] and k not in open_sections:
            check_keys(config[k], v, f"{where}: {k}", open_sections=())


def resolve(default: dict[str, Any], user_file: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Default preset, then the user's YAML file, then command-line overrides; keys are checked."""
    cfg = copy.deepcopy(default)
    if user_file is not None:
        user = read_yaml(user_file)
        check_keys(cfg, user, str(user_file))
        cfg = deep_merge(cfg, user)
    if overrides:
        ov = parse_overrides(overrides)
        check_keys(cfg, ov, "command line")
        cfg = deep_merge(cfg, ov)
    return cfg


def dump_yaml(config: dict[str, Any]) -> str:
    """YAML text of a config (keys in insertion order)."""
    return yaml.safe_dump(config, sort_keys=False)
