"""What ``sags view`` shows and does, without the web server: inputs, cameras, clicks, edits.

:func:`load_view_input` accepts a ``sags`` run folder (``point_cloud.ply`` + ``cameras.json`` +
``config.yaml``), a 3DGS output folder of the INRIA layout (``point_cloud/iteration_*/point_cloud.ply``
+ ``cameras.json``) or a bare ``.ply``. :class:`ViewSession` holds the state one viewer shares
between its browser tabs: the clicks, the SA-GS segmentation (computed by
:func:`sags.segment.segment_gaussians`, the same call as ``sags segment``), the τ / Gaussian
Decomposition switches (re-voted with :func:`sags.segment.vote` and
:func:`sags.segment.decompose_view` from the stored per-view labels and masks), and the edits
(:mod:`sags.edit`).

The clicked browser view is the reference view: it is appended to the scene's cameras, so the
vote runs over V + 1 views.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from vislab.errors import InputError, VislabError

from sags.cameras import Camera
from sags.gaussians import Splats, activated, sh_degree_of
from sags.render import C0
from sags.segment import Segmentation, SegmentConfig

MODES = ("scene + overlay", "object only", "scene without object", "scene")
TINT = (0.15, 0.55, 1.0)  # overlay colour of the selected object (RGB in [0, 1])
TINT_WEIGHT = 0.5


@dataclass
class ViewInput:
    """A scene to view: Gaussians, cameras (None: viewing only), segmentation settings."""

    splats: Splats
    cameras: list[Camera] | None
    source: Path
    seg_cfg: SegmentConfig = field(default_factory=SegmentConfig)
    provider: dict[str, Any] = field(default_factory=lambda: {"name": "floodfill"})
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    export_dir: Path = Path("view_exports")
    notes: list[str] = field(default_factory=list)


def _default_preset() -> dict[str, Any]:
    from vislab.config import read_yaml

    return read_yaml(Path(__file__).parent / "configs" / "default.yaml")


def _find_cameras(ply: Path) -> Path | None:
    """cameras.json beside the PLY or up to two folders above (INRIA: out/point_cloud/iteration_N/)."""
    for d in (ply.parent, ply.parent.parent, ply.parent.parent.parent):
        if (d / "cameras.json").is_file():
            return d / "cameras.json"
    return None


def _inria_ply(folder: Path) -> Path | None:
    """point_cloud/iteration_<max>/point_cloud.ply of an INRIA-layout output folder."""
    its = []
    for p in (folder / "point_cloud").glob("iteration_*/point_cloud.ply"):
        m = re.fullmatch(r"iteration_(\d+)", p.parent.name)
        if m:
            its.append((int(m.group(1)), p))
    return max(its)[1] if its else None


def load_view_input(
    path: str | Path,
    cameras: str | Path | None = None,
    provider: str | None = None,
    sam_type: str | None = None,
    sam_checkpoint: str | None = None,
    background: tuple[float, float, float] | None = None,
    export_dir: str | Path | None = None,
) -> ViewInput:
    """Read a run folder, an INRIA 3DGS output folder or a PLY; arguments given override the run's config."""
    from sags.cameras import load_cameras
    from sags.gaussians import load_ply

    p = Path(path)
    if not p.exists():
        raise InputError(p, "does not exist (expected a sags run folder or a 3DGS .ply file)")
    cfg = _default_preset()
    notes: list[str] = []
    if p.is_dir():
        if (p / "point_cloud.ply").is_file():
            ply = p / "point_cloud.ply"
            if (p / "config.yaml").is_file():
                from vislab.config import deep_merge, read_yaml

                cfg = deep_merge(cfg, read_yaml(p / "config.yaml"))
        elif _inria_ply(p) is not None:
            ply = _inria_ply(p)
        else:
            raise InputError(
                p,
                "not a sags run folder (point_cloud.ply, cameras.json) nor a 3DGS output folder "
                "(point_cloud/iteration_*/point_cloud.ply); give a run folder or a .ply file",
            )
        cam_path = (
            Path(cameras) if cameras else (p / "cameras.json" if (p / "cameras.json").is_file() else None)
        )
        root = p
    elif p.suffix.lower() == ".ply":
        ply, root = p, p.parent
        cam_path = Path(cameras) if cameras else _find_cameras(p)
    else:
        raise InputError(p, "not a run folder or a .ply file")
    splats = load_ply(ply)
    cams = load_cameras(cam_path) if cam_path is not None else None
    if cams is None:
        notes.append("no cameras.json found: viewing only; pass --cameras to segment")
    sc = dict(cfg["segment"])
    name = provider or sc["provider"]
    if name == "oracle":
        notes.append("the oracle provider needs ground-truth maps; using floodfill in the viewer")
        name = "floodfill"
    prov = {
        "name": name,
        "sam_type": sam_type or sc["sam_type"],
        "sam_checkpoint": sam_checkpoint if sam_checkpoint is not None else sc["sam_checkpoint"],
        "sam_k": sc["sam_k"],
    }
    if background is None:
        d = cfg["data"]
        background = (
            (1.0, 1.0, 1.0) if d["source"] == "blender" and d["white_background"] else (0.0, 0.0, 0.0)
        )
    return ViewInput(
        splats=splats,
        cameras=cams,
        source=ply,
        seg_cfg=segment_config_of(sc),
        provider=prov,
        background=tuple(float(x) for x in background),
        export_dir=Path(export_dir) if export_dir else root / "view_exports",
        notes=notes,
    )


def segment_config_of(section: dict[str, Any]) -> SegmentConfig:
    """SegmentConfig from a config's ``segment`` section (its keys that are SegmentConfig fields)."""
    from dataclasses import fields

    kw = {f.name: section[f.name] for f in fields(SegmentConfig) if section.get(f.name) is not None}
    return SegmentConfig(**kw)


# ---------------------------------------------------------------- cameras
def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] of a (w, x, y, z) quaternion."""
    from sags.render import quat_to_rotmat

    return quat_to_rotmat(torch.as_tensor(np.asarray(q, np.float64))).numpy()


def camera_from_pose(
    wxyz: np.ndarray,
    position: np.ndarray,
    fov: float,
    aspect: float,
    height: int,
    width: int | None = None,
) -> Camera:
    """Pinhole camera of a browser view: c2w rotation ``wxyz`` and ``position`` (OpenCV axes), vertical
    field of view ``fov`` (radians), canvas ``aspect`` = W / H, rendered ``height`` pixels high.

    With ``width`` the image is ``width`` × ``height`` (the scene cameras' size, so that SA-GS can
    stack all views) and the focal is the largest that still shows the whole browser view.
    """
    H = max(int(height), 8)
    ty = math.tan(0.5 * float(fov))
    tx = float(aspect) * ty
    if width is None:
        W = max(int(round(H * float(aspect))), 8)
        f = 0.5 * H / ty
    else:
        W = int(width)
        f = min(0.5 * H / ty, 0.5 * W / tx)
    R = quat_wxyz_to_matrix(wxyz)
    t = np.asarray(position, np.float64)
    vm = np.eye(4)
    vm[:3, :3] = R.T
    vm[:3, 3] = -R.T @ t
    K = np.array([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])
    return Camera(torch.from_numpy(vm).float(), torch.from_numpy(K).float(), W, H, "browser")


def screen_to_pixel(cam: Camera, fov: float, aspect: float, sx: float, sy: float) -> tuple[float, float]:
    """Continuous pixel (x, y) in ``cam`` of the browser point (sx, sy) ∈ [0, 1]² (0, 0 = top left)."""
    ty = math.tan(0.5 * float(fov))
    tx = float(aspect) * ty
    K = cam.K
    return (
        float(K[0, 0]) * (2 * float(sx) - 1) * tx + float(K[0, 2]),
        float(K[1, 1]) * (2 * float(sy) - 1) * ty + float(K[1, 2]),
    )


def camera_pose(cam: Camera) -> dict[str, Any]:
    """Browser pose of a camera: position, a look-at point on its axis, up (−y), vertical fov."""
    c2w = cam.viewmat[:3, :3].T.double().numpy()
    pos = cam.center.double().numpy()
    return {
        "position": pos,
        "forward": c2w[:, 2],
        "up": -c2w[:, 1],
        "fov": 2 * math.atan(0.5 * cam.height / float(cam.K[1, 1])),
    }


def scene_up(cams: list[Camera]) -> np.ndarray:
    """Mean of the cameras' up directions (−y), normalised: the up axis of a captured scene."""
    u = np.mean([camera_pose(c)["up"] for c in cams], 0)
    n = np.linalg.norm(u)
    return u / n if n > 1e-6 else np.array([0.0, 0.0, 1.0])


def scene_target(cams: list[Camera]) -> np.ndarray:
    """The point nearest to all optical axes (least squares): what the capture looks at."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for c in cams:
        pz = camera_pose(c)
        d = pz["forward"] / np.linalg.norm(pz["forward"])
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ pz["position"]
    try:
        return np.linalg.solve(A + 1e-6 * np.eye(3), b)
    except np.linalg.LinAlgError:
        return np.mean([camera_pose(c)["position"] for c in cams], 0)


# ---------------------------------------------------------------- rendering
def tinted(splats: Splats, labels: Tensor, tint=TINT, weight: float = TINT_WEIGHT) -> Splats:
    """The scene with the object's colour blended towards ``tint``: rgb' = (1−w)·rgb + w·tint.

    On SH coefficients: sh0' = (1−w)·sh0 + w·(tint − 0.5)/C0 and shN' = (1−w)·shN, so that
    0.5 + SH'(d) = (1−w)(0.5 + SH(d)) + w·tint in every direction.
    """
    sel = labels == 1
    out = dict(splats)
    t = (torch.tensor(tint, dtype=splats["sh0"].dtype, device=splats["sh0"].device) - 0.5) / C0
    sh0, shN = splats["sh0"].clone(), splats["shN"].clone()
    sh0[sel] = (1 - weight) * sh0[sel] + weight * t
    shN[sel] = (1 - weight) * shN[sel]
    out["sh0"], out["shN"] = sh0, shN
    return out


@torch.no_grad()
def render_camera(
    act: dict[str, Tensor], degree: int, cam: Camera, background: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3], alpha [H, W] and expected depth [H, W] of activated splats (gsplat on CUDA,
    our rasteriser on CPU: the device of ``act``)."""
    from sags.render import rasterize

    dev = act["means"].device
    if len(act["means"]) == 0:
        img = np.empty((cam.height, cam.width, 3), np.uint8)
        img[:] = np.round(np.asarray(background) * 255).astype(np.uint8)
        return (
            img,
            np.zeros((cam.height, cam.width), np.float32),
            np.zeros((cam.height, cam.width), np.float32),
        )
    out, alpha, _ = rasterize(
        act["means"],
        act["quats"],
        act["scales"],
        act["opacities"],
        act["colors"],
        cam.viewmat[None].to(dev),
        cam.K[None].to(dev),
        cam.width,
        cam.height,
        sh_degree=degree,
        backgrounds=torch.tensor([background], dtype=torch.float32, device=dev),
    )
    rgb = (out[0, ..., :3].clamp(0, 1) * 255).round().byte().cpu().numpy()
    return rgb, alpha[0, ..., 0].float().cpu().numpy(), out[0, ..., 3].float().cpu().numpy()


# ---------------------------------------------------------------- the session
@dataclass
class Click:
    x: float  # continuous pixel coordinates of the reference camera
    y: float
    positive: bool


class ViewSession:
    """Scene, clicks, segmentation, τ / GD switches and edits of one viewer (thread-safe).

    ``version`` grows with every change of what is drawn, so renderers know when to redraw.
    """

    def __init__(self, inp: ViewInput, device: str | torch.device = "cpu"):
        self.inp = inp
        self.device = torch.device(device)
        self.base: Splats = {k: v.detach().float().cpu() for k, v in inp.splats.items()}
        self.cams = inp.cameras
        self.cfg = inp.seg_cfg
        self.tau, self.gd = float(self.cfg.tau), bool(self.cfg.gd)
        self.clicks: list[Click] = []
        self.ref_cam: Camera | None = None
        self.seg: Segmentation | None = None
        self.seg_cams: list[Camera] = []
        self.edits: list[tuple[str, Any]] = []
        self.sel_splats: Splats = self.base
        self.sel_labels: Tensor = torch.zeros(len(self.base["means"]), dtype=torch.int8)
        self.scene_splats, self.scene_labels = self.sel_splats, self.sel_labels
        self.version = 0
        self.lock = threading.RLock()
        self.busy = threading.Lock()
        self._provider = None
        self._cache: dict[tuple[int, str], dict[str, Tensor]] = {}
        self.n_exports = 0

    # -- provider
    def provider(self):
        """The mask provider named by the run's config (built once, on first use)."""
        if self._provider is None:
            from sags.providers import make_provider

            p = self.inp.provider
            self._provider = make_provider(
                p["name"],
                None,
                p.get("sam_type", "vit_b"),
                p.get("sam_checkpoint"),
                p.get("sam_k"),
                str(self.device),
            )
        prov = self._provider
        if hasattr(prov, "k"):  # SAM: choose k again in each new reference view
            prov.k = self.inp.provider.get("sam_k")
        return prov

    # -- drawing
    def display(self, mode: str) -> tuple[dict[str, Tensor], int]:
        """Activated splats on the session's device for ``mode`` (one of :data:`MODES`), SH degree."""
        with self.lock:
            key = (self.version, mode)
            if key not in self._cache:
                s, lab = self.scene_splats, self.scene_labels
                if mode == "scene + overlay":
                    s = tinted(s, lab)
                elif mode == "object only":
                    s = {k: v[lab == 1] for k, v in s.items()}
                elif mode == "scene without object":
                    s = {k: v[lab != 1] for k, v in s.items()}
                elif mode != "scene":
                    raise VislabError(f"unknown view mode {mode!r} ({', '.join(MODES)})")
                self._cache = {key: activated({k: v.to(self.device) for k, v in s.items()})}
            return self._cache[key], sh_degree_of(self.scene_splats)

    def render(self, cam: Camera, mode: str = "scene + overlay") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        act, deg = self.display(mode)
        return render_camera(act, deg, cam, self.inp.background)

    def _changed(self) -> None:
        self.version += 1

    # -- clicks and segmentation
    def click(
        self,
        cam: Camera,
        x: float,
        y: float,
        positive: bool = True,
        progress: Callable[[Iterable, str], Iterable] | None = None,
    ) -> str:
        """Add a click in browser view ``cam`` and run SA-GS; returns a one-line summary.

        Earlier clicks made from another viewpoint are carried over as their lifted 3D prompts,
        re-projected into ``cam`` (occluded ones dropped, as in ``sags segment``'s other views).
        A click after an edit segments the edited scene. Raises :class:`VislabError` (the click is
        then forgotten) when the click is on empty space or the scene has no cameras.
        """
        from sags.cameras import scene_scale
        from sags.segment import project_prompts, segment_gaussians

        if self.cams is None:
            raise VislabError("this PLY has no cameras (cameras.json): restart with --cameras to segment")
        if not self.busy.acquire(blocking=False):
            raise VislabError("a segmentation is running: wait for it to finish")
        try:
            with self.lock:
                if self.edits:  # segment the edited scene from now on
                    self.base = {k: v.clone() for k, v in self.scene_splats.items()}
                    self.edits, self.seg, self.clicks = [], None, []
                    if hasattr(self._provider, "cache"):
                        self._provider.cache.clear()
                clicks = list(self.clicks)
                if self.ref_cam is None or not _same_camera(self.ref_cam, cam):
                    clicks = []
                    if self.seg is not None:
                        _, _, depth = render_camera(
                            activated(self.base), sh_degree_of(self.base), cam, self.inp.background
                        )
                        uv, lab = project_prompts(
                            self.seg.prompts3d,
                            self.seg.prompt_labels,
                            cam,
                            torch.from_numpy(depth),
                            self.cfg,
                            scene_scale(self.cams),
                        )
                        clicks = [Click(float(u), float(v), bool(lb == 1)) for (u, v), lb in zip(uv, lab)]
                clicks.append(Click(float(x), float(y), positive))
                base = self.base
            pos = np.array([[c.x, c.y] for c in clicks if c.positive], np.float32).reshape(-1, 2)
            neg = np.array([[c.x, c.y] for c in clicks if not c.positive], np.float32).reshape(-1, 2)
            if len(pos) == 0:
                with self.lock:
                    self.clicks, self.ref_cam = clicks, cam
                return "negative click kept: add a positive click on the object"
            cams = list(self.cams) + [cam]
            prov = self.provider()
            if hasattr(prov, "cache"):
                prov.cache.pop(len(cams) - 1, None)  # the browser view changes between clicks
            t0 = time.perf_counter()
            seg = segment_gaussians(
                base,
                cams,
                len(cams) - 1,
                pos,
                prov,
                neg if len(neg) else None,
                self.cfg,
                scene_scale(self.cams),
                self.inp.background,
                progress=progress,
                keep_renders=False,
            )
            dt = time.perf_counter() - t0
            with self.lock:
                self.clicks, self.ref_cam, self.seg, self.seg_cams = clicks, cam, seg, cams
                self._reselect()
                n = int((self.sel_labels == 1).sum())
            if n == 0:
                return f"no Gaussian selected (τ = {self.tau:.2f}): click again or lower τ ({dt:.1f} s)"
            return (
                f"{n} of {len(self.sel_labels)} Gaussians selected ({seg.info['valid_views']} of {len(cams)} "
                f"views voted, {len(pos)}+/{len(neg)}− clicks, {dt:.1f} s)"
            )
        finally:
            self.busy.release()

    def set_options(self, tau: float | None = None, gd: bool | None = None) -> None:
        """Change τ or the Gaussian Decomposition switch: re-vote from the stored per-view labels."""
        with self.lock:
            if tau is not None:
                self.tau = float(tau)
            if gd is not None:
                self.gd = bool(gd)
            if self.seg is not None:
                self._reselect()

    def _reselect(self) -> None:
        """Vote with the current τ, then Gaussian Decomposition with the segmentation's masks (if on)."""
        from sags.segment import decompose_view, gd_view_indices, vote

        seg, cfg = self.seg, self.cfg
        labels = vote(seg.view_labels, self.tau, cfg.vote_denominator).to(torch.int8)
        splats = {k: v.detach().cpu().float() for k, v in self.base.items()}
        if self.gd:
            valid = [v for v, m in enumerate(seg.masks) if m is not None]
            views = valid if cfg.gd_stage == "per_view" else gd_view_indices(valid, cfg.gd_views)
            for v in views:
                splats, labels, _ = decompose_view(splats, labels, self.seg_cams[v], seg.masks[v], cfg)
        self.sel_splats, self.sel_labels = splats, labels
        self._apply_edits()

    def clear(self) -> None:
        """Forget the clicks, the segmentation and the edits."""
        with self.lock:
            self.clicks, self.ref_cam, self.seg, self.edits = [], None, None, []
            self.sel_splats = self.base
            self.sel_labels = torch.zeros(len(self.base["means"]), dtype=torch.int8)
            self._apply_edits()

    # -- edits
    def edit(self, op: str, value: Any = None) -> str:
        """Apply ``remove``, ``translate`` (t [3]) or ``rotate`` ((axis [3], degrees)) to the object."""
        with self.lock:
            if self.seg is None or not bool((self.scene_labels == 1).any()):
                raise VislabError("no object selected: click an object first")
            if op not in ("remove", "translate", "rotate"):
                raise VislabError(f"unknown edit {op!r}")
            if op == "rotate" and float(np.linalg.norm(value[0])) < 1e-9:
                raise VislabError("the rotation axis is zero")
            self.edits.append((op, value))
            self._apply_edits()
            return f"{op}: {len(self.edits)} edit(s) applied"

    def undo_edits(self) -> None:
        with self.lock:
            self.edits = []
            self._apply_edits()

    def _apply_edits(self) -> None:
        from sags.edit import axis_angle_matrix, rotate, split_object, translate

        s, lab = self.sel_splats, self.sel_labels
        for op, val in self.edits:
            if op == "remove":
                s = split_object(s, lab)[1]
                lab = torch.zeros(len(s["means"]), dtype=torch.int8)
            elif op == "translate":
                s = translate(s, lab, torch.tensor(val, dtype=torch.float32))
            elif op == "rotate":
                axis, deg = val
                s = rotate(s, lab, axis_angle_matrix(torch.tensor(axis, dtype=torch.float32), float(deg)))
        self.scene_splats, self.scene_labels = s, lab
        self._changed()

    # -- export
    def export(self, out: str | Path | None = None) -> Path:
        """Write object.ply (the segmented Gaussians), background.ply, scene.ply + labels.npy (rows match)
        and view.json (clicks, τ, GD, edits, counts) into a new numbered folder."""
        from vislab.io import atomic_path, write_json

        from sags.edit import split_object
        from sags.gaussians import save_ply

        with self.lock:
            if self.seg is None:
                raise VislabError("nothing to export: click an object first")
            s, lab = self.scene_splats, self.scene_labels
            clicks, edits, tau, gd = list(self.clicks), list(self.edits), self.tau, self.gd
            self.n_exports += 1
            n = self.n_exports
        root = Path(out) if out else self.inp.export_dir
        d = root / f"{n:03d}"
        while d.exists():
            n += 1
            d = root / f"{n:03d}"
        d.mkdir(parents=True)
        obj, bg = split_object(s, lab)
        if len(obj["means"]) == 0:
            raise VislabError("the selection is empty (lower τ or click again); nothing exported")
        save_ply(obj, d / "object.ply")
        if len(bg["means"]):
            save_ply(bg, d / "background.ply")
        save_ply(s, d / "scene.ply")
        with atomic_path(d / "labels.npy") as t:
            with open(t, "wb") as f:
                np.save(f, lab.numpy().astype(np.int8))
        write_json(
            d / "view.json",
            {
                "source": str(self.inp.source),
                "clicks": [[c.x, c.y, int(c.positive)] for c in clicks],
                "reference_camera": None if self.ref_cam is None else _camera_dict(self.ref_cam),
                "tau": tau,
                "gaussian_decomposition": gd,
                "vote_denominator": self.cfg.vote_denominator,
                "edits": [[op, json.loads(json.dumps(v, default=float))] for op, v in edits],
                "n_object": int((lab == 1).sum()),
                "n_scene": len(lab),
            },
        )
        return d


def _same_camera(a: Camera, b: Camera) -> bool:
    return (
        a.width == b.width
        and a.height == b.height
        and torch.allclose(a.viewmat, b.viewmat, atol=1e-5)
        and torch.allclose(a.K, b.K, atol=1e-4)
    )


def _camera_dict(c: Camera) -> dict[str, Any]:
    return {"viewmat": c.viewmat.tolist(), "K": c.K.tolist(), "width": c.width, "height": c.height}


def with_resolution(cam: Camera, height: int) -> Camera:
    """The same view rendered ``height`` pixels high (focal and principal point scaled)."""
    s = height / cam.height
    K = cam.K.clone()
    K[:2] *= s
    return replace(cam, K=K, width=max(int(round(cam.width * s)), 8), height=int(height))
