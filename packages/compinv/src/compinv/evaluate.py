"""Evaluation with a judge CLIP (never the SD's own text CLIP): text and image alignment.

- text alignment of an image = 2.5 * cos(f(img), g(prompt without identifiers))
- image alignment of an image = mean over the concept's reference images r of cos(f(img), f(r))
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from vislab.errors import InputError, VislabError


@torch.no_grad()
def text_alignment(judge, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """(B,) 2.5 * cos(judge image embedding, judge text embedding of texts[i]); images in [0, 1]."""
    f = judge.encode_image(judge.preprocess(images.to(judge.device)), normalize=True)
    g = judge.encode_text(judge.tokenize(texts), normalize=True)
    return 2.5 * (f * g).sum(-1).cpu()


@torch.no_grad()
def image_alignment(judge, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """(B,) mean over references of cos(f(img), f(ref)); images and references in [0, 1]."""
    f = judge.encode_image(judge.preprocess(images.to(judge.device)), normalize=True)
    r = judge.encode_image(judge.preprocess(references.to(judge.device)), normalize=True)
    return (f @ r.T).mean(-1).cpu()


def strip_identifiers(prompt: str, placeholders: list[str]) -> str:
    """The prompt without identifier tokens ("<cute-cat> cat and backpack" -> "cat and backpack")."""
    words = [w for w in prompt.split() if not any(w == p or w.startswith(p + "_") for p in placeholders)]
    return " ".join(words)


def shipped_objects(name: str) -> list[str]:
    """A shipped list of other objects to compose with: ``coco`` (the paper's 80 COCO names) or ``toy``."""
    if name not in ("coco", "toy"):
        raise VislabError(f"unknown shipped object list {name!r} (coco | toy)")
    return [line.strip() for line in resources.files("compinv").joinpath("data", f"{name}_objects.txt").read_text().splitlines()
            if line.strip()]


def read_objects(source: str) -> list[str]:
    """``coco`` / ``toy`` or a text file with one object (or a whole prompt containing ``{concept}``) per line."""
    if source in ("coco", "toy"):
        return shipped_objects(source)
    p = Path(source).expanduser()
    if not p.is_file():
        raise InputError(p, "composition list not found")
    try:
        lines = [x.strip() for x in p.read_text().splitlines() if x.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(p, f"cannot read the composition list ({e.__class__.__name__})") from None
    if not lines:
        raise InputError(p, "the composition list is empty")
    return lines


def composition_prompts(objects: list[str], concept: str, template: str) -> list[str]:
    """Fill ``template`` ("{concept} and {object}") for each object; a line containing ``{concept}``
    is itself a prompt template."""
    out = []
    for o in objects:
        out.append(o.format(concept=concept) if "{concept}" in o else template.format(concept=concept, object=o))
    return out
