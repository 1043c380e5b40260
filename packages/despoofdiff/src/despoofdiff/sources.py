"""Data sources -> ``{"train", "dev", "test"[, "cross"]}`` :class:`~despoofdiff.data.FaceItems`.

- ``toy``: vislab's toy faces (:class:`vislab.faces.ToyFaces`). Protocol ``intra``: train/dev/test are the
  subject-disjoint splits of the source domains, ``cross`` is the unseen target domain (all its identities);
  protocol ``SOURCES@TARGET`` (e.g. ``O-C-I@M``): leave-one-domain-out, test = target domain.
- ``frames``: the CSV frame-folder layout (``<root>/<dataset>/protocols/<protocol>/{train,dev,test}.csv``).
- ``mcio`` / ``oulu`` / ``casia`` / ``replay`` / ``msu`` / ``siw`` / ``uniattack`` / ``list``: real datasets
  through vislab.faces' readers (see :func:`real_sets`).
"""

from __future__ import annotations

from typing import Any

from vislab.errors import ConfigError, VislabError

from despoofdiff.data import FaceItems, FrameListDataset

REAL = ("mcio", "oulu", "casia", "replay", "msu", "siw", "uniattack", "list")
#: single-dataset names -> the CASIA-FAS-Benchmark (MCIO) domain letter
MCIO_LETTER = {"oulu": "O", "casia": "C", "replay": "I", "msu": "M"}


def toy_sets(data: dict[str, Any]) -> dict[str, Any]:
    """The toy faces of the configured protocol (raw vislab datasets, not yet adapted)."""
    from vislab.faces import ToyFaces, leave_one_domain_out

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
    """Real datasets through vislab.faces' readers (frames already aligned crops unless ``data.crop``).

    - ``mcio``: CASIA-FAS-Benchmark layout, protocol ``O-C-I@M`` (leave-one-out) or ``C@I`` (C->R cross test);
      train/dev from the sources, test = target (HTER at the source-dev threshold).
    - ``oulu`` with a numeric protocol (1-4, ``fold`` for 3/4): OULU-NPU's own lists. ``casia`` / ``replay`` /
      ``msu`` / ``oulu`` with protocol ``intra``: that dataset's train/dev/test lists in the MCIO layout.
    - ``uniattack``: UniAttackData protocol lists.
    - ``siw``: SiW's ``{Train,Test}/{live,spoof}/<subject>/*.mov`` (+ ``.face`` boxes) with protocol 1, 2 (``fold``
      1-4: leave one replay medium out) or 3 (``fold`` 1: print -> replay, 2: replay -> print); dev = 20 % of the
      training subjects.
    - ``list`` (or ``siw`` with lists): any ``path label`` lists given as ``data.lists.{train,dev,test}`` (``data.label_format``).
    """
    from vislab.faces import layouts as readers

    src, root, protocol = data["source"], data.get("root"), str(data["protocol"])
    if not root and src != "list":
        raise ConfigError(f"data.root is required for data.source={src}")
    kw = dict(frames=int(data.get("frames") or 2), size=int(data["resolution"]), crop=data.get("crop"))
    try:
        if src == "mcio" or (src in MCIO_LETTER and protocol == "intra"):
            proto = protocol if src == "mcio" else f"{MCIO_LETTER[src]}@{MCIO_LETTER[src]}"
            if src != "mcio":  # intra: train/dev/test of the one dataset, all through its own lists
                return {s: readers.lab_dataset(root, [MCIO_LETTER[src]], s, **kw) for s in ("train", "dev", "test")}
            return {s: readers.mcio_dataset(root, proto, s, **kw) for s in ("train", "dev", "test")}
        if src == "oulu":
            fold = data.get("fold")
            return {s: readers.oulu_dataset(root, protocol, s, fold=None if fold is None else int(fold), **kw) for s in ("train", "dev", "test")}
        if src == "uniattack":
            return {s: readers.uniattack_dataset(root, protocol, s, **kw) for s in ("train", "dev", "test")}
        lists = data.get("lists") or {}
        if src == "siw" and not any(lists.values()):  # SiW's own folders and protocols 1-3 (folds for 2 and 3)
            fold = int(data.get("fold") or 1)
            return {s: readers.siw_dataset(root, protocol, s, fold=fold, **kw) for s in ("train", "dev", "test")}
        if not all(lists.get(s) for s in ("train", "dev", "test")):
            raise ConfigError(f"data.source={src} needs data.lists.train, data.lists.dev and data.lists.test (path-label list files)")
        return {s: readers.read_list_dataset(lists[s], root, data.get("label_format") or "live1", src, **kw) for s in ("train", "dev", "test")}
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None


def check_entries(sets: dict[str, Any], strict: bool) -> None:
    """Real lists: a missing video, a video without frames or an unreadable line is an error naming the list
    file and line (``data.strict: false`` skips such entries with a warning instead)."""
    if not strict:
        return
    for split, ds in sets.items():
        errors = list(getattr(ds, "errors", None) or [])
        if errors:
            more = f" ({len(errors) - 1} more problem(s); data.strict false skips bad entries)" if len(errors) > 1 else " (data.strict false skips bad entries)"
            raise VislabError(f"{split} list: {errors[0]}{more}")


#: the protocol when ``data.protocol`` is null
DEFAULT_PROTOCOL = {"toy": "intra", "oulu": "1", "siw": "1", "casia": "intra", "replay": "intra", "msu": "intra", "uniattack": "p1", "list": "lists"}


def load_source(data: dict[str, Any]) -> dict[str, FaceItems]:
    src = data["source"]
    if data.get("protocol") is None:
        if src not in DEFAULT_PROTOCOL:
            raise ConfigError(f"data.source={src} needs data.protocol")
        data = {**data, "protocol": DEFAULT_PROTOCOL[src]}
    data = {**data, "protocol": str(data["protocol"])}
    res = int(data["resolution"])
    if src == "toy":
        sets = toy_sets(data)
    elif src == "frames":
        if not data.get("root") or not data.get("dataset"):
            raise ConfigError("data.source=frames needs data.root and data.dataset")
        sets = {s: FrameListDataset(data["root"], data["dataset"], str(data["protocol"]), s) for s in ("train", "dev", "test")}
    elif src in REAL:
        sets = real_sets(data)
        check_entries(sets, bool(data.get("strict", True)))
    else:
        raise ConfigError(f"data.source {src!r}: choose toy, frames or one of {', '.join(REAL)}")
    for need in ("train", "dev", "test"):
        if need not in sets:
            raise VislabError(f"data source {src} gave no {need} split")
    return {name: FaceItems(ds, res, name=f"{src}:{name}") for name, ds in sets.items()}
