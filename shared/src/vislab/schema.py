"""A package's typed configuration schema, read from its ``configs/default.yaml``.

``default.yaml`` is the schema: every key it holds is a field whose type is the type of its
default value and whose description is the comment on its line (or the comment lines just
above it). Other presets (``paper.yaml``, ...) are overrides of that schema. Conventions of
the comments:

- ``key: value   # a | b | c  description`` makes a *closed choice* when every alternative is
  one word (optionally followed by ``(explanation)``): any other value is refused;
- an integer whose default is >= 1 must stay >= 1, one whose default is 0 must stay >= 0,
  unless the comment says what 0 or a negative value means (``0 = off``, ``-1 = all``);
- a float whose default is > 0 must stay >= 0 unless the comment mentions negative values;
- a ``null`` default accepts any value; a non-null default accepts ``null`` only where another
  shipped preset sets it to ``null`` or the comment says ``null``.
- ``{}`` is an open mapping (any keys), e.g. keyword arguments passed to a library.

The ``trainer`` section takes any keyword of ``pytorch_lightning.Trainer`` and is checked
against its signature and annotations (plus ``checkpoint``: ModelCheckpoint keywords).

:func:`validate` raises :class:`~vislab.errors.ConfigError` with one line naming the key,
the expected type and the value, before anything is built.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from vislab.errors import ConfigError

_WORD = r"[A-Za-z0-9_.+\-/]+"
_ALT = re.compile(rf"^({_WORD})(\s*\(.*\))?$")
_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w\-]*)\s*:(?P<rest>.*)$")
OPEN_SECTIONS = ("trainer",)


@dataclass
class Field:
    """One configuration key."""

    key: str  # dotted path, e.g. "data.batch_size"
    default: Any
    help: str = ""
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    nullable: bool = False
    open: bool = False  # a mapping that accepts any keys

    @property
    def kind(self) -> str:
        """``bool``, ``int``, ``float``, ``str``, ``list``, ``dict`` or ``any``."""
        v = self.default
        if v is None:
            return "any"
        for t in (bool, int, float, str, list, dict):
            if isinstance(v, t):
                return t.__name__
        return "any"

    def type_text(self) -> str:
        """Human type name, e.g. ``int >= 1``, ``{a,b}``, ``list[int]``."""
        if self.choices:
            return "{" + ",".join(self.choices) + "}" + ("|null" if self.nullable else "")
        kind = self.kind
        if kind == "list" and self.default and len({type(x) for x in self.default}) == 1:
            kind = f"list[{type(self.default[0]).__name__}]"
        if self.minimum is not None:
            kind += f" >= {self.minimum:g}"
        return kind + ("|null" if self.nullable and kind != "any" else "")


@dataclass
class Schema:
    """All fields of a package's config, keyed by dotted path."""

    package: str
    fields: dict[str, Field] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)

    def help_text(self, values: dict[str, Any] | None = None) -> str:
        """One line per key: ``--key TYPE (default V)  description``, for ``--help``."""
        lines = []
        for k, f in self.fields.items():
            if f.kind == "dict" and not f.open:
                continue  # a section: its keys are listed
            v = _get(values, k) if values is not None else f.default
            shown = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
            if shown.endswith("\n..."):
                shown = shown[:-4].strip()
            shown = shown.removesuffix("...").strip()
            desc = f"  {f.help}" if f.help else ""
            lines.append(f"  --{k} {f.type_text()} (default {shown}){desc}")
        lines.append("  --trainer.<name> VALUE  any pytorch_lightning.Trainer keyword (checked against its signature), "
                     "e.g. --trainer.max_steps 20 --trainer.strategy ddp --trainer.devices 2")
        return "\n".join(lines)


def _get(cfg: dict[str, Any] | None, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _comments(text: str) -> dict[str, str]:
    """Dotted key -> its comment (same line, else the comment lines directly above it)."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = _KEY_LINE.match(raw)
        if not m or stripped.startswith("-"):
            pending = []
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([s for _, s in stack] + [m.group("key")])
        rest = m.group("rest")
        comment = ""
        if "#" in rest:
            # a '#' inside a quoted value is not a comment
            value_part, _, comment = _split_comment(rest)
        else:
            value_part = rest
        comment = comment.strip() or " ".join(pending if indent > 0 or stack else [])
        if comment:
            out[key] = comment
        pending = []
        if value_part.strip() == "":
            stack.append((indent, m.group("key")))
    return out


def _split_comment(rest: str) -> tuple[str, str, str]:
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i], "#", rest[i + 1 :]
    return rest, "", ""


def _choices(comment: str) -> tuple[tuple[str, ...] | None, str]:
    """``a | b | c  description`` -> (("a","b","c"), "description") when every alternative is one word."""
    if "|" not in comment:
        return None, comment
    parts = [p.strip() for p in comment.split("|")]
    last_alt, sep, tail = parts[-1].partition("  ")
    alts = parts[:-1] + [last_alt.strip()]
    names = []
    for a in alts:
        m = _ALT.match(a)
        if not m:
            return None, comment
        names.append(m.group(1))
    if not tail.strip() and all(_ALT.match(a) and not _ALT.match(a).group(2) for a in alts):
        return tuple(names), ""  # the comment only lists the alternatives: the type shows them
    return tuple(names), comment


_ZERO_MEANS = re.compile(r"(^|[^\w.])(0|-1|-?\d+)\s*(=|:|means|disables|off|for|to disable|keeps|skips)|\bnegative\b|\bdisable|\boff\b|\bnever\b|0 disables|\bnone\b", re.I)
_NEGATIVE = re.compile(r"negative|(^|[\s(,=:\[])-\d")  # "-1 = all", "(< 0: causal)"; not a range such as "0-3"
_NULL_MEANS = re.compile(r"\bnull\b|\bNone\b")


def _build(package: str, default: dict[str, Any], comments: dict[str, str], presets: list[dict[str, Any]]) -> Schema:
    schema = Schema(package=package, default=default)

    def visit(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            comment = comments.get(key, "")
            choices, desc = _choices(comment) if isinstance(v, str) or v is None else (None, comment)
            f = Field(key=key, default=v, help=desc, choices=choices)
            others = [_get(p, key) for p in presets]
            f.nullable = v is None or any(o is None and _has(p, key) for o, p in zip(others, presets)) or bool(_NULL_MEANS.search(comment))
            if isinstance(v, dict):
                f.open = not v or key.split(".")[0] in OPEN_SECTIONS
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                smallest = min([v] + [o for o in others if isinstance(o, (int, float)) and not isinstance(o, bool)])
                says = bool(_ZERO_MEANS.search(comment))
                if isinstance(v, int):
                    if k == "seed" or k.endswith("_seed") or k == "seeds":
                        f.minimum = 0
                    elif v >= 1 and not says:
                        f.minimum = min(1, smallest)
                    elif v >= 0 and not _NEGATIVE.search(comment):
                        f.minimum = min(0, smallest)
                elif v > 0 and not _NEGATIVE.search(comment):
                    f.minimum = min(0.0, smallest)
            if choices and any(isinstance(o, str) and o not in choices for o in others):
                f.choices = None  # a shipped preset uses an alternative the comment does not list: treat as open
            schema.fields[key] = f
            if isinstance(v, dict) and v and not f.open:
                visit(v, key + ".")

    visit(default, "")
    return schema


def _has(cfg: dict[str, Any], key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def schema_from_text(package: str, text: str, presets: list[dict[str, Any]] | None = None) -> Schema:
    """The schema of a ``default.yaml`` text (``presets``: the other shipped presets, for nullability)."""
    default = yaml.safe_load(text) or {}
    return _build(package, default, _comments(text), list(presets or []))


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def coerce(f: Field, value: Any, where: str) -> Any:
    """Check ``value`` against ``f`` and return it (ints given for floats become floats)."""
    name = f"{where}{f.key}"
    if value is None:
        if f.nullable or f.kind == "any":
            return None
        raise ConfigError(f"{name}: expected {f.type_text()}, got null")
    kind = f.kind
    ok = True
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = _is_int(value)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif kind == "str":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # --data.protocol 1: YAML reads a number, the field holds text
        ok = isinstance(value, str)
    elif kind == "list":
        ok = isinstance(value, list)
        if ok and f.default and len({type(x) for x in f.default}) == 1:
            t = type(f.default[0])
            for x in value:
                if t is float and _is_int(x):
                    continue
                if t is int and (isinstance(x, bool) or not isinstance(x, int)):
                    ok = False
                elif t in (str, bool) and not isinstance(x, t):
                    ok = False
    elif kind == "dict":
        ok = isinstance(value, dict)
    if not ok:
        raise ConfigError(f"{name}: expected {f.type_text()}, got {_type_name(value)} {value!r}")
    if f.choices and value not in f.choices:
        close = difflib.get_close_matches(str(value), f.choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(f.choices)}{hint}")
    if f.minimum is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < f.minimum:
        raise ConfigError(f"{name}: must be >= {f.minimum:g}, got {value!r}")
    return value


def validate(schema: Schema, config: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Check every key and value of ``config`` against ``schema``; returns the (coerced) config."""

    def walk(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for k, v in node.items():
            key = f"{prefix}{k}"
            f = schema.fields.get(key)
            if f is None:
                siblings = [x.rsplit(".", 1)[-1] for x in schema.fields if x.rsplit(".", 1)[0] == prefix.rstrip(".") or (not prefix and "." not in x)]
                close = difflib.get_close_matches(k, siblings, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(siblings))})"
                raise ConfigError(f"{where}{key}: unknown key{hint}")
            if key.split(".")[0] in OPEN_SECTIONS and f.kind == "dict":
                if not isinstance(v, dict):
                    raise ConfigError(f"{where}{key}: expected a mapping, got {_type_name(v)} {v!r}")
                out[k] = check_trainer(v, f"{where}{key}.")
            elif f.kind == "dict" and not f.open and isinstance(v, dict):
                out[k] = walk(v, key + ".")
            else:
                out[k] = coerce(f, v, where)
        return out

    return walk(config, "")


# --- the trainer section --------------------------------------------------------------------------------------

_TRAINER_RANGES = {
    "max_steps": (-1, "-1 (no limit) or >= 1"),
    "max_epochs": (-1, "-1 (no limit) or >= 1"),
    "min_steps": (0, ">= 0"),
    "min_epochs": (0, ">= 0"),
    "log_every_n_steps": (1, ">= 1"),
    "accumulate_grad_batches": (1, ">= 1"),
    "check_val_every_n_epoch": (1, ">= 1"),
    "num_nodes": (1, ">= 1"),
}


def trainer_signature() -> dict[str, Any]:
    """``pytorch_lightning.Trainer.__init__`` keyword -> annotation."""
    import inspect

    import pytorch_lightning as pl

    try:
        hints = typing.get_type_hints(pl.Trainer.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: names only
        hints = {}
    params = inspect.signature(pl.Trainer.__init__).parameters
    return {n: hints.get(n, Any) for n in params if n != "self"}


def _matches(value: Any, ann: Any) -> bool:
    if ann is Any or ann is object:
        return True
    origin = typing.get_origin(ann)
    if origin is typing.Union or type(ann).__name__ == "UnionType":
        return any(_matches(value, a) for a in typing.get_args(ann))
    if origin is typing.Literal:
        return value in typing.get_args(ann)
    if ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return _is_int(value)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or ann in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or ann is dict:
        return isinstance(value, dict)
    if isinstance(ann, type):
        # a class (Logger, Callback, Strategy ...): only objects; from YAML a string name may stand for it
        return isinstance(value, (ann, str, bool))
    return True


def check_trainer(cfg: dict[str, Any], where: str = "trainer.") -> dict[str, Any]:
    """Check Trainer keywords by name, annotation and range (``checkpoint``: ModelCheckpoint keywords)."""
    sig = trainer_signature()
    for k, v in cfg.items():
        if k == "checkpoint":
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"{where}checkpoint: expected a mapping of ModelCheckpoint keywords, got {v!r}")
            continue
        if k not in sig:
            close = difflib.get_close_matches(k, list(sig), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}{k}: not a pytorch_lightning.Trainer keyword{hint}")
        ann = sig[k]
        if k == "precision" and v == "auto":
            continue  # vislab: the runtime's choice (32-true on CPU, bf16-mixed on a bf16 GPU)
        if isinstance(v, float) and v.is_integer() and not _matches(v, ann) and _matches(int(v), ann):
            v = cfg[k] = int(v)
        if not _matches(v, ann):
            raise ConfigError(f"{where}{k}: {_type_name(v)} {v!r} does not match the Trainer's type {_ann_text(ann)}")
        if k in _TRAINER_RANGES and _is_int(v):
            lo, text = _TRAINER_RANGES[k]
            if v < lo or (k in ("max_steps", "max_epochs") and v == 0):
                zero = " (a zero training budget trains nothing)" if v == 0 else ""
                raise ConfigError(f"{where}{k}: must be {text}, got {v}{zero}")
    return cfg


def _ann_text(ann: Any) -> str:
    """A short rendering of an annotation: unions flattened, Literal values listed."""
    origin = typing.get_origin(ann)
    if origin is typing.Union or type(ann).__name__ == "UnionType":
        return " | ".join(dict.fromkeys(_ann_text(a) for a in typing.get_args(ann)))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(ann))
    if ann is type(None):
        return "null"
    return getattr(ann, "__name__", str(ann).replace("typing.", ""))
