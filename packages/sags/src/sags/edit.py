"""Edits and collision-style queries on segmented Gaussians (the paper's applications: removal, translation, rotation, collision)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sags.gaussians import Splats, subset
from sags.scene import rotmat_to_quat


def split_object(splats: Splats, labels: Tensor) -> tuple[Splats, Splats]:
    """(object, scene minus object) by ``labels`` == 1."""
    sel = labels == 1
    return subset(splats, sel), subset(splats, ~sel)


def translate(splats: Splats, labels: Tensor, t: Tensor) -> Splats:
    """μ += t for the object's Gaussians."""
    out = {k: v.clone() for k, v in splats.items()}
    out["means"][labels == 1] += t.to(out["means"])
    return out


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def axis_angle_matrix(axis: Tensor, degrees: float) -> Tensor:
    """Rotation matrix [3, 3] about ``axis`` by ``degrees`` (Rodrigues)."""
    k = axis / axis.norm()
    th = math.radians(degrees)
    Kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float32)
    return torch.eye(3) + math.sin(th) * Kx + (1 - math.cos(th)) * Kx @ Kx


def rotate(splats: Splats, labels: Tensor, R: Tensor, center: Tensor | None = None) -> Splats:
    """μ' = R(μ − c) + c, q' = q_R ⊗ q for the object; SH bands ≥ 1 are zeroed (not rotated: our choice,
    the view-dependent part is dropped rather than shown wrong). c defaults to the object's mean."""
    sel = labels == 1
    out = {k: v.clone() for k, v in splats.items()}
    mu = out["means"][sel]
    c = mu.mean(0) if center is None else center
    out["means"][sel] = (mu - c) @ R.T + c
    qr = rotmat_to_quat(R[None])[0]
    out["quats"][sel] = quat_multiply(
        qr.expand_as(out["quats"][sel]), torch.nn.functional.normalize(out["quats"][sel], dim=-1)
    )
    out["shN"][sel] = 0
    return out


def pca_box(splats: Splats, min_opacity: float = 0.3, q: float = 0.01) -> dict[str, Tensor]:
    """Oriented box of an object: Gaussians with opacity > 0.3, trimmed to the 1–99 % quantiles per
    PCA axis. Returns center [3], axes [3, 3] (rows), half extents [3], and the axis-aligned box."""
    mu = splats["means"].float()
    keep = torch.sigmoid(splats["opacities"]) > min_opacity
    if keep.sum() >= 4:
        mu = mu[keep]
    c0 = mu.mean(0)
    _, _, Vh = torch.linalg.svd(mu - c0, full_matrices=False)
    proj = (mu - c0) @ Vh.T
    lo = torch.quantile(proj, q, dim=0)
    hi = torch.quantile(proj, 1 - q, dim=0)
    center = c0 + ((lo + hi) / 2) @ Vh
    inside = ((proj >= lo) & (proj <= hi)).all(-1)
    pts = mu[inside] if inside.any() else mu
    return {
        "center": center,
        "axes": Vh,
        "half": (hi - lo) / 2,
        "aabb_min": pts.min(0).values,
        "aabb_max": pts.max(0).values,
    }


def point_inside(box: dict[str, Tensor], points: Tensor) -> Tensor:
    """Whether points [P, 3] are inside the oriented box [P] bool."""
    local = (points - box["center"]) @ box["axes"].T
    return (local.abs() <= box["half"] + 1e-9).all(-1)


def boxes_overlap(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    """Separating-axis test of two oriented boxes (15 candidate axes)."""
    axes = [a["axes"][i] for i in range(3)] + [b["axes"][i] for i in range(3)]
    axes += [torch.linalg.cross(a["axes"][i], b["axes"][j]) for i in range(3) for j in range(3)]
    d = b["center"] - a["center"]
    for ax in axes:
        n = ax.norm()
        if n < 1e-8:
            continue
        ax = ax / n
        ra = (a["half"] * (a["axes"] @ ax).abs()).sum()
        rb = (b["half"] * (b["axes"] @ ax).abs()).sum()
        if (d @ ax).abs() > ra + rb:
            return False
    return True
