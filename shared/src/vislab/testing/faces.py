"""Replica trees of the published face anti-spoofing layouts: tiny frames and videos, lists exactly as published.

Each builder writes under ``root`` and returns the folder a user passes as the dataset root. The folder and
list structure follows the source cited in :mod:`vislab.faces.layouts` for that layout; frames are small
seeded noise images (live frames brighter than attack frames, so a model can separate them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAB_NAMES = {"O": "OULU_NPU", "C": "CASIA_FASD", "I": "ReplayAttack", "M": "MSU_MFSD"}
FLIP_NAMES = {"O": "oulu", "C": "casia", "I": "replay", "M": "msu"}


def _img(rng: np.random.Generator, size: int, live: bool) -> np.ndarray:
    base = 150 if live else 90
    return np.clip(rng.normal(base, 30, (size, size, 3)), 0, 255).astype(np.uint8)


def _png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def write_frames(folder: Path, n: int, size: int, rng: np.random.Generator, live: bool, ext: str = ".png") -> None:
    """``n`` frames ``0001.png ...`` in ``folder``."""
    for k in range(n):
        _png(folder / f"{k + 1:04d}{ext}", _img(rng, size, live))


def write_video(path: Path, n: int, size: int, rng: np.random.Generator, live: bool) -> None:
    """An ``n``-frame MJPEG video (``.avi``/``.mov``; ``.mp4`` as MPEG-4)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    w = cv2.VideoWriter(str(path), fourcc, 10, (size, size))
    for _ in range(n):
        w.write(np.ascontiguousarray(_img(rng, size, live)[..., ::-1]))
    w.release()


def lab_replica(root: str | Path, domains: str = "OCIM", videos: int = 2, frames: int = 2, size: int = 16, seed: int = 0) -> Path:
    """CASIA-FAS-Benchmark: ``<root>/<NAME>/.../<video>/crop/<frames>`` (ReplayAttack's in ``color/``, MSU's
    directly in the video folder) and ``<root>/dg_protocol/<NAME>_video_{train,dev,test}.txt``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for d in domains:
        name = LAB_NAMES[d]
        sub = {"I": "color", "M": ""}.get(d, "crop")
        for split in ("train", "dev", "test"):
            lines = []
            for k in range(videos):
                for live in (True, False):
                    vdir = f"{name}/{split}_release/{k + 1}/{'1' if live else '3'}"
                    write_frames(root / vdir / sub, frames, size, rng, live)
                    lines.append(f"{vdir} {0 if live else 1}")
            (root / "dg_protocol").mkdir(parents=True, exist_ok=True)
            (root / "dg_protocol" / f"{name}_video_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def flip_replica(root: str | Path, domains: str = "OCIM", videos: int = 2, size: int = 16, seed: int = 0) -> Path:
    """FLIP: ``<root>/MCIO/frame/<name>/{train,test}/{real,fake}/<video>_frame{0,1}.png`` and
    ``<root>/MCIO/txt/<name>_{real,fake}_{train,test}.txt`` (frame0 only; the test lists name every video)."""
    mcio = Path(root) / "MCIO"
    rng = np.random.default_rng(seed)
    for d in domains:
        name = FLIP_NAMES[d]
        lists: dict[tuple[str, str], list[str]] = {}
        for folder in ("train", "test"):
            for cls in ("real", "fake"):
                for k in range(videos):
                    vid = f"{cls}_client{k + 1:03d}_{folder}"
                    for f in (0, 1):
                        _png(mcio / "frame" / name / folder / cls / f"{vid}_frame{f}.png", _img(rng, size, cls == "real"))
                    rel = f"{name}/{folder}/{cls}/{vid}_frame0.png"
                    if folder == "train":
                        lists.setdefault((cls, "train"), []).append(rel)
                    lists.setdefault((cls, "test"), []).append(rel)
        (mcio / "txt").mkdir(parents=True, exist_ok=True)
        for (cls, split), lines in lists.items():
            (mcio / "txt" / f"{name}_{cls}_{split}.txt").write_text("\n".join(lines) + "\n")
    return mcio


def oulu_replica(root: str | Path, users: int = 2, frames: int = 3, size: int = 32, seed: int = 0) -> Path:
    """OULU-NPU: ``{Train,Dev,Test}_files/<phone>_<session>_<user>_<file>.avi`` with ``<name>.txt`` eye
    positions ``frame, xL, yL, xR, yR``, and ``Protocols/Protocol_1/{Train,Dev,Test}.txt`` (``+1,<name>``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    uid = 0
    for sp in ("Train", "Dev", "Test"):
        lines = []
        for _ in range(users):
            uid += 1
            for file_id, code in ((1, "+1"), (2, "-1"), (4, "-3")):
                name = f"1_1_{uid:02d}_{file_id}"
                write_video(root / f"{sp}_files" / f"{name}.avi", frames, size, rng, file_id == 1)
                eyes = [f"{f}, {size * 0.35:.0f}, {size * 0.4:.0f}, {size * 0.65:.0f}, {size * 0.4:.0f}" for f in range(frames)]
                (root / f"{sp}_files" / f"{name}.txt").write_text("\n".join(eyes) + "\n")
                lines.append(f"{code},{name}")
        pdir = root / "Protocols" / "Protocol_1"
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / f"{sp}.txt").write_text("\n".join(lines) + "\n")
    return root


def casia_fasd_replica(root: str | Path, train_subjects: int = 3, test_subjects: int = 2, frames: int = 2, size: int = 16, seed: int = 0) -> Path:
    """CASIA-FASD: ``{train,test}_release/<subject>/{1..8,HR_1..HR_4}.avi``."""
    from vislab.faces.layouts import CASIA_FASD_TYPES

    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder, n in (("train_release", train_subjects), ("test_release", test_subjects)):
        for s in range(1, n + 1):
            for name, attack in CASIA_FASD_TYPES.items():
                write_video(root / folder / str(s) / f"{name}.avi", frames, size, rng, attack == "live")
    return root


def replay_attack_replica(root: str | Path, clients: int = 1, frames: int = 2, size: int = 32, seed: int = 0) -> Path:
    """Idiap Replay-Attack: ``{train,devel,test}/real/*.mov``, ``.../attack/{fixed,hand}/*.mov`` and
    ``face-locations/<split>/<same path>.face`` (``frame x y w h``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for sd in ("train", "devel", "test"):
        for c in range(1, clients + 1):
            vids = {
                f"real/client{c:03d}_session01_webcam_authenticate_controlled_1": True,
                f"attack/fixed/attack_highdef_client{c:03d}_session01_highdef_photo_adverse": False,
                f"attack/hand/attack_mobile_client{c:03d}_session01_mobile_video_controlled": False,
            }
            for rel, live in vids.items():
                write_video(root / sd / f"{rel}.mov", frames, size, rng, live)
                face = root / "face-locations" / sd / f"{rel}.face"
                face.parent.mkdir(parents=True, exist_ok=True)
                face.write_text("".join(f"{f} {size // 4} {size // 4} {size // 2} {size // 2}\n" for f in range(frames)))
    return root


def msu_mfsd_replica(root: str | Path, train: tuple[int, ...] = (2, 3, 5), test: tuple[int, ...] = (1, 7), frames: int = 2, size: int = 16, seed: int = 0) -> Path:
    """MSU-MFSD: ``scene01/{real,attack}/*.mp4|mov`` and ``{train,test}_sub_list.txt``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for c in (*train, *test):
        write_video(root / "scene01" / "real" / f"real_client{c:03d}_android_SD_scene01.mp4", frames, size, rng, True)
        write_video(root / "scene01" / "attack" / f"attack_client{c:03d}_android_SD_ipad_video_scene01.mp4", frames, size, rng, False)
        write_video(root / "scene01" / "attack" / f"attack_client{c:03d}_laptop_SD_printed_photo_scene01.mov", frames, size, rng, False)
    (root / "train_sub_list.txt").write_text("".join(f"{c:03d}\n" for c in train))
    (root / "test_sub_list.txt").write_text("".join(f"{c:03d}\n" for c in test))
    return root


def siw_replica(root: str | Path, train_subjects: tuple[int, ...] = (6, 7, 8), test_subjects: tuple[int, ...] = (9, 10), frames: int = 3, size: int = 16, seed: int = 0) -> Path:
    """SiW: ``{Train,Test}/{live,spoof}/<subject>/<subject>-<sensor>-<type>-<medium>-<session>.mov`` + ``.face``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    kinds = [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (3, 4)]
    for folder, subjects in (("Train", train_subjects), ("Test", test_subjects)):
        for s in subjects:
            for kind, medium in kinds:
                cls = "live" if kind == 1 else "spoof"
                v = root / folder / cls / f"{s:03d}" / f"{s:03d}-1-{kind}-{medium}-1.mov"
                write_video(v, frames, size, rng, kind == 1)
                v.with_suffix(".face").write_text(f"{size // 4} {size // 4} {3 * size // 4} {3 * size // 4}\n" * frames)
    return root


def uniattack_replica(root: str | Path, protocols: tuple[str, ...] = ("p1", "p2.1", "p2.2"), subjects: int = 2, frames: int = 2,
                      size: int = 16, seed: int = 0) -> Path:
    """UniAttackData as in CASIA-FAS-Dataset: ``<root>/UniAttackData/Data/...`` and
    ``<root>/UniAttackData/protocol/UniAttackData@<p>_{image,video}_{train,dev,test}.txt`` (paths relative to
    ``<root>``; detailed labels 0 live, 1 physical, 2 adversarial, 3 digital). Returns ``<root>``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    fam_dirs = {0: "Data/live/east-asia/EA-{s:03d}/real.rssdk/color", 1: "Data/spoof/east-asia/EA-{s:03d}/cloth-indoor/color",
                2: "Data/adv-attacks/FGTM/EA-{s:03d}/color", 3: "Data/simswap/east-asia/EA-{s:03d}-To-EA-999/color"}
    present = {"p1": (0, 1, 2, 3), "p2.1": {"train": (0, 2, 3), "dev": (0, 2, 3), "test": (0, 1)},
               "p2.2": {"train": (0, 1), "dev": (0, 1), "test": (0, 2, 3)}}
    sid = 0
    for split in ("train", "dev", "test"):
        vids = {}
        for _ in range(subjects):
            sid += 1
            for fam, pat in fam_dirs.items():
                vdir = "UniAttackData/" + pat.format(s=sid)
                write_frames(root / vdir, frames, size, rng, fam == 0, ext=".jpg")
                vids[(fam, vdir)] = sorted(p.name for p in (root / vdir).iterdir())
        pdir = root / "UniAttackData" / "protocol"
        pdir.mkdir(parents=True, exist_ok=True)
        for p in protocols:
            fams = present[p] if p == "p1" else present[p][split]
            img = [f"{v}/{f} {fam}" for (fam, v), fs in vids.items() if fam in fams for f in fs]
            vid = [f"{v} {fam}" for (fam, v) in vids if fam in fams]
            (pdir / f"UniAttackData@{p}_image_{split}.txt").write_text("\n".join(img) + "\n")
            (pdir / f"UniAttackData@{p}_video_{split}.txt").write_text("\n".join(vid) + "\n")
    return root
