"""Protocol -> train / dev / test datasets: toy faces (embedded default) and the real MCIO / WCS layouts.

A protocol string ``A-B-C@D`` means sources A, B, C -> unseen target D; letters or the layouts' dataset names
(``OULU_NPU``, ``CASIA_FASD``, ``ReplayAttack``, ``MSU_MFSD``, FLIP's ``oulu`` ...), see
:func:`vislab.faces.layouts.resolve_protocol`. Frames are already face-cropped and aligned in both layouts.

* ``lab`` -- the CFPL authors' CASIA-FAS-Benchmark layout: ``<root>/dg_protocol/<NAME>_video_{train,dev,test}.txt``
  (:func:`vislab.faces.mcio_dataset`); train/dev = the sources' train/dev lists, test = the target's test list.
* ``flip`` -- FLIP's layout: ``<root>/frame/...`` and ``<root>/txt/<name>_{real,fake}_{train,test}.txt``
  (:func:`vislab.faces.flip_dataset`); dev = the last ``dev_fraction`` of each source's training videos,
  test = all the target's videos (its test lists).
* ``toy`` -- vislab's toy faces: the sources' identities ``0..identities-1`` train, ``dev_identities`` more
  identities of the sources are the dev split, the target's ``identities`` are the test set.

Training reads one random frame per video at every access (the lab's convention); dev and test read two
frames per video (first and last), whose scores are averaged per video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.errors import ConfigError, InputError


def parse_protocol(protocol: str) -> tuple[list[str], str]:
    """``"O-C-I@M"`` (or full names) -> (["O", "C", "I"], "M"); the target may not be a source."""
    from vislab.faces.layouts import resolve_protocol

    _, sources, target = resolve_protocol(str(protocol))
    if target in sources:
        raise ConfigError(f"protocol {protocol!r}: the target {target} is also a source")
    return sources, target


def build_datasets(d: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """``{"train", "dev", "test", "sources", "target"}`` for ``d['protocol']`` from ``d['source']``."""
    sources, target = parse_protocol(str(d["protocol"]))
    kind = str(d.get("source", "toy"))
    if kind == "toy":
        from vislab.faces.toy import ToyFaces

        t = dict(d.get("toy") or {})
        n, n_dev = int(t.get("identities", 12)), int(t.get("dev_identities", 8))
        common = dict(attacks=tuple(t.get("attacks", ("print", "replay"))), frames=int(t.get("frames", 2)), size=int(t.get("size", 64)),
                      seed=int(t.get("seed", seed)), with_depth=False)
        out = {"train": ToyFaces(domains=sources, identities=list(range(n)), **common),
               "dev": ToyFaces(domains=sources, identities=list(range(n, n + n_dev)), **common),
               "test": ToyFaces(domains=[target], identities=n, **common)}
        for ds in out.values():
            ds.materialize()
        if any(len(ds) == 0 for ds in out.values()):
            raise ConfigError("toy protocol gives an empty dataset (check data.toy.identities / dev_identities / attacks)")
        return {**out, "sources": sources, "target": target}
    if kind not in ("flip", "lab"):
        raise ConfigError(f"data.source must be toy, flip or lab, not {kind!r}")
    if not d.get("root"):
        raise ConfigError(f"data.source={kind} needs data.root (the folder holding the datasets)")
    root = Path(str(d["root"])).expanduser()
    if not root.is_dir():
        raise InputError(root, "dataset root not found")
    from vislab.faces import flip_dataset, mcio_dataset

    size = int(d.get("load_size") or 224)
    protocol = str(d["protocol"])
    if kind == "lab":
        def read(split, **kw):
            return mcio_dataset(root, protocol, split, size=size, **kw)
    else:
        def read(split, **kw):
            return flip_dataset(root, protocol, split, dev_fraction=float(d.get("dev_fraction", 0.2)), size=size, **kw)
    return {"train": read("train", sampling="random"), "dev": read("dev", frames=2), "test": read("test", frames=2),
            "sources": sources, "target": target}
