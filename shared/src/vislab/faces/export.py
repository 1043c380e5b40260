"""Write the toy faces to disk in the real datasets' layouts (so the readers are exercised on them),
and the overview grid.

``write_toy_layout(out)`` writes::

    out/grid.png                                    one face under every attack (columns) and domain (rows)
    out/MCIO/<NAME>/<D>_id<k>_<attack>_v<j>/frame<f>.png     NAME = OULU_NPU, CASIA_FASD, ReplayAttack, MSU_MFSD
    out/MCIO/dg_protocol/<NAME>_video_{train,dev,test}.txt   "<NAME>/<video_dir> <0 live | 1 attack>" (the lab's list names)
    out/OULU-NPU/{Train,Dev,Test}_files/<phone>_<session>_<user>_<file>.avi   domain O as videos
    out/OULU-NPU/Protocols/Protocol_1/{Train,Dev,Test}.txt   "+1,1_1_01_1" (file 1 live, 2-3 print, 4-5 replay)
    out/UniAttackData/Data/live/<eth>/<id>/real/color/<f>.png
    out/UniAttackData/Data/spoof/<eth>/<id>/<attack>/color/<f>.png
    out/UniAttackData/Data/adv-attacks/<algo>/<algo>_<eth>-112x112/<id>/<f>.png
    out/UniAttackData/Data/<edit-method>/<eth>/<id>-To-<donor>/<f>.png
    out/UniAttackData/protocol/UniAttackData@{p1,p2.1,p2.2}_{image,video}_{train,dev,test}.txt
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vislab.faces import attacks as A
from vislab.faces.domains import DOMAINS, MCIO
from vislab.faces.protocols import uniattack_attacks
from vislab.faces.toy import SPLITS, FaceRecord, ToyFaces, render_sample, split_identities


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def grid_image(size: int = 64, seed: int = 0, domains: Sequence[str] = (*MCIO, "U"), identity: int = 0) -> np.ndarray:
    """uint8 grid: rows = domains, columns = live + every attack; one person (identity ``identity`` of the
    first domain) everywhere, labelled."""
    from PIL import Image, ImageDraw

    cols = ["live", *A.ALL_ATTACKS]
    pad = 14
    H = pad + len(domains) * (size + 2)
    W = pad + len(cols) * (size + 2)
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, d in enumerate(domains):
        for c, name in enumerate(cols):
            img, _ = render_sample(FaceRecord(d, identity, name, 0, 0), size=size, seed=seed, identity_domain=domains[0])
            u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
            canvas.paste(Image.fromarray(u8), (pad + c * (size + 2), pad + r * (size + 2)))
        draw.text((1, pad + r * (size + 2) + size // 2 - 5), d, fill=(0, 0, 0))
    for c, name in enumerate(cols):
        draw.text((pad + c * (size + 2) + 1, 1), name[:9], fill=(0, 0, 0))
    return np.asarray(canvas)


def write_grid(path: str | Path, size: int = 64, seed: int = 0) -> Path:
    from vislab.io import atomic_path

    img = grid_image(size, seed)
    path = Path(path)
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path


def _write_mcio(out: Path, size: int, identities: int, frames: int, seed: int) -> dict:
    """Toy domains O, C, I, M under the CASIA-FAS-Benchmark names (``OULU_NPU`` ...), as the lab's lists are named."""
    from vislab.faces.layouts import MCIO_NAMES

    root = out / "MCIO"
    counts = {}
    for d in MCIO:
        name = MCIO_NAMES[d][0]
        for split in SPLITS:
            ds = ToyFaces(domains=[d], attacks=("print", "replay"), identities=identities, split=split, frames=frames, size=size, seed=seed, with_depth=False)
            lines = []
            for i, rec in enumerate(ds.records):
                vdir = f"{name}/{d}_id{rec.identity:03d}_{rec.attack}_v{rec.video_index}"
                _save_png(root / vdir / f"frame{rec.frame}.png", ds.render(i)[0])
                line = f"{vdir} {0 if rec.live else 1}"
                if not lines or lines[-1] != line:
                    lines.append(line)
            (root / "dg_protocol").mkdir(parents=True, exist_ok=True)
            (root / "dg_protocol" / f"{name}_video_{split}.txt").write_text("\n".join(lines) + "\n")
            counts[f"{d}/{split}"] = len(lines)
    return counts


def _write_oulu(out: Path, size: int, identities: int, frames: int, seed: int) -> dict:
    import cv2

    root = out / "OULU-NPU"
    counts = {}
    # OULU file ids: 1 live, 2-3 print, 4-5 replay; codes +1 / -1 -2 (print) / -3 -4 (replay)
    spec = {("live", 0): (1, "+1"), ("print", 0): (2, "-1"), ("replay", 0): (4, "-3"), ("live", 1): (1, "+1")}
    for split, sp in zip(SPLITS, ("Train", "Dev", "Test")):
        ds = ToyFaces(domains=["O"], attacks=("print", "replay"), identities=identities, split=split, frames=frames, size=size, seed=seed, with_depth=False)
        by_video: dict[tuple, list[int]] = {}
        for i, rec in enumerate(ds.records):
            by_video.setdefault((rec.identity, rec.attack, rec.video_index), []).append(i)
        lines = []
        for (k, attack, v), idx in by_video.items():
            file_id, code = spec.get((attack, v), (1, "+1"))
            session = 1 + v  # the second live video of a user is another session
            name = f"1_{session}_{k + 1:02d}_{file_id}"
            path = root / f"{sp}_files" / f"{name}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
            for i in idx:
                w.write(np.ascontiguousarray(ds.render(i)[0][..., ::-1]))
            w.release()
            lines.append(f"{code},{name}")
        pdir = root / "Protocols" / "Protocol_1"
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / f"{sp}.txt").write_text("\n".join(lines) + "\n")
        counts[split] = len(lines)
    return counts


_ETH = ("AF", "CA", "EA")  # African, Central-Asian, East-Asian (CeFA)
_EDIT_FOLDERS = {"faceswap": "simswap", "reenact": "DaGAN", "gan": "FaceDancer", "attribute": "SAFA"}
_ADV_FOLDERS = {"adv_sign": "FGTM", "adv_dct": "AdvDrop", "adv_smooth": "SSAH"}


def _uni_video_dir(rec, eth: str) -> str:
    uid = f"{eth}-{rec.identity:03d}"
    if rec.attack == "live":
        return f"Data/live/{eth}/{uid}/real-v{rec.video_index}/color"
    atk = A.ATTACKS[rec.attack]
    if atk.kind == "physical":
        return f"Data/spoof/{eth}/{uid}/{rec.attack}/color"
    if atk.kind == "adversarial":
        algo = _ADV_FOLDERS[rec.attack]
        return f"Data/adv-attacks/{algo}/{algo}_{eth}-112x112/{uid}"
    return f"Data/{_EDIT_FOLDERS[rec.attack]}/{eth}/{uid}-To-donor"


def _write_uniattack(out: Path, size: int, identities: int, frames: int, seed: int) -> dict:
    root = out / "UniAttackData"
    counts = {}
    written: dict = {}
    for split in SPLITS:
        ds = ToyFaces(domains=["U"], attacks=A.ALL_ATTACKS, identities=identities, split=split, frames=frames, size=size, seed=seed, with_depth=False)
        for i, rec in enumerate(ds.records):
            vdir = _uni_video_dir(rec, _ETH[rec.identity % 3])
            f = f"{vdir}/{rec.frame:03d}.png"
            _save_png(root / f, ds.render(i)[0])
            written.setdefault(split, []).append((rec, vdir, f))
    (root / "protocol").mkdir(parents=True, exist_ok=True)
    for p in ("p1", "p2.1", "p2.2"):
        for split in SPLITS:
            allowed = set(uniattack_attacks(p, split))
            n_att = len(allowed)
            img_lines, vid_lines = [], []
            for rec, vdir, f in written[split]:
                if rec.attack == "live":
                    if rec.video_index >= n_att:  # keep live:attack at 1:1 as ToyFaces does
                        continue
                elif rec.attack not in allowed:
                    continue
                img_lines.append(f"{f} {rec.label}")
                line = f"{vdir} {rec.label}"
                if not vid_lines or vid_lines[-1] != line:
                    vid_lines.append(line)
            (root / "protocol" / f"UniAttackData@{p}_image_{split}.txt").write_text("\n".join(img_lines) + "\n")
            (root / "protocol" / f"UniAttackData@{p}_video_{split}.txt").write_text("\n".join(vid_lines) + "\n")
            counts[f"{p}/{split}"] = len(img_lines)
    return counts


def write_toy_layout(out: str | Path, size: int = 64, identities: int = 4, uni_identities: int = 8, frames: int = 2, seed: int = 0, grid: bool = True) -> dict:
    """Write grid.png and the toy faces in the MCIO, OULU-NPU and UniAttackData layouts; returns counts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for n, what in ((identities, "--identities"), (uni_identities, "--uni-identities")):
        try:
            split_identities(n, "test")
        except ValueError:
            raise ValueError(f"{what} {n}: need at least 4 identities (train/dev/test split 50/25/25)") from None
    summary = {"out": str(out)}
    if grid:
        summary["grid"] = str(write_grid(out / "grid.png", size=size, seed=seed))
    summary["mcio_videos"] = _write_mcio(out, size, identities, frames, seed)
    summary["oulu_videos"] = _write_oulu(out, size, identities, max(frames, 2), seed)
    summary["uniattack_images"] = _write_uniattack(out, size, uni_identities, frames, seed)
    summary["domains"] = {k: v.description for k, v in DOMAINS.items()}
    return summary
