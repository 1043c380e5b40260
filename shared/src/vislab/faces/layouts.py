"""One reader per published face anti-spoofing layout; each returns a :class:`~vislab.faces.readers.FaceFrames`.

Keyword arguments of every reader go to :class:`FaceFrames` (``frames``, ``sampling``, ``size``, ``crop``,
``margin``, ``verify``). Users bring the data; nothing is downloaded.

=========================  ===================================================================================
reader                     layout (source)
=========================  ===================================================================================
:func:`mcio_dataset`       CASIA-FAS-Benchmark (the CFPL authors' lab code, ``datasets/dg_data.py``, and the
                           CASIA-FAS-Dataset lists): ``<root>/dg_protocol/<NAME>_video_{train,dev,test}.txt``,
                           lines ``<NAME>/<video dir> <0 live | 1 attack>`` relative to ``<root>``; frames in
                           ``<video>/crop/``, else ``<video>/color/``, else ``<video>/``.
:func:`flip_dataset`       FLIP (Srivatsan et al., ICCV 2023, ``docs/datasets.md`` and ``data/MCIO/txt``):
                           ``<root>/frame/<name>/{train,test}/{real,fake}/<video>_frame{0,1}.png`` with lists
                           ``<root>/txt/<name>_{real,fake}_{train,test}.txt`` naming frame0 relative to
                           ``frame/``; a target's test lists hold all its videos (train and test folders).
:func:`oulu_dataset`       OULU-NPU (the database's README): ``<root>/{Train,Dev,Test}_files/<name>.avi`` with
                           ``<name>.txt`` eye positions ``frame, xL, yL, xR, yR`` per frame, and
                           ``<root>/Protocols/Protocol_<p>/{Train,Dev,Test}[_<fold>].txt`` lines ``+1,<name>``.
:func:`casia_fasd_dataset` CASIA-FASD (Zhang et al., ICB 2012): ``<root>/{train,test}_release/<subject>/
                           {1..8,HR_1..HR_4}.avi``; 1, 2, HR_1 live; 3, 4, HR_2 warped photo; 5, 6, HR_3 cut
                           photo; 7, 8, HR_4 video replay.
:func:`replay_attack_dataset`  Idiap Replay-Attack (``bob.db.replay``): ``<root>/{train,devel,test}/real/*.mov``,
                           ``.../attack/{fixed,hand}/*.mov``; face locations ``<root>/face-locations/<split>/
                           <same path>.face`` lines ``frame x y w h``.
:func:`msu_mfsd_dataset`   MSU-MFSD (Wen et al., TIFS 2015; ``bob.db.msu_mfsd_mod``): ``<root>/scene01/
                           {real,attack}/*.{mov,mp4}`` named ``..._client<NNN>_...``; subjects of each split in
                           ``<root>/{train,test}_sub_list.txt``.
:func:`siw_dataset`        SiW (Liu et al., CVPR 2018): ``<root>/{Train,Test}/{live,spoof}/<subject>/
                           <subject>-<sensor>-<type>-<medium>-<session>.mov`` (type 1 live, 2 print, 3 replay)
                           with ``.face`` files ``x1 y1 x2 y2`` per frame; protocols 1-3.
:func:`uniattack_dataset`  UniAttackData (CASIA-FAS-Dataset ``UniAttackData/protocol``):
                           ``UniAttackData@<p>_{image,video}_{train,dev,test}.txt`` lines ``<path> <label>``
                           relative to the folder above ``UniAttackData/``.
:func:`read_list_dataset`  any ``<path> <label>`` list.
=========================  ===================================================================================

Domain codes: protocol 1 (MCIO) O = OULU-NPU, C = CASIA-FASD, I = Idiap Replay-Attack, M = MSU-MFSD;
protocol 2 (WCS) W = WMCA, C = CASIA-SURF CeFA (also E, the lab's letter), S = CASIA-SURF. A protocol string
``SOURCES@TARGET`` takes letters or any of the names the layouts use (``OULU_NPU``, ``CASIA_FASD``,
``ReplayAttack``, ``MSU_MFSD``, FLIP's ``oulu``/``casia``/``replay``/``msu``, ...). C means CeFA only when
W, S or E appear in the same protocol.

Datasets without an official dev split (CASIA-FASD, MSU-MFSD, SiW, FLIP's lists) hold out the last
``dev_fraction`` of the training subjects (sorted; FLIP: of the training videos) as dev, our choice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from vislab.errors import ConfigError, InputError
from vislab.faces.readers import (
    VIDEO_SUFFIXES,
    FaceFrames,
    VideoEntry,
    parse_list_file,
)
from vislab.io import IMAGE_SUFFIXES

#: names of each domain in the layouts, lab name first
MCIO_NAMES = {
    "O": ("OULU_NPU", "OULU", "OULU-NPU", "oulu"),
    "C": ("CASIA_FASD", "CASIA", "CASIA-FASD", "CASIA_MFSD", "casia"),
    "I": ("ReplayAttack", "REPLAY", "Replay-Attack", "Replay_Attack", "IDIAP", "replay"),
    "M": ("MSU_MFSD", "MSU", "MSU-MFSD", "msu"),
}
WCS_NAMES = {
    "W": ("IDIAP_WMCA", "WMCA", "wmca"),
    "C": ("CASIA_CeFA", "CeFA", "CEFA", "E", "cefa"),
    "S": ("CASIA_SURF", "SURF", "surf"),
}
BENCHMARKS = {"mcio": MCIO_NAMES, "wcs": WCS_NAMES}
SPLITS = ("train", "dev", "test")


def _match(tok: str, table: dict[str, tuple[str, ...]]) -> str | None:
    if tok.upper() in table and len(tok) == 1:
        return tok.upper()
    for letter, names in table.items():
        if tok.lower() in {n.lower() for n in names}:
            return letter
    return None


def resolve_protocol(protocol: str) -> tuple[str, list[str], str]:
    """``"O-C-I@M"`` -> ``("mcio", ["O", "C", "I"], "M")``; ``"W-C@S"`` -> ``("wcs", ["W", "C"], "S")``.

    Full names work too (``"CASIA_FASD-OULU_NPU-ReplayAttack@MSU_MFSD"``). Unknown codes raise ConfigError.
    """
    if "@" not in str(protocol):
        raise ConfigError(f"protocol {protocol!r}: expected SOURCES@TARGET such as O-C-I@M")
    src, tgt = str(protocol).split("@", 1)
    tokens = [t for t in re.split(r"[-,]", src) if t] + [tgt]
    if len(tokens) < 2 or not tgt:
        raise ConfigError(f"protocol {protocol!r}: expected SOURCES@TARGET such as O-C-I@M")
    in_m = [_match(t, MCIO_NAMES) for t in tokens]
    in_w = [_match(t, WCS_NAMES) for t in tokens]
    for t, m, w in zip(tokens, in_m, in_w):
        if m is None and w is None:
            raise ConfigError(
                f"protocol {protocol!r}: unknown domain {t!r}; known: O (OULU_NPU), C (CASIA_FASD), I (ReplayAttack), "
                "M (MSU_MFSD); protocol 2: W (IDIAP_WMCA), C or E (CASIA_CeFA), S (CASIA_SURF)")
    only_w = any(m is None for m in in_m)
    only_m = any(w is None for w in in_w)
    if only_w and only_m:
        raise ConfigError(f"protocol {protocol!r} mixes protocol-1 (O/C/I/M) and protocol-2 (W/C/S) domains")
    bench, letters = ("wcs", in_w) if only_w else ("mcio", in_m)
    return bench, [str(x) for x in letters[:-1]], str(letters[-1])


# ------------------------------------------------------------------------------------------ lab layout
def lab_list(root: Path, letter: str, split: str, benchmark: str = "mcio") -> tuple[Path, str]:
    """``(list file, dataset name)`` of one domain's ``dg_protocol/<NAME>_video_<split>.txt``."""
    names = BENCHMARKS[benchmark][letter]
    cands = [*names, letter]
    for n in cands:
        f = root / "dg_protocol" / f"{n}_video_{split}.txt"
        if f.is_file():
            return f, n
    raise InputError(root / "dg_protocol" / f"{names[0]}_video_{split}.txt",
                     f"protocol list not found (also looked for {', '.join(c + f'_video_{split}.txt' for c in cands[1:])})")


def lab_dataset(root: str | Path, domains: Sequence[str], split: str, benchmark: str = "mcio", **kwargs) -> FaceFrames:
    """The ``split`` lists of ``domains`` (letters) in the CASIA-FAS-Benchmark layout."""
    r = Path(root).expanduser()
    if not (r / "dg_protocol").is_dir():
        raise InputError(r, "not a CASIA-FAS-Benchmark root (no dg_protocol/ folder)")
    if split not in SPLITS:
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    entries, errors, n = [], [], 0
    for letter in domains:
        lf, name = lab_list(r, letter, split, benchmark)
        e, _, k = parse_list_file(lf, r, "binary", letter, errors, extra_bases=[r / name])
        entries += e
        n += k
    return FaceFrames(entries, errors=errors, n_lines=n, name=f"{r} {'-'.join(domains)} {split}", **kwargs)


def mcio_dataset(root: str | Path, protocol: str, split: str, **kwargs) -> FaceFrames:
    """CASIA-FAS-Benchmark layout, protocol ``"O-C-I@M"``: ``train``/``dev`` = the sources' lists,
    ``test`` = the target's test list."""
    bench, sources, target = resolve_protocol(protocol)
    return lab_dataset(root, [target] if split == "test" else sources, split, bench, **kwargs)


# ----------------------------------------------------------------------------------------- FLIP layout
def _flip_root(root: Path, bench: str) -> Path:
    if (root / "txt").is_dir():
        return root
    sub = root / bench.upper()
    if (sub / "txt").is_dir():
        return sub
    raise InputError(root, "not a FLIP data folder (expected txt/ and frame/, or MCIO/txt and MCIO/frame)")


def _video_key(rel: str) -> str:
    stem = re.sub(r"_frame\d+$", "", Path(rel).stem)
    if stem == Path(rel).stem:  # WCS: <video>_<XX>.jpg
        stem = re.sub(r"_\d+$", "", stem)
    return str(Path(rel).parent / stem)


def flip_entries(root: Path, letter: str, split: str, bench: str, errors: list[str]) -> tuple[list[VideoEntry], int]:
    """Videos of FLIP's ``txt/<name>_{real,fake}_<split>.txt`` (frame0 named; frame1 beside it)."""
    name = BENCHMARKS[bench][letter][-1]
    entries: list[VideoEntry] = []
    n_lines = 0
    for cls, (lab, attack) in (("real", (0, "live")), ("fake", (1, "attack"))):
        lf = root / "txt" / f"{name}_{cls}_{split}.txt"
        if not lf.is_file():
            raise InputError(lf, "FLIP list not found")
        videos: dict[str, VideoEntry] = {}
        for k, line in enumerate(lf.read_text().splitlines(), 1):
            rel = line.strip().split()[0] if line.strip() else ""
            if not rel:
                continue
            n_lines += 1
            f0 = root / "frame" / rel
            if not f0.is_file():
                errors.append(f"{lf}:{k}: {rel} not found under {root / 'frame'}")
                continue
            files = [f0]
            f1 = f0.with_name(f0.name.replace("_frame0.", "_frame1."))
            if f1 != f0 and f1.is_file():
                files.append(f1)
            key = _video_key(rel)
            if key in videos:
                videos[key].frames.extend(files)
            else:
                videos[key] = VideoEntry(path=root / "frame" / key, label=lab, attack=attack, domain=letter,
                                         source=f"{lf}:{k}", kind="files", frames=files)
        entries += list(videos.values())
    return entries, n_lines


def flip_dataset(root: str | Path, protocol: str, split: str, dev_fraction: float = 0.2, **kwargs) -> FaceFrames:
    """FLIP layout, protocol ``"O-C-I@M"``: ``train`` = the sources' train lists minus the dev videos,
    ``dev`` = the last ``dev_fraction`` of each source's train videos (sorted), ``test`` = the target's test
    lists (all its videos)."""
    bench, sources, target = resolve_protocol(protocol)
    r = _flip_root(Path(root).expanduser(), bench)
    errors: list[str] = []
    entries, n = [], 0
    if split == "test":
        entries, n = flip_entries(r, target, "test", bench, errors)
    elif split in ("train", "dev"):
        for s in sources:
            es, k = flip_entries(r, s, "train", bench, errors)
            for lab in (0, 1):  # held out per class, so dev has live and attack videos
                ec = sorted((e for e in es if e.label == lab), key=lambda e: str(e.path))
                cut = len(ec) - int(math.ceil(dev_fraction * len(ec))) if dev_fraction > 0 else len(ec)
                entries += ec[:cut] if split == "train" else ec[cut:]
            n += k
        n = len(entries) + len(errors)  # the dev videos held out of train are not skipped lines
    else:
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    return FaceFrames(entries, errors=errors, n_lines=n, name=f"{r} {protocol} {split}", **kwargs)


# ------------------------------------------------------------------------------------------ OULU-NPU
def oulu_dataset(root: str | Path, protocol: str | int = 1, split: str = "train", fold: int | None = None, **kwargs) -> FaceFrames:
    """OULU-NPU protocol ``1``-``4`` (``fold`` 1-6 for 3 and 4); ``crop="boxes"`` crops around the eye
    positions of ``<name>.txt`` (see :func:`vislab.faces.readers.eyes_to_box`)."""
    r = Path(root).expanduser()
    sp = {"train": "Train", "dev": "Dev", "test": "Test"}.get(split.lower())
    if sp is None:
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    p = str(protocol).lower().removeprefix("protocol_").removeprefix("p")
    if p not in ("1", "2", "3", "4"):
        raise ConfigError(f"OULU-NPU protocol {protocol!r}: use 1, 2, 3 or 4")
    if p in ("3", "4") and fold is None:
        raise ConfigError(f"OULU-NPU protocol {p} needs a fold (1-6)")
    lf = r / "Protocols" / f"Protocol_{p}" / (f"{sp}_{fold}.txt" if fold is not None else f"{sp}.txt")
    entries, errors, n = parse_list_file(lf, r / f"{sp}_files", "oulu", "O")
    for e in entries:
        e.box_file = e.path.with_suffix(".txt") if e.kind == "video" else e.path.parent / f"{e.path.name}.txt"
        e.box_format = "eyes"
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(lf), **kwargs)


# ------------------------------------------------------------------------- native single-dataset layouts
def _video_at(stem: Path) -> Path | None:
    if stem.is_dir():
        return stem
    for suf in sorted(VIDEO_SUFFIXES):
        if stem.with_suffix(suf).is_file():
            return stem.with_suffix(suf)
    return None


def _entry(path: Path, live: bool, attack: str, domain: str, source: str) -> VideoEntry:
    return VideoEntry(path=path, label=0 if live else 1, attack=attack, domain=domain, source=source,
                      kind="folder" if path.is_dir() else "video")


def _dev_split(subjects: Sequence, split: str, fraction: float) -> set:
    ordered = sorted(set(subjects))
    cut = len(ordered) - int(math.ceil(fraction * len(ordered))) if fraction > 0 else len(ordered)
    return set(ordered[cut:] if split == "dev" else ordered[:cut])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be train, dev or test, got {split!r}")


CASIA_FASD_TYPES = {"1": "live", "2": "live", "HR_1": "live", "3": "print", "4": "print", "HR_2": "print",
                    "5": "cut_print", "6": "cut_print", "HR_3": "cut_print", "7": "replay", "8": "replay", "HR_4": "replay"}


def casia_fasd_dataset(root: str | Path, split: str, dev_fraction: float = 0.2, **kwargs) -> FaceFrames:
    """CASIA-FASD: ``train_release`` (train/dev subjects) or ``test_release``; videos or frame folders."""
    _check_split(split)
    r = Path(root).expanduser()
    base = r / ("test_release" if split == "test" else "train_release")
    if not base.is_dir():
        raise InputError(base, "CASIA-FASD folder not found (expected <root>/train_release and test_release)")
    subjects = [d for d in base.iterdir() if d.is_dir()]
    if split != "test":
        keep = _dev_split([d.name for d in subjects], split, dev_fraction)
        subjects = [d for d in subjects if d.name in keep]
    entries, errors = [], []
    for d in sorted(subjects, key=lambda d: (len(d.name), d.name)):
        for name, attack in CASIA_FASD_TYPES.items():
            p = _video_at(d / name)
            if p is None:
                errors.append(f"{d}: video {name} missing")
                continue
            entries.append(_entry(p, attack == "live", attack, "C", str(p)))
    return FaceFrames(entries, errors=errors, n_lines=len(entries) + len(errors), name=f"{base} ({split})", **kwargs)


def replay_attack_dataset(root: str | Path, split: str, face_root: str | Path | None = None, **kwargs) -> FaceFrames:
    """Idiap Replay-Attack ``train`` / ``dev`` (``devel/``) / ``test``; ``crop="boxes"`` reads the
    face-locations files (``face_root``, default ``<root>/face-locations``)."""
    _check_split(split)
    r = Path(root).expanduser()
    sd = {"train": "train", "dev": "devel", "test": "test"}[split]
    base = r / sd
    if not (base / "real").is_dir():
        raise InputError(base, "Replay-Attack split folder not found (expected <root>/{train,devel,test}/real and attack/)")
    faces = Path(face_root).expanduser() if face_root else r / "face-locations"
    entries = []
    for f in sorted(base.rglob("*")):
        if f.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        rel = f.relative_to(r)
        live = rel.parts[1] == "real"
        attack = "live" if live else ("print" if "photo" in f.stem or "print" in f.stem else "replay")
        e = _entry(f, live, attack, "I", str(f))
        e.box_file = faces / rel.with_suffix(".face")
        entries.append(e)
    return FaceFrames(entries, n_lines=len(entries), name=f"{base}", **kwargs)


def _subject_list(path: Path) -> set[int]:
    if not path.is_file():
        raise InputError(path, "MSU-MFSD subject list not found")
    out = set()
    for k, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if not s.isdigit():
            raise InputError(path, f"line {k}: {s!r} is not a subject number")
        out.add(int(s))
    return out


def msu_mfsd_dataset(root: str | Path, split: str, dev_fraction: float = 0.2, **kwargs) -> FaceFrames:
    """MSU-MFSD: the subjects of ``train_sub_list.txt`` (train/dev) or ``test_sub_list.txt``."""
    _check_split(split)
    r = Path(root).expanduser()
    subs = _subject_list(r / ("test_sub_list.txt" if split == "test" else "train_sub_list.txt"))
    if split != "test":
        subs = _dev_split(subs, split, dev_fraction)
    entries = []
    for cls in ("real", "attack"):
        d = r / "scene01" / cls
        if not d.is_dir():
            raise InputError(d, "MSU-MFSD folder not found (expected <root>/scene01/{real,attack})")
        for f in sorted(d.iterdir()):
            m = re.search(r"client0*(\d+)", f.name)
            if f.suffix.lower() not in VIDEO_SUFFIXES or m is None or int(m.group(1)) not in subs:
                continue
            attack = "live" if cls == "real" else ("print" if "printed" in f.stem or "photo" in f.stem else "replay")
            entries.append(_entry(f, cls == "real", attack, "M", str(f)))
    return FaceFrames(entries, n_lines=len(entries), name=f"{r} ({split})", **kwargs)


SIW_TYPES = {1: "live", 2: "print", 3: "replay"}


def _siw_keep(protocol: int, fold: int, split: str, kind: int, medium: int) -> bool:
    if kind == 1 or protocol == 1:
        return True
    test = split == "test"
    if protocol == 2:  # leave one replay medium out
        return kind == 3 and ((medium == fold) == test)
    attack = 2 if (fold == 1) != test else 3  # protocol 3: fold 1 print -> replay, fold 2 replay -> print
    return kind == attack


def siw_dataset(root: str | Path, protocol: int = 1, split: str = "train", fold: int = 1, dev_fraction: float = 0.2,
                train_frames: int = 60, **kwargs) -> FaceFrames:
    """SiW protocol 1 (train on the first ``train_frames`` frames of every training video), 2 (replay medium
    ``fold`` 1-4 unseen) or 3 (fold 1: print -> replay, fold 2: replay -> print); live videos in every split."""
    _check_split(split)
    p = int(str(protocol).lower().removeprefix("p"))
    if p not in (1, 2, 3) or (p == 2 and fold not in (1, 2, 3, 4)) or (p == 3 and fold not in (1, 2)):
        raise ConfigError(f"SiW protocol {protocol!r} fold {fold!r}: protocols 1, 2 (folds 1-4), 3 (folds 1-2)")
    r = Path(root).expanduser()
    base = r / ("Test" if split == "test" else "Train")
    if not base.is_dir():
        raise InputError(base, "SiW folder not found (expected <root>/Train and <root>/Test)")
    videos = []
    errors: list[str] = []
    for f in sorted(base.glob("*/*/*")):
        if f.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)-(\d+)-(\d+)-(\d+)", f.stem)
        if m is None:
            errors.append(f"{f}: name is not <subject>-<sensor>-<type>-<medium>-<session>")
            continue
        subj, kind, medium = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if kind not in SIW_TYPES:
            errors.append(f"{f}: unknown presentation type {kind} (1 live, 2 print, 3 replay)")
            continue
        videos.append((f, subj, kind, medium))
    if split != "test":
        keep = _dev_split([v[1] for v in videos], split, dev_fraction)
        videos = [v for v in videos if v[1] in keep]
    entries = []
    for f, _, kind, medium in videos:
        if not _siw_keep(p, fold, split, kind, medium):
            continue
        e = _entry(f, kind == 1, SIW_TYPES[kind], "SiW", str(f))
        e.box_file, e.box_format = f.with_suffix(".face"), "xyxy"
        if p == 1 and split == "train":
            e.max_frame = int(train_frames)
        entries.append(e)
    return FaceFrames(entries, errors=errors, n_lines=len(entries) + len(errors), name=f"{base} P{p} {split}", **kwargs)


# -------------------------------------------------------------------------------------- UniAttackData
UNIATTACK_LIST_PROTOCOLS = ("p1", "p1.1", "p1.2", "p1.3", "p2.1", "p2.2")


def _uni_family(rel: str, label: int) -> tuple[int, str]:
    """Binary lists mark every attack 1; the folder tells the family (``Data/spoof/`` physical, ``adv``
    adversarial, any other attack folder digital editing)."""
    from vislab.faces.readers import UNIATTACK_NAMES

    if label != 1:
        return label, UNIATTACK_NAMES[label]
    low = rel.lower()
    fam = 1 if "/spoof/" in f"/{low}" else 2 if "adv" in low else 3
    return fam, UNIATTACK_NAMES[fam]


def uniattack_dataset(root: str | Path, protocol: str = "p1", split: str = "train", kind: str = "image", **kwargs) -> FaceFrames:
    """UniAttackData ``UniAttackData@<p>_<kind>_<split>.txt``; ``root`` is the ``UniAttackData`` folder or
    the folder above it. Labels 0 live, 1-3 attack family (binary lists: family from the folder)."""
    r = Path(root).expanduser()
    p = str(protocol).lower().removeprefix("uniattackdata@")
    if p not in UNIATTACK_LIST_PROTOCOLS:
        raise ConfigError(f"UniAttackData protocol {protocol!r}: known {', '.join(UNIATTACK_LIST_PROTOCOLS)}")
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    _check_split(split)
    pdir = r / "protocol" if (r / "protocol").is_dir() else r / "UniAttackData" / "protocol"
    lf = pdir / f"UniAttackData@{p}_{kind}_{split}.txt"
    base = pdir.parent.parent  # lab lists are relative to the folder above UniAttackData/
    entries, errors, n = parse_list_file(lf, base, "uniattack", "U", extra_bases=[pdir.parent])
    for e in entries:
        e.label, e.attack = _uni_family(e.path.as_posix(), e.label)
    kwargs.setdefault("frames", 1 if kind == "image" else 2)
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(lf), **kwargs)


def read_list_dataset(list_files: str | Path | Sequence[str | Path], root: str | Path | None = None, label_format: str = "binary",
                      domain: str = "", **kwargs) -> FaceFrames:
    """Any ``path label`` list file(s) -> :class:`FaceFrames`."""
    files = [list_files] if isinstance(list_files, (str, Path)) else list(list_files)
    entries, errors, n = [], [], 0
    for lf in files:
        e, _, k = parse_list_file(lf, root, label_format, domain, errors)
        entries += e
        n += k
    return FaceFrames(entries, errors=errors, n_lines=n, name=str(files[0]) if len(files) == 1 else f"{len(files)} list files", **kwargs)


__all__ = [
    "IMAGE_SUFFIXES",
    "casia_fasd_dataset",
    "flip_dataset",
    "lab_dataset",
    "mcio_dataset",
    "msu_mfsd_dataset",
    "oulu_dataset",
    "read_list_dataset",
    "replay_attack_dataset",
    "resolve_protocol",
    "siw_dataset",
    "uniattack_dataset",
]
