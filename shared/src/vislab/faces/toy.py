"""``ToyFaces``: a deterministic toy face anti-spoofing dataset (live + attacks, several capture domains).

Sample layout: for every domain, identity, video and frame one item. Every attack type gets
``videos_per_attack`` videos per identity; live gets as many videos as all attacks together when
``balance_live`` (the default), so live and spoof are balanced inside every domain and identity.
Each item is rendered from a seed derived from ``(seed, domain, identity, attack, video, frame)`` only,
so an item is identical in every subset, split or protocol that contains it, whatever the order.

Items (dict): ``image`` float32 tensor (3, H, W) in [0, 1]; ``label`` int (0 live, 1 physical,
2 adversarial, 3 digital editing: UniAttackData's convention); ``live`` int (1 live, 0 spoof);
``attack`` str ("live" or the attack name); ``domain`` str; ``identity`` int; ``video`` str
(``"<domain>/id<k>/<attack>/v<j>"``); ``frame`` int; ``depth`` float32 tensor (1, H, W) in [0, 1]
(pseudo-depth for live faces, zeros for every attack, as depth-supervised FAS methods label them),
present when ``with_depth``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vislab.faces import attacks as A
from vislab.faces import domains as D
from vislab.faces import render as R

VERSION = 3  # bump when rendering changes (keys the disk cache)
SPLITS = ("train", "dev", "test")


def cache_root() -> Path:
    """``$VISLAB_CACHE`` or ``~/.cache/vislab``."""
    return Path(os.environ.get("VISLAB_CACHE", Path.home() / ".cache" / "vislab")).expanduser()


def _h(s: str) -> int:
    return zlib.crc32(s.encode())


def _rng(*parts) -> np.random.Generator:
    ints = [p if isinstance(p, int) else _h(str(p)) for p in parts]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(ints)))


@dataclass(frozen=True)
class FaceRecord:
    """One item's coordinates (no pixels)."""

    domain: str
    identity: int
    attack: str
    video_index: int
    frame: int

    @property
    def label(self) -> int:
        return A.attack_label(self.attack)

    @property
    def live(self) -> int:
        return int(self.attack == "live")

    @property
    def video(self) -> str:
        return f"{self.domain}/id{self.identity:03d}/{self.attack}/v{self.video_index}"


def split_identities(n: int, split: str | None, fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> list[int]:
    """Subject-disjoint split of identities ``0..n-1``: the first 50 % train, next 25 % dev, last 25 % test."""
    if split is None or split == "all":
        return list(range(n))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    n_tr = max(1, int(round(n * fractions[0])))
    n_dev = max(1, int(round(n * fractions[1])))
    bounds = {"train": (0, n_tr), "dev": (n_tr, n_tr + n_dev), "test": (n_tr + n_dev, n)}
    lo, hi = bounds[split]
    ids = list(range(lo, min(hi, n)))
    if not ids:
        raise ValueError(f"split {split!r} of {n} identities is empty; use more identities")
    return ids


def make_identity(seed: int, domain: str, k: int, real_fraction: float = 0.25) -> R.Identity:
    """Identity ``k`` of ``domain``: procedural, or (every 1/real_fraction-th) a real face from scikit-image."""
    rng = _rng(seed, "identity", domain, k)
    every = int(round(1 / real_fraction)) if real_fraction > 0 else 0
    if every and k % every == 1:
        src = R.real_face_source(_h(f"{seed}/{domain}/{k}"))
    else:
        src = "procedural"
    return R.random_identity(rng, key=f"{domain}/{k}", source=src)


def render_sample(
    rec: FaceRecord, size: int = 64, seed: int = 0, real_fraction: float = 0.25, identity_domain: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one item: ``(image (H,W,3) float32 in [0,1], depth (H,W) float32)``.

    ``identity_domain`` draws the person from another domain's identities (the grid shows one person
    in every domain); by default each domain has its own people, as separate datasets do.
    """
    dom = D.get_domain(rec.domain)
    ident = make_identity(seed, identity_domain or rec.domain, rec.identity, real_fraction)
    vkey = (seed, rec.domain, rec.identity, rec.attack, rec.video_index)
    prng = _rng(*vkey, "pose")
    base = R.random_pose(prng, dom.light_x)
    bg = D.background(dom, size, prng)
    frng = _rng(*vkey, "frame", rec.frame)
    # frame jitter inside a video: small motion and brightness flicker
    pose = R.Pose(**{**base.__dict__})
    pose.shift = (base.shift[0] + frng.uniform(-0.015, 0.015), base.shift[1] + frng.uniform(-0.015, 0.015))
    pose.roll_deg = base.roll_deg + frng.uniform(-1.5, 1.5)
    pose.ambient = float(np.clip(base.ambient + frng.uniform(-0.04, 0.04), 0.2, 0.8))
    scene, depth, info = R.render_face(ident, pose, size, bg, _rng(*vkey, "texture", rec.frame))
    if rec.attack == "live":
        return D.camera(scene, dom, frng), depth
    atk = A.get_attack(rec.attack)
    arng = _rng(*vkey, "attack")  # instrument parameters fixed for the whole video
    zero = np.zeros_like(depth)
    if atk.stage == "scene":
        return D.camera(atk(scene, arng, info, dom), dom, frng), zero
    captured = D.camera(scene, dom, frng)
    donor = None
    if atk.name == "faceswap":
        other = rec.identity + 1 + int(arng.integers(0, 1000))  # another person of the domain (any index)
        dident = make_identity(seed, rec.domain, other, real_fraction)
        dscene, _, _ = R.render_face(dident, pose, size, bg, _rng(*vkey, "donor", rec.frame))
        donor = D.camera(dscene, dom, _rng(*vkey, "donor-cam", rec.frame), compress=False)
    out = atk(captured, arng, info, dom, donor)
    if atk.kind == "digital":
        out = D.jpeg(out, int(frng.integers(dom.jpeg[0], dom.jpeg[1] + 1)))
    return out, zero


class ToyFaces(Dataset):
    """Toy live/spoof faces over capture domains (see the module docstring for the item layout).

    Args:
        domains: capture domains (names in :data:`vislab.faces.domains.DOMAINS`; "O", "C", "I", "M", "U").
        attacks: attack names (:data:`vislab.faces.attacks.ALL_ATTACKS` by default); ``()`` = live only.
        identities: number of identities per domain, or an explicit list of identity indices.
        split: None (all identities) or "train" / "dev" / "test" (subject-disjoint 50/25/25 split of
            ``range(identities)``).
        frames: frames per video; videos_per_attack: videos per identity and attack type.
        balance_live: give live as many videos as all attack types together (1:1 live:spoof).
        include_live: whether live samples are present at all.
        size: image side in pixels (64 or 224 are the intended sizes).
        seed: dataset seed; same arguments -> identical items.
        real_fraction: fraction of identities that are scikit-image faces (LFW subset / astronaut).
        cache: "memory" (render on first access, keep uint8 in memory), "disk" (render everything once and
            keep an ``.npz`` under ``$VISLAB_CACHE/faces`` or ``~/.cache/vislab/faces``) or None.
        transform: optional callable applied to the image tensor (e.g. augmentation / resize).
    """

    def __init__(
        self,
        domains: Sequence[str] = D.MCIO,
        attacks: Sequence[str] = A.ALL_ATTACKS,
        identities: int | Sequence[int] = 12,
        split: str | None = None,
        frames: int = 2,
        videos_per_attack: int = 1,
        balance_live: bool = True,
        include_live: bool = True,
        size: int = 64,
        seed: int = 0,
        real_fraction: float = 0.25,
        with_depth: bool = True,
        cache: str | None = "memory",
        transform: Callable | None = None,
    ):
        self.domains = tuple(D.get_domain(d).name for d in domains)
        for a in attacks:
            A.get_attack(a)
        self.attacks = tuple(attacks)
        if isinstance(identities, int):
            self.n_identities = identities
            self.identity_ids = split_identities(identities, split)
        else:
            if split is not None:
                raise ValueError("give either split= (over range(identities)) or an explicit identity list, not both")
            self.identity_ids = sorted(int(i) for i in identities)
            self.n_identities = max(self.identity_ids) + 1 if self.identity_ids else 0
        self.split = split
        self.frames = int(frames)
        self.size = int(size)
        self.seed = int(seed)
        self.real_fraction = float(real_fraction)
        self.with_depth = with_depth
        self.transform = transform
        if cache not in ("memory", "disk", None):
            raise ValueError(f"cache must be 'memory', 'disk' or None, got {cache!r}")
        self.cache = cache
        n_live_videos = (len(self.attacks) * videos_per_attack if (balance_live and self.attacks) else videos_per_attack) if include_live else 0
        recs: list[FaceRecord] = []
        for d in self.domains:
            for k in self.identity_ids:
                for v in range(n_live_videos):
                    recs.extend(FaceRecord(d, k, "live", v, f) for f in range(self.frames))
                for a in self.attacks:
                    for v in range(videos_per_attack):
                        recs.extend(FaceRecord(d, k, a, v, f) for f in range(self.frames))
        self.records = recs
        self._mem: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._disk_loaded = False

    # ------------------------------------------------------------------ views without pixels
    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def live(self) -> np.ndarray:
        return np.array([r.live for r in self.records], dtype=np.int64)

    @property
    def attack_names(self) -> list[str]:
        return [r.attack for r in self.records]

    @property
    def domain_names(self) -> list[str]:
        return [r.domain for r in self.records]

    @property
    def videos(self) -> list[str]:
        return [r.video for r in self.records]

    def config(self) -> dict:
        return {
            "version": VERSION, "domains": self.domains, "attacks": self.attacks, "identities": self.identity_ids,
            "n_identities": self.n_identities, "frames": self.frames, "size": self.size, "seed": self.seed,
            "real_fraction": self.real_fraction, "records": len(self.records),
            "first": self.records[0].video if self.records else "", "last": self.records[-1].video if self.records else "",
        }

    # ------------------------------------------------------------------ pixels
    def render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image (H, W, 3) and uint8 depth (H, W) of item ``i`` (cached)."""
        if self.cache == "disk" and not self._disk_loaded:
            self.materialize()
        if i in self._mem:
            return self._mem[i]
        img, depth = render_sample(self.records[i], self.size, self.seed, self.real_fraction)
        out = (np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), np.clip(depth * 255 + 0.5, 0, 255).astype(np.uint8))
        if self.cache is not None:
            self._mem[i] = out
        return out

    def materialize(self, progress: bool = False) -> ToyFaces:
        """Render every item now (and, with ``cache="disk"``, load/save the on-disk cache)."""
        path = None
        if self.cache == "disk":
            key = hashlib.sha1(json.dumps(self.config(), sort_keys=True, default=list).encode()).hexdigest()[:16]
            path = cache_root() / "faces" / f"toyfaces-{key}.npz"
            if path.is_file():
                try:
                    with np.load(path) as z:
                        imgs, depths = z["images"], z["depths"]
                    if len(imgs) == len(self.records):
                        self._mem = {i: (imgs[i], depths[i]) for i in range(len(imgs))}
                        self._disk_loaded = True
                        return self
                except (OSError, ValueError, KeyError):
                    pass  # corrupt cache: re-render
            self._disk_loaded = True  # avoid recursion through render()
        idx = range(len(self.records))
        if progress:
            from vislab.run import track

            idx = track(idx, "rendering toy faces")
        for i in idx:
            self.render(i)
        if path is not None:
            from vislab.io import atomic_path

            imgs = np.stack([self._mem[i][0] for i in range(len(self.records))]) if self.records else np.zeros((0, self.size, self.size, 3), np.uint8)
            depths = np.stack([self._mem[i][1] for i in range(len(self.records))]) if self.records else np.zeros((0, self.size, self.size), np.uint8)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, images=imgs, depths=depths)
        return self

    def image_array(self, i: int) -> np.ndarray:
        """Item ``i`` as float32 (H, W, 3) in [0, 1]."""
        return self.render(i)[0].astype(np.float32) / 255.0

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        img, depth = self.render(i)
        rec = self.records[i]
        image = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        item = {
            "image": image,
            "label": rec.label,
            "live": rec.live,
            "attack": rec.attack,
            "domain": rec.domain,
            "identity": rec.identity,
            "video": rec.video,
            "frame": rec.frame,
        }
        if self.with_depth:
            item["depth"] = torch.from_numpy(depth).float().div_(255.0)[None]
        return item

    def __repr__(self) -> str:
        return f"ToyFaces(n={len(self)}, domains={self.domains}, attacks={self.attacks}, identities={len(self.identity_ids)}, split={self.split}, size={self.size}, seed={self.seed})"


def balanced_weights(labels_live: Sequence[int], domains: Sequence[str] | None = None) -> torch.Tensor:
    """Per-sample weights for ``WeightedRandomSampler``: live and spoof equally likely, and (with
    ``domains``) every (domain, live) cell equally likely -- the class- and domain-balanced batches
    the DG anti-spoofing recipes use."""
    live = np.asarray(labels_live)
    keys = [(d, int(l)) for d, l in zip(domains, live)] if domains is not None else [int(l) for l in live]
    counts: dict = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    w = np.array([1.0 / counts[k] for k in keys], dtype=np.float64)
    return torch.as_tensor(w / w.sum(), dtype=torch.double)
