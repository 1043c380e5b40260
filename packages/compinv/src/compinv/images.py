"""Concept images: the toy world's held-out concept or a user folder (no dependency on the pipeline or the
learners, so both the TI pipeline and the DreamBooth plug-in import it)."""

from __future__ import annotations

from typing import Any

import torch
from vislab.errors import InputError, VislabError


def load_concept_images(concept: dict[str, Any], size: int) -> torch.Tensor:
    """(N, 3, size, size) in [0, 1]: the toy held-out concept (``images: toy``) or the images of a folder
    (squashed to size x size, bicubic, as the official TI script)."""
    if concept["images"] == "toy":
        return toy_concept_images(concept["toy_concept"], int(concept["n_images"]), size, seed=int(concept.get("toy_seed", 0)))
    from vislab.io import list_images, load_image, require_dir

    folder = require_dir(concept["images"], "concept image folder")
    files = list_images(folder)
    if not files:
        raise InputError(folder, "no images in the concept folder")
    return torch.stack([torch.from_numpy(load_image(f, size=(size, size))).permute(2, 0, 1).float() / 255.0 for f in files])


def toy_concept_images(name: str, n: int, size: int, seed: int = 0, skip: int = 0) -> torch.Tensor:
    """``n`` single-object held-out toy images whose object is ``name`` ("pink star"), after ``skip`` of them."""
    from vislab.toy.world import HELD_OUT, ToyDataset

    color, shape = name.split()
    if (color, shape) not in HELD_OUT:
        raise VislabError(f"toy concept {name!r} is not a held-out combination {HELD_OUT}")
    ds = ToyDataset(64 + 4 * (n + skip), resolution=size, seed=seed, split="heldout", max_objects=1)
    out, seen = [], 0
    for i in range(len(ds)):
        o = ds.spec(i)["objects"][0]
        if (o["color"], o["shape"]) == (color, shape):
            if seen >= skip:
                out.append(ds[i]["image"])
            seen += 1
            if len(out) == n:
                break
    return torch.stack(out)
