"""Data sources -> ``{"train", "dev", "test"[, "cross"]}`` :class:`~despoofdiff.data.FaceItems`.

- ``toy``: vislab's toy faces (:class:`vislab.faces.ToyFaces`). Protocol ``intra``: train/dev/test are the
  subject-disjoint splits of the source domains, ``cross`` is the unseen target domain (all its identities);
  protocol ``SOURCES@TARGET`` (e.g. ``O-C-I@M``): leave-one-domain-out, test = target domain.
- ``frames``: the spec's frame-folder layout (``<root>/<dataset>/protocols/<protocol>/{train,dev,test}.csv``).
- ``oulu`` / ``casia`` / ``replay`` / ``msu`` / ``siw``: the real datasets through vislab.faces' readers.
"""

from __future__ import annotations

from typing import Any

from vislab.errors import ConfigError, VislabError

from despoofdiff.data import FaceItems, FrameListDataset

REAL = ("oulu", "casia", "replay", "msu", "siw")


def toy_sets(data: dict[str, Any]) -> dict[str, Any]:
    """The toy faces of the configured protocol (raw vislab datasets, not yet adapted)."""
    from vislab.faces.protocols import leave_one_domain_out
    from vislab.faces.toy import ToyFaces

    t = data["toy"]
    common = dict(attacks=tuple(t["attacks"]), identities=int(t["identities"]), frames=int(t["frames"]), size=int(t.get("render_size") or data["resolution"]), seed=int(t["seed"]))
    protocol = str(data["protocol"])
    try:
        if protocol == "intra":
            src = list(t["source_domains"])
            sets = {s: ToyFaces(domains=src, split=s, **common) for s in ("train", "dev", "test")}
            if t.get("target_domain"):
                sets["cross"] = ToyFaces(domains=[t["target_domain"]], split=None, **common)
            return sets
        if "@" in protocol:
            return leave_one_domain_out(protocol, **common)
    except ValueError as e:
        raise ConfigError(f"data.toy: {e}") from None
    raise ConfigError(f"data.protocol {protocol!r} for the toy source: use intra or SOURCES@TARGET such as O-C-I@M")


def real_sets(data: dict[str, Any]) -> dict[str, Any]:
    """OULU-NPU / CASIA-FASD / Replay-Attack / MSU-MFSD / SiW through vislab.faces' readers."""
    try:
        from vislab.faces import readers
    except ImportError:
        raise VislabError("this vislab has no vislab.faces readers for real datasets; use data.source=frames with the spec's CSV layout") from None
    if not data.get("root"):
        raise ConfigError(f"data.root is required for data.source={data['source']}")
    return readers.protocol_splits(data["source"], data["root"], protocol=str(data["protocol"]), fold=data.get("fold"))


def load_source(data: dict[str, Any]) -> dict[str, FaceItems]:
    src = data["source"]
    res = int(data["resolution"])
    if src == "toy":
        sets = toy_sets(data)
    elif src == "frames":
        if not data.get("root") or not data.get("dataset"):
            raise ConfigError("data.source=frames needs data.root and data.dataset")
        sets = {s: FrameListDataset(data["root"], data["dataset"], str(data["protocol"]), s) for s in ("train", "dev", "test")}
    elif src in REAL:
        sets = real_sets(data)
    else:
        raise ConfigError(f"data.source {src!r}: choose toy, frames or one of {', '.join(REAL)}")
    for need in ("train", "dev", "test"):
        if need not in sets:
            raise VislabError(f"data source {src} gave no {need} split")
    return {name: FaceItems(ds, res, name=f"{src}:{name}") for name, ds in sets.items()}
