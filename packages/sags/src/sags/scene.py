"""The procedural scene of the embedded default.

A two-grey checker plane z = 0 over [−1, 1]², a red sphere, a green cube and a blue cylinder, all
made of flat surface discs (tangent scale 0.024, normal scale 0.006, opacity 0.95) with Lambert-shaded
colours; hidden faces (under the objects) are left out. Cameras: a ring at 35° elevation plus test
views at 25° elevation offset by half a step. Ground-truth images, instance maps and 3D membership
come from this scene and our own rasteriser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from vislab.errors import VislabError

from sags.cameras import Camera, intrinsics, look_at, stack
from sags.gaussians import Splats, rgb_to_sh
from sags.render import rasterize

OBJECTS = ("plane", "sphere", "cube", "cylinder")
SPHERE_C, SPHERE_R = torch.tensor([-0.45, 0.0, 0.22]), 0.22
CUBE_C, CUBE_S = torch.tensor([0.45, 0.1, 0.18]), 0.36
CYL_C, CYL_R, CYL_H = torch.tensor([0.0, -0.5, 0.225]), 0.14, 0.45
ALBEDO = {1: (0.85, 0.15, 0.12), 2: (0.15, 0.75, 0.2), 3: (0.15, 0.3, 0.9)}
LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, 0.3, 1.0]), dim=0)


@dataclass
class SyntheticScene:
    """Ground-truth Gaussians with instance ids, cameras, GT images and instance maps."""

    splats: Splats
    instance: Tensor  # [N] long: 0 plane, 1 sphere, 2 cube, 3 cylinder
    train_cams: list[Camera]
    test_cams: list[Camera]
    train_images: Tensor  # [V, H, W, 3] in [0, 1]
    test_images: Tensor  # [T, H, W, 3]
    train_inst: Tensor  # [V, H, W] long, −1 = background
    test_inst: Tensor  # [T, H, W]


def sdf(points: Tensor, k: int) -> Tensor:
    """Signed distance [N] of points [N, 3] to object k (1 sphere, 2 cube, 3 cylinder, 0 plane)."""
    if k == 0:
        return points[:, 2].abs()
    if k == 1:
        return (points - SPHERE_C).norm(dim=-1) - SPHERE_R
    if k == 2:
        q = (points - CUBE_C).abs() - CUBE_S / 2
        return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)
    if k == 3:
        p = points - CYL_C
        d = torch.stack([p[:, :2].norm(dim=-1) - CYL_R, p[:, 2].abs() - CYL_H / 2], -1)
        return d.clamp(min=0).norm(dim=-1) + d.max(dim=-1).values.clamp(max=0)
    raise ValueError(k)


def _frame(n: Tensor) -> Tensor:
    """Rotation matrices [N, 3, 3] whose third column is the unit normal n [N, 3]."""
    a = torch.where(
        n[:, 2:3].abs() < 0.9,
        torch.tensor([0.0, 0.0, 1.0]).expand_as(n),
        torch.tensor([1.0, 0.0, 0.0]).expand_as(n),
    )
    t1 = torch.nn.functional.normalize(torch.linalg.cross(a, n), dim=-1)
    t2 = torch.linalg.cross(n, t1)
    return torch.stack([t1, t2, n], -1)


def rotmat_to_quat(R: Tensor) -> Tensor:
    """(w, x, y, z) quaternions [N, 4] of rotation matrices [N, 3, 3] (Shepperd's method)."""
    m = R
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack(
        [
            torch.stack(
                [1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1
            ),
            torch.stack(
                [
                    m[:, 2, 1] - m[:, 1, 2],
                    1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                    m[:, 0, 1] + m[:, 1, 0],
                    m[:, 0, 2] + m[:, 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[:, 0, 2] - m[:, 2, 0],
                    m[:, 0, 1] + m[:, 1, 0],
                    1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                    m[:, 1, 2] + m[:, 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[:, 1, 0] - m[:, 0, 1],
                    m[:, 0, 2] + m[:, 2, 0],
                    m[:, 1, 2] + m[:, 2, 1],
                    1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2],
                ],
                -1,
            ),
        ],
        1,
    )  # [N, 4 candidates, 4]
    diag = torch.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    best = diag.argmax(-1)
    q = cands[torch.arange(len(m)), best]
    return torch.nn.functional.normalize(q, dim=-1)


def _surface_points(spacing: float) -> tuple[Tensor, Tensor, Tensor]:
    """Points [N, 3], normals [N, 3], instance ids [N] on the visible surfaces."""
    P, Nn, I = [], [], []

    def add(p: Tensor, n: Tensor, k: int) -> None:
        P.append(p)
        Nn.append(torch.nn.functional.normalize(n, dim=-1))
        I.append(torch.full((len(p),), k, dtype=torch.long))

    # plane, minus the footprints under the objects
    g = torch.arange(-1 + spacing / 2, 1, spacing)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = torch.stack([xx.flatten(), yy.flatten(), torch.zeros(xx.numel())], -1)
    hidden = torch.zeros(len(p), dtype=torch.bool)
    for k in (1, 2, 3):
        hidden |= sdf(p + torch.tensor([0, 0, 0.01]), k) < -0.005
    p = p[~hidden]
    add(p, torch.tensor([0.0, 0, 1]).expand_as(p), 0)
    # sphere: Fibonacci lattice, upper part above the plane
    n_s = int(4 * math.pi * SPHERE_R**2 / spacing**2)
    i = torch.arange(n_s, dtype=torch.float32) + 0.5
    phi = torch.acos(1 - 2 * i / n_s)
    th = math.pi * (1 + 5**0.5) * i
    d = torch.stack([torch.cos(th) * torch.sin(phi), torch.sin(th) * torch.sin(phi), torch.cos(phi)], -1)
    p = SPHERE_C + SPHERE_R * d
    keep = p[:, 2] > 0.01
    add(p[keep], d[keep], 1)
    # cube: 5 faces (no bottom)
    h = CUBE_S / 2
    g = torch.arange(-h + spacing / 2, h, spacing)
    u, v = torch.meshgrid(g, g, indexing="ij")
    u, v = u.flatten(), v.flatten()
    one = torch.full_like(u, h)
    for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1)):
        coords = [u, v]
        coords.insert(axis, sign * one)
        p = CUBE_C + torch.stack(coords, -1)
        n = torch.zeros_like(p)
        n[:, axis] = sign
        add(p, n, 2)
    # cylinder: side and top
    n_a = max(8, int(2 * math.pi * CYL_R / spacing))
    n_h = max(2, int(CYL_H / spacing))
    a = torch.arange(n_a) * 2 * math.pi / n_a
    z = (torch.arange(n_h) + 0.5) / n_h * CYL_H - CYL_H / 2
    aa, zz = torch.meshgrid(a, z, indexing="ij")
    d = torch.stack([torch.cos(aa.flatten()), torch.sin(aa.flatten()), torch.zeros(aa.numel())], -1)
    add(CYL_C + CYL_R * d + torch.stack([torch.zeros_like(zz.flatten())] * 2 + [zz.flatten()], -1), d, 3)
    g = torch.arange(-CYL_R + spacing / 2, CYL_R, spacing)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = torch.stack([xx.flatten(), yy.flatten()], -1)
    p = p[p.norm(dim=-1) < CYL_R - spacing / 4]
    p = torch.cat([p, torch.full((len(p), 1), CYL_H / 2)], -1) + CYL_C
    add(p, torch.tensor([0.0, 0, 1]).expand_as(p), 3)
    return torch.cat(P), torch.cat(Nn), torch.cat(I)


def make_gaussians(spacing: float = 0.04) -> tuple[Splats, Tensor]:
    """Ground-truth splats (SH degree 0) and instance ids."""
    pts, nrm, inst = _surface_points(spacing)
    N = len(pts)
    albedo = torch.empty(N, 3)
    checker = ((torch.floor(pts[:, 0] / 0.25) + torch.floor(pts[:, 1] / 0.25)) % 2).bool()
    albedo[:] = torch.where(
        checker[:, None], torch.tensor([0.78, 0.78, 0.78]), torch.tensor([0.42, 0.42, 0.42])
    )
    for k, c in ALBEDO.items():
        albedo[inst == k] = torch.tensor(c)
    shade = 0.35 + 0.65 * (nrm @ LIGHT).clamp(min=0)
    rgb = (albedo * shade[:, None]).clamp(0, 1)
    tang = spacing * 0.6
    splats = {
        "means": pts,
        "scales": torch.log(torch.tensor([tang, tang, 0.006])).expand(N, 3).clone(),
        "quats": rotmat_to_quat(_frame(nrm)),
        "opacities": torch.logit(torch.full((N,), 0.95)),
        "sh0": rgb_to_sh(rgb)[:, None, :],
        "shN": torch.zeros(N, 0, 3),
    }
    return splats, inst


def ring_cameras(
    n: int, radius: float, elevation_deg: float, size: int, focal: float, offset_deg: float = 0.0
) -> list[Camera]:
    """n cameras on a ring around the origin, looking at (0, 0, 0.1)."""
    cams = []
    el = math.radians(elevation_deg)
    for i in range(n):
        az = math.radians(offset_deg + 360.0 * i / n)
        eye = torch.tensor(
            [
                radius * math.cos(el) * math.cos(az),
                radius * math.cos(el) * math.sin(az),
                radius * math.sin(el),
            ]
        )
        cams.append(
            Camera(
                look_at(eye, torch.tensor([0.0, 0.0, 0.1])),
                intrinsics(focal, size, size),
                size,
                size,
                f"view{i:03d}",
            )
        )
    return cams


@torch.no_grad()
def render_views(splats: Splats, inst: Tensor, cams: list[Camera], n_inst: int = 4) -> tuple[Tensor, Tensor]:
    """RGB [V, H, W, 3] and instance maps [V, H, W] (argmax of one-hot renders where alpha > 0.5, else −1)."""
    vm, Ks = stack(cams)
    W, H = cams[0].width, cams[0].height
    sc, op, q, mu = (
        torch.exp(splats["scales"]),
        torch.sigmoid(splats["opacities"]),
        splats["quats"],
        splats["means"],
    )
    rgb, _, _ = rasterize(
        mu,
        q,
        sc,
        op,
        torch.cat([splats["sh0"], splats["shN"]], 1),
        vm,
        Ks,
        W,
        H,
        sh_degree=0,
        backend="torch",
    )
    onehot = torch.nn.functional.one_hot(inst, n_inst).float()
    lab, alpha, _ = rasterize(mu, q, sc, op, onehot, vm, Ks, W, H, backend="torch")
    im = lab[..., :n_inst].argmax(-1)
    im = torch.where(alpha[..., 0] > 0.5, im, torch.full_like(im, -1))
    return rgb[..., :3].clamp(0, 1), im


def make_scene(
    size: int = 64, focal: float = 70.0, n_train: int = 16, n_test: int = 4, spacing: float = 0.04
) -> SyntheticScene:
    """Build the whole synthetic scene (deterministic)."""
    splats, inst = make_gaussians(spacing)
    f = focal * size / 64.0
    train = ring_cameras(n_train, 2.4, 35.0, size, f)
    test = ring_cameras(n_test, 2.4, 25.0, size, f, offset_deg=180.0 / n_train)
    tr_img, tr_inst = render_views(splats, inst, train)
    te_img, te_inst = render_views(splats, inst, test)
    return SyntheticScene(splats, inst, train, test, tr_img, te_img, tr_inst, te_inst)


def membership_3d(means: Tensor, opacities_logit: Tensor, k: int, tol: float = 0.04) -> tuple[Tensor, Tensor]:
    """Ground-truth 3D membership of fitted Gaussians to object k, and the mask of those evaluated.

    Member iff sdf_k(μ) ≤ tol. Ignored: Gaussians within tol of both an object and the plane, and
    those with opacity < 0.1.
    """
    member = sdf(means, k) <= tol
    near_obj = torch.zeros_like(member)
    for j in (1, 2, 3):
        near_obj |= sdf(means, j) <= tol
    ignore = (near_obj & (means[:, 2].abs() <= tol)) | (torch.sigmoid(opacities_logit) < 0.1)
    return member, ~ignore


def auto_click(inst: Tensor, k: int) -> np.ndarray:
    """The mask pixel of instance k nearest to its centroid, as a continuous (x, y) pixel centre."""
    ys, xs = torch.where(inst == k)
    if len(ys) == 0:
        raise VislabError(f"object {k} is not visible in the reference view")
    cy, cx = ys.float().mean(), xs.float().mean()
    i = ((ys - cy) ** 2 + (xs - cx) ** 2).argmin()
    return np.array([[float(xs[i]) + 0.5, float(ys[i]) + 0.5]], np.float32)
