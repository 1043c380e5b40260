"""Prompt sets and grounding units.

A prompt record (JSONL, one per line): ``{"id", "prompt", "category": composable|relational|attribute,
"objects": [[attr, noun], ...], "relation": null|"left of"|...}``.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from vislab.errors import InputError

RELATIONS = ("on the left of", "on the right of", "left of", "right of", "next to", "on top of", "below", "above",
             "near", "behind", "in front of", "on the left", "on the right", "at the top", "at the bottom", "in the centre")
SPLITTERS = (" and ", ",", " with ")
STOPWORDS = {"a", "an", "the", "of", "on", "in", "at", "to", "and", "with", "is", "are", "photo", "picture", "image"}
NEUTRAL = "-"


def object_phrases(prompt: str) -> list[str]:
    """The object phrases of ``prompt``: split on "and", ",", "with" and relation phrases (relation words removed)."""
    text = " " + prompt.lower().strip().rstrip(".") + " "
    for rel in sorted(RELATIONS, key=len, reverse=True):
        text = text.replace(f" {rel} ", " | ")
    for s in SPLITTERS:
        text = text.replace(s, " | ")
    parts = [re.sub(r"\s+", " ", p).strip() for p in text.split("|")]
    return [p for p in parts if p and any(w not in STOPWORDS for w in p.split())]


def is_multi_object(prompt: str) -> bool:
    """True when the prompt names at least two object phrases (only those can drop an object)."""
    return len(object_phrases(prompt)) >= 2


def units(prompt: str) -> list[str]:
    """Grounding units: the object phrases of ``prompt``; fallback (single-object prompts): single content words
    without stopwords."""
    parts = object_phrases(prompt)
    if len(parts) >= 2:
        return parts
    return [w for w in re.findall(r"[a-z]+", prompt.lower()) if w not in STOPWORDS]


def content_words(unit: str) -> list[str]:
    """The words of a unit that carry content (not articles or prepositions)."""
    return [w for w in unit.split() if w not in STOPWORDS]


def mask_units(prompt: str, keep: list[str], all_units: list[str]) -> str:
    """``p_sem``: the prompt with the content words of every unit *not* in ``keep`` replaced by the
    neutral token "-" (the sentence structure and the kept units stay)."""
    words = prompt.split()
    drop: list[str] = []
    for u in all_units:
        if u not in keep:
            drop += content_words(u)
    out, pending = [], list(drop)
    for w in words:
        bare = w.lower().strip(".,")
        if bare in pending:
            pending.remove(bare)
            out.append(NEUTRAL)
        else:
            out.append(w)
    return " ".join(out)


def read_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL prompt file (or a plain text file, one prompt per line); bad lines name the line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "prompt file not found")
    out = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if p.suffix == ".jsonl" or line.startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(p, f"line {n}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
                raise InputError(p, f"line {n}: a record needs a string field 'prompt'")
            rec.setdefault("id", f"p{n:03d}")
        else:
            rec = {"id": f"p{n:03d}", "prompt": line}
        rec.setdefault("category", "composable")
        out.append(rec)
    if not out:
        raise InputError(p, "no prompts in the file")
    return out


def shipped(name: str) -> list[dict[str, Any]]:
    """A prompt list shipped with the package: ``compbench`` (T2I-CompBench-style, real scale) or ``toy``."""
    f = resources.files("incantations").joinpath("data", f"{name}.jsonl")
    return read_prompts(Path(str(f)))
