"""Cameras: INRIA ``cameras.json``, COLMAP ``sparse/0`` (binary or text), NeRF ``transforms.json``.

Convention: ``viewmat`` is world-to-camera in OpenCV axes (x right, y down, z forward);
u = fx·x/z + cx, v = fy·y/z + cy in continuous pixel coordinates (pixel centres at +0.5).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from vislab.errors import InputError, VislabError
from vislab.io import atomic_path, require_dir, require_file


@dataclass
class Camera:
    """One pinhole camera. viewmat [4, 4] w2c (OpenCV), K [3, 3]."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int
    name: str = ""
    image_path: Path | None = None

    @property
    def center(self) -> Tensor:
        """Camera centre in world coordinates [3]."""
        return -self.viewmat[:3, :3].T @ self.viewmat[:3, 3]

    def ray(self, x: float, y: float) -> tuple[Tensor, Tensor]:
        """Origin [3] and direction [3] (unit camera-space z) through continuous pixel (x, y)."""
        d_cam = torch.tensor(
            [
                (x - float(self.K[0, 2])) / float(self.K[0, 0]),
                (y - float(self.K[1, 2])) / float(self.K[1, 1]),
                1.0,
            ]
        )
        return self.center, self.viewmat[:3, :3].T @ d_cam

    def project(self, pts: Tensor) -> tuple[Tensor, Tensor]:
        """World points [N, 3] -> continuous pixel coords [N, 2] and camera depth z [N]."""
        pc = pts @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        z = pc[:, 2]
        zs = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
        uv = torch.stack(
            [self.K[0, 0] * pc[:, 0] / zs + self.K[0, 2], self.K[1, 1] * pc[:, 1] / zs + self.K[1, 2]], -1
        )
        return uv, z


def look_at(eye: Tensor, target: Tensor, up: Tensor = torch.tensor([0.0, 0.0, 1.0])) -> Tensor:
    """World-to-camera [4, 4] (OpenCV) of a camera at ``eye`` looking at ``target``."""
    f = target - eye
    f = f / f.norm()
    r = torch.linalg.cross(f, up)
    r = r / r.norm()
    d = torch.linalg.cross(f, r)  # camera y (down)
    R = torch.stack([r, d, f])  # rows: camera axes in world
    m = torch.eye(4)
    m[:3, :3] = R
    m[:3, 3] = -R @ eye
    return m


def intrinsics(f: float, width: int, height: int) -> Tensor:
    """K with focal ``f`` and the principal point at the image centre."""
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def stack(cams: list[Camera]) -> tuple[Tensor, Tensor]:
    """viewmats [C, 4, 4], Ks [C, 3, 3]."""
    return torch.stack([c.viewmat for c in cams]), torch.stack([c.K for c in cams])


def resize_cameras(
    cams: list[Camera], factor: float | None = None, resolution: int | None = None
) -> list[Camera]:
    """Cameras rendering smaller images: width / factor, or ``resolution`` pixels wide (aspect kept).

    K is scaled by the ratio of the rounded new size to the old one (fx and cx by the width ratio,
    fy and cy by the height ratio), as the image loader does.
    """
    if factor is None and resolution is None:
        return cams
    if factor is not None and resolution is not None:
        raise VislabError("give --factor or --resolution, not both")
    out = []
    for c in cams:
        s = (1.0 / factor) if factor is not None else resolution / c.width
        if s <= 0:
            raise VislabError("--factor and --resolution must be positive")
        w, h = max(1, round(c.width * s)), max(1, round(c.height * s))
        K = c.K.clone()
        K[0] *= w / c.width
        K[1] *= h / c.height
        out.append(Camera(c.viewmat, K, w, h, c.name, c.image_path))
    return out


def scene_scale(cams: list[Camera]) -> float:
    """1.1 × the largest distance of a camera centre from their mean (gsplat's rule)."""
    c = torch.stack([cam.center for cam in cams])
    return float(1.1 * (c - c.mean(0)).norm(dim=-1).max().clamp(min=1e-6))


# ---------------------------------------------------------------- INRIA cameras.json
def save_cameras_json(cams: list[Camera], path: str | Path) -> Path:
    """INRIA layout: [{id, img_name, width, height, position, rotation (c2w 3×3), fx, fy}].

    The principal point is added as ``cx``, ``cy`` (INRIA's writer omits it and assumes the image
    centre; readers that ignore extra keys still load the file).
    """
    out = []
    for i, c in enumerate(cams):
        R = c.viewmat[:3, :3]
        out.append(
            {
                "id": i,
                "img_name": c.name or f"{i:05d}",
                "width": int(c.width),
                "height": int(c.height),
                "position": c.center.tolist(),
                "rotation": R.T.tolist(),
                "fx": float(c.K[0, 0]),
                "fy": float(c.K[1, 1]),
                "cx": float(c.K[0, 2]),
                "cy": float(c.K[1, 2]),
            }
        )
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return Path(path)


def load_cameras_json(path: str | Path) -> list[Camera]:
    """Read INRIA ``cameras.json``; the principal point is ``cx``/``cy`` when given, else the image centre."""
    p = require_file(path, "cameras.json")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(p, f"not valid JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise InputError(p, "expected a non-empty list of cameras")
    cams = []
    for i, d in enumerate(data):
        missing = [k for k in ("width", "height", "position", "rotation", "fx", "fy") if k not in d]
        if missing:
            raise InputError(p, f"camera {i} lacks {missing} (intrinsics and pose are required)")
        c2w_R = torch.tensor(d["rotation"], dtype=torch.float32)
        pos = torch.tensor(d["position"], dtype=torch.float32)
        m = torch.eye(4)
        m[:3, :3] = c2w_R.T
        m[:3, 3] = -c2w_R.T @ pos
        w, h = int(d["width"]), int(d["height"])
        cx, cy = float(d.get("cx", w / 2)), float(d.get("cy", h / 2))
        K = torch.tensor([[float(d["fx"]), 0, cx], [0, float(d["fy"]), cy], [0, 0, 1.0]])
        cams.append(Camera(m, K, w, h, str(d.get("img_name", i))))
    return cams


# ---------------------------------------------------------------- NeRF transforms.json
def load_transforms_json(path: str | Path, images_root: str | Path | None = None) -> list[Camera]:
    """NeRF-synthetic ``transforms.json``: c2w in OpenGL axes (columns 1 and 2 negated here)."""
    from PIL import Image

    p = require_file(path, "transforms.json")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(p, f"not valid JSON ({e})") from None
    frames = data.get("frames") or []
    if not frames:
        raise InputError(p, "no frames listed")
    root = Path(images_root) if images_root else p.parent
    cams = []
    for i, fr in enumerate(frames):
        fp = root / fr["file_path"]
        if fp.suffix == "":
            fp = fp.with_suffix(".png")
        w, h = fr.get("w", data.get("w")), fr.get("h", data.get("h"))
        if (w is None or h is None) and fp.is_file():
            with Image.open(fp) as im:
                w, h = im.size
        if w is None or h is None:
            raise InputError(fp, "image size unknown: the image is missing and transforms.json has no w/h")
        fx = fr.get("fl_x", data.get("fl_x"))
        fy = fr.get("fl_y", data.get("fl_y"))
        if fx is None:
            ax = fr.get("camera_angle_x", data.get("camera_angle_x"))
            if ax is None:
                raise InputError(p, f"frame {i} has no intrinsics (camera_angle_x or fl_x)")
            fx = 0.5 * w / math.tan(0.5 * ax)
        fy = fy if fy is not None else fx
        cx = fr.get("cx", data.get("cx", w / 2))
        cy = fr.get("cy", data.get("cy", h / 2))
        c2w = torch.tensor(fr["transform_matrix"], dtype=torch.float32)
        c2w[:3, 1:3] *= -1
        cams.append(
            Camera(
                torch.linalg.inv(c2w),
                torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], dtype=torch.float32),
                int(w),
                int(h),
                fp.stem,
                fp,
            )
        )
    return cams


# ---------------------------------------------------------------- COLMAP sparse/0
_COLMAP_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
}


def _qvec_to_R(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _intr(model: str, params: list[float]) -> tuple[float, float, float, float]:
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        return params[0], params[0], params[1], params[2]
    return params[0], params[1], params[2], params[3]


def read_colmap(
    sparse: str | Path, images_dir: str | Path | None = None
) -> tuple[list[Camera], np.ndarray | None, np.ndarray | None]:
    """Cameras (sorted by image name), points3D xyz [P, 3] and rgb [P, 3] (uint8) of a COLMAP model.

    Distortion parameters are ignored (undistorted images are expected, as in 3DGS).
    """
    d = require_dir(sparse, "COLMAP sparse folder")
    intr: dict[int, tuple] = {}
    imgs: list[tuple] = []
    xyz = rgb = None
    if (d / "cameras.bin").is_file():
        with open(d / "cameras.bin", "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            for _ in range(n):
                cid, mid, w, h = struct.unpack("<iiQQ", f.read(24))
                name, npar = _COLMAP_MODELS.get(mid, ("?", 0))
                if npar == 0:
                    raise InputError(d / "cameras.bin", f"unsupported camera model id {mid}")
                params = struct.unpack(f"<{npar}d", f.read(8 * npar))
                intr[cid] = (name, int(w), int(h), list(params))
        with open(require_file(d / "images.bin", "COLMAP images.bin"), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            for _ in range(n):
                iid, qw, qx, qy, qz, tx, ty, tz, cid = struct.unpack("<i7di", f.read(64))
                name = b""
                while (ch := f.read(1)) != b"\x00":
                    name += ch
                (np2,) = struct.unpack("<Q", f.read(8))
                f.read(24 * np2)
                imgs.append((name.decode(), np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cid))
        if (d / "points3D.bin").is_file():
            pts, cols = [], []
            with open(d / "points3D.bin", "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                for _ in range(n):
                    _pid, x, y, z, r, g, b, _err = struct.unpack("<Q3d3Bd", f.read(43))
                    (tl,) = struct.unpack("<Q", f.read(8))
                    f.read(8 * tl)
                    pts.append((x, y, z))
                    cols.append((r, g, b))
            xyz, rgb = np.array(pts, np.float32).reshape(-1, 3), np.array(cols, np.uint8).reshape(-1, 3)
    elif (d / "cameras.txt").is_file():
        for line in (d / "cameras.txt").read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            t = line.split()
            intr[int(t[0])] = (t[1], int(t[2]), int(t[3]), [float(x) for x in t[4:]])
        lines = [
            ln
            for ln in require_file(d / "images.txt", "COLMAP images.txt").read_text().splitlines()
            if not ln.startswith("#")
        ]
        for ln in lines[0::2]:
            t = ln.split()
            if len(t) < 10:
                continue
            imgs.append(
                (t[9], np.array([float(x) for x in t[1:5]]), np.array([float(x) for x in t[5:8]]), int(t[8]))
            )
        if (d / "points3D.txt").is_file():
            pts, cols = [], []
            for ln in (d / "points3D.txt").read_text().splitlines():
                if ln.startswith("#") or not ln.strip():
                    continue
                t = ln.split()
                pts.append([float(x) for x in t[1:4]])
                cols.append([int(x) for x in t[4:7]])
            xyz, rgb = np.array(pts, np.float32).reshape(-1, 3), np.array(cols, np.uint8).reshape(-1, 3)
    else:
        raise InputError(d, "no cameras.bin or cameras.txt (not a COLMAP sparse model)")
    if not imgs:
        raise InputError(d, "COLMAP model has no registered images")
    cams = []
    for name, q, t, cid in sorted(imgs, key=lambda x: x[0]):
        if cid not in intr:
            raise InputError(d, f"image {name} refers to camera {cid}, which has no intrinsics")
        model, w, h, params = intr[cid]
        fx, fy, cx, cy = _intr(model, params)
        m = np.eye(4)
        m[:3, :3] = _qvec_to_R(q)
        m[:3, 3] = t
        path = Path(images_dir) / name if images_dir else None
        cams.append(
            Camera(
                torch.tensor(m, dtype=torch.float32),
                torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32),
                w,
                h,
                Path(name).stem,
                path,
            )
        )
    return cams, xyz, rgb


def normalize(
    cams: list[Camera], points: np.ndarray | None = None
) -> tuple[list[Camera], np.ndarray | None, Tensor]:
    """Similarity that centres the camera centres and scales their largest distance to 1.

    Returns the transformed cameras, points and the 4×4 world transform T (x' = T x). The trained
    PLY and the saved ``cameras.json`` are both in this frame (a trained PLY with un-normalised cameras would not line up).
    """
    c = torch.stack([cam.center for cam in cams])
    mean = c.mean(0)
    s = 1.0 / float((c - mean).norm(dim=-1).max().clamp(min=1e-6))
    T = torch.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * mean
    out = []
    for cam in cams:
        # x_cam = R x + t, x = (x' − T_t)/s  =>  x_cam = R/s x' + t − R T_t / s ; rescale depth by s
        R, t = cam.viewmat[:3, :3], cam.viewmat[:3, 3]
        m = torch.eye(4)
        m[:3, :3] = R
        m[:3, 3] = s * t - R @ T[:3, 3]
        out.append(Camera(m, cam.K, cam.width, cam.height, cam.name, cam.image_path))
    pts = None if points is None else (points * s + T[:3, 3].numpy()).astype(np.float32)
    return out, pts, T


def load_cameras(path: str | Path) -> list[Camera]:
    """Any supported camera file: cameras.json, transforms.json, or a COLMAP sparse folder."""
    p = Path(path)
    if p.is_dir():
        return read_colmap(p)[0]
    require_file(p, "camera file")
    data = None
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            p, "not valid JSON (expected cameras.json, transforms.json or a COLMAP sparse folder)"
        ) from None
    if isinstance(data, dict) and "frames" in data:
        return load_transforms_json(p)
    return load_cameras_json(p)
