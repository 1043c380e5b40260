"""Gaussian splatting renderer: gsplat's CUDA kernels on GPU, our own pure-PyTorch rasteriser on CPU.

The CPU path computes what gsplat 1.5.x computes in its classic forward pass:

1. Σ = R S Sᵀ Rᵀ from the normalised (w, x, y, z) quaternion and the (activated) scales.
2. Camera-space mean t = W μ + w; the projection Jacobian J uses tx/tz, ty/tz clamped to the
   frustum widened by 0.15·W/fx (0.15·H/fy); the projected mean uses the unclamped values.
3. Σ₂ = J Σc Jᵀ + eps2d·I (eps2d = 0.3).
4. Cull when det(Σ₂) ≤ 0, z ∉ (near, far), or the box of half-size ⌈3.33 √Σ₂ᵢᵢ⌉ misses the image.
5. Colour = max(SH(μ − campos) + 0.5, 0) when SH coefficients are given, else the raw features.
6. Gaussians are sorted by depth (globally per camera: equivalent to gsplat's per-tile sort).
7. At the pixel centres (x + 0.5, y + 0.5): s = ½(a dx² + c dy²) + b dx dy with the conic (a, b, c),
   α = min(0.999, o e^(−s)); a term is skipped when s < 0 or α < 1/255.
8. A term is kept iff the inclusive product of (1 − α) stays > 1e-4 (gsplat stops there).
9. C = Σ c α T + T_final · bg, alpha = 1 − T_final, expected depth ED = Σ w z / Σ w.

Pixels are enumerated per Gaussian inside its 3.33σ box (outside it α < 1/255 by construction),
so the work is O(Σ box areas), not O(N·H·W).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices of (w, x, y, z) quaternions (normalised here). quats [..., 4] -> [..., 3, 3]."""
    q = F.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def covariance3d(quats: Tensor, scales: Tensor) -> Tensor:
    """Σ = R S Sᵀ Rᵀ. quats [N, 4] (w,x,y,z), scales [N, 3] (activated) -> [N, 3, 3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Real spherical-harmonic bases up to ``degree`` (≤ 3) at unit ``dirs`` [..., 3] -> [..., (degree+1)²]."""
    if degree > 3:
        raise ValueError("sh degree > 3 is not supported")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, -1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Σ_k B_k(d̂) c_k with bases of ``degree`` (higher coefficients ignored).

    dirs [..., 3] (any length), coeffs [..., K, 3] with K ≥ (degree+1)² -> [..., 3].
    """
    n = (degree + 1) ** 2
    b = sh_bases(degree, F.normalize(dirs, dim=-1))
    return (b[..., None] * coeffs[..., :n, :]).sum(-2)


def project(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
    viewmat: Tensor,  # [4, 4] world-to-camera (OpenCV)
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e10,
) -> dict[str, Tensor]:
    """EWA projection of one camera (steps 2–4 above).

    Returns means2d [N, 2], cov2d [N, 2, 2] (with blur), det0 (without blur) [N], conics [N, 3]
    (a, b, c of the inverse), depths [N], radii [N, 2] (int, 0 = culled), means_c [N, 3].
    """
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    mc = means @ R.T + t
    cc = R @ covars @ R.T
    tx, ty, tz = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lxp, lxn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lyp, lyn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    txc = tz * torch.clamp(tx / tz, min=-lxn, max=lxp)
    tyc = tz * torch.clamp(ty / tz, min=-lyn, max=lyp)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], -1).reshape(
        -1, 2, 3
    )
    cov2d = J @ cc @ J.transpose(-1, -2)
    det0 = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    detc = det.clamp(min=1e-10)
    conics = torch.stack(
        [cov2d[:, 1, 1] / detc, -(cov2d[:, 0, 1] + cov2d[:, 1, 0]) / 2 / detc, cov2d[:, 0, 0] / detc], -1
    )
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)
    with torch.no_grad():
        radii = torch.stack(
            [
                torch.ceil(3.33 * cov2d[:, 0, 0].clamp(min=0).sqrt()),
                torch.ceil(3.33 * cov2d[:, 1, 1].clamp(min=0).sqrt()),
            ],
            -1,
        )
        valid = (det > 0) & (tz > near) & (tz < far)
        inside = (
            (means2d[:, 0] + radii[:, 0] > 0)
            & (means2d[:, 0] - radii[:, 0] < width)
            & (means2d[:, 1] + radii[:, 1] > 0)
            & (means2d[:, 1] - radii[:, 1] < height)
        )
        radii = torch.where((valid & inside)[:, None], radii, torch.zeros_like(radii)).int()
    return {
        "means2d": means2d,
        "cov2d": cov2d,
        "det0": det0,
        "det": det,
        "conics": conics,
        "depths": tz,
        "radii": radii,
        "means_c": mc,
    }


_LOG_T_MIN = math.log(1e-4)  # gsplat stops a pixel once its transmittance would drop to 1e-4


def _boxes(means2d: Tensor, radii: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inclusive pixel ranges x0..x1, y0..y1 (int32) of the pixel centres inside each 3.33σ box.

    A centre (x + 0.5, y + 0.5) is inside when |x + 0.5 − u| ≤ rx and |y + 0.5 − v| ≤ ry; ranges are
    clipped to the image (empty when x1 < x0).
    """
    mu, r = means2d.detach(), radii.to(means2d.dtype)
    x0 = torch.ceil(mu[:, 0] - r[:, 0] - 0.5).clamp(0, width)
    x1 = torch.floor(mu[:, 0] + r[:, 0] - 0.5).clamp(-1, width - 1)
    y0 = torch.ceil(mu[:, 1] - r[:, 1] - 0.5).clamp(0, height)
    y1 = torch.floor(mu[:, 1] + r[:, 1] - 0.5).clamp(-1, height - 1)
    return x0.int(), x1.int(), y0.int(), y1.int()


def _box_pixels(x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """(box index, pixel id) pairs (int32) of every pixel of every box, box after box, row-major inside."""
    wx = (x1 - x0 + 1).clamp(min=0)
    cnt = (wx * (y1 - y0 + 1).clamp(min=0)).long()
    total = int(cnt.sum())
    dev = x0.device
    if total == 0:
        e = torch.zeros(0, dtype=torch.int32, device=dev)
        return e, e
    rep = torch.repeat_interleave(torch.arange(len(x0), dtype=torch.int32, device=dev), cnt)
    start = (torch.cumsum(cnt, 0) - cnt).int()
    local = torch.arange(total, dtype=torch.int32, device=dev) - start[rep]
    w = wx[rep]
    pid = (y0[rep] + local // w) * width + x0[rep] + local % w
    return rep, pid


def _alive_in_boxes(
    done: Tensor, x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor, width: int, height: int
) -> Tensor:
    """Whether each box holds a pixel that is not saturated yet (a 2-D prefix sum of ``~done``)."""
    alive = (~done).view(height, width).int()
    S = torch.zeros(height + 1, width + 1, dtype=torch.int32, device=done.device)
    S[1:, 1:] = alive.cumsum(0).cumsum(1)
    xa, xb = x0.long(), (x1 + 1).long().clamp(min=0)
    ya, yb = y0.long(), (y1 + 1).long().clamp(min=0)
    n = S[yb, xb] - S[ya, xb] - S[yb, xa] + S[ya, xa]
    return (n > 0) & (x1 >= x0) & (y1 >= y0)


def composite(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    depths: Tensor,  # [N]
    radii: Tensor,  # [N, 2]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D]
    max_pairs: int = 1 << 22,
) -> tuple[Tensor, Tensor, Tensor]:
    """Front-to-back alpha compositing at pixel centres (gsplat's classic forward pass, steps 6–9).

    Gaussians are depth-sorted and taken in chunks whose boxes hold at most ``max_pairs``
    Gaussian–pixel pairs (int32 ids), so memory is bounded whatever the scene. In a chunk, the pairs
    are grouped by pixel (a stable sort keeps depth order) and the transmittance is a segmented scan:
    log T = log T_before + the exclusive per-pixel cumulative sum of log(1 − α) (float64). A term is
    kept iff the inclusive transmittance stays > 1e-4; a pixel that reaches the stop is done, and
    later chunks skip every Gaussian whose box holds no pixel that is still open. The work is the
    number of pairs that can still contribute, not the padded [pixels, max depth] grid.

    Returns colour [H, W, D] (with background), alpha [H, W, 1] and expected depth [H, W, 1].
    """
    P, D = height * width, colors.shape[-1]
    dev, dt = means2d.device, means2d.dtype
    vis = torch.where((radii > 0).all(-1))[0]
    order = vis[torch.argsort(depths.detach()[vis], stable=True)]
    x0, x1, y0, y1 = _boxes(means2d[order], radii[order], width, height)
    area = ((x1 - x0 + 1).clamp(min=0) * (y1 - y0 + 1).clamp(min=0)).long()
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means2d, conics, opacities, colors, depths)
    )
    out_c = torch.zeros(P, D, device=dev, dtype=dt)
    out_a = torch.zeros(P, device=dev, dtype=dt)
    out_d = torch.zeros(P, device=dev, dtype=dt)
    log_t = torch.zeros(P, device=dev, dtype=torch.float64)  # log transmittance of the kept terms
    done = torch.zeros(P, dtype=torch.bool, device=dev)
    chunk = (torch.cumsum(area, 0) - area) // max_pairs  # pairs before a Gaussian's box, in chunks
    sizes = torch.unique_consecutive(chunk, return_counts=True)[1].tolist() if len(order) else []
    ends = torch.cumsum(torch.tensor(sizes, dtype=torch.long), 0).tolist()
    for a, b in zip([0] + ends[:-1], ends):
        if bool(done.all()):
            break
        sl = slice(a, b)
        live = _alive_in_boxes(done, x0[sl], x1[sl], y0[sl], y1[sl], width, height)
        idx = torch.where(live)[0]
        if len(idx) == 0:
            continue
        k, pid = _box_pixels(x0[sl][idx], x1[sl][idx], y0[sl][idx], y1[sl][idx], width)
        gid = order[a + idx][k]
        open_ = ~done[pid]
        gid, pid = gid[open_], pid[open_]
        px = (pid % width).to(dt) + 0.5
        py = (pid // width).to(dt) + 0.5
        mu, cn = means2d[gid], conics[gid]
        dx, dy = px - mu[:, 0], py - mu[:, 1]
        s = 0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) + cn[:, 1] * dx * dy
        alpha = torch.clamp_max(opacities[gid] * torch.exp(-s), 0.999)
        with torch.no_grad():
            ok = torch.where((s >= 0) & (alpha >= 1.0 / 255.0))[0]  # skipped terms leave T unchanged
        if len(ok) == 0:
            continue
        pid, perm = torch.sort(pid[ok], stable=True)  # grouped by pixel, depth order inside a group
        sel = ok[perm]
        gid, alpha = gid[sel], alpha[sel]
        la = torch.log1p(-alpha.double())
        excl = torch.cumsum(la, 0) - la
        with torch.no_grad():
            first = torch.ones(len(pid), dtype=torch.bool, device=dev)
            first[1:] = pid[1:] != pid[:-1]
            seg = torch.cumsum(first, 0) - 1
            head = torch.where(first)[0]
        log_excl = log_t[pid] + excl - excl[head][seg]
        with torch.no_grad():
            keep = (log_excl + la) > _LOG_T_MIN
            done[pid[~keep]] = True
        w = alpha * torch.exp(log_excl).to(dt) * keep
        lak = la * keep
        if grad:
            out_c = out_c.index_add(0, pid, w[:, None] * colors[gid])
            out_a = out_a.index_add(0, pid, w)
            out_d = out_d.index_add(0, pid, w * depths[gid])
            log_t = log_t.index_add(0, pid, lak)
        else:
            out_c.index_add_(0, pid, w[:, None] * colors[gid])
            out_a.index_add_(0, pid, w)
            out_d.index_add_(0, pid, w * depths[gid])
            log_t.index_add_(0, pid, lak)
    if background is not None:
        out_c = out_c + (1 - out_a)[:, None] * background
    ed = out_d / out_a.clamp(min=1e-10)
    return out_c.reshape(height, width, D), out_a.reshape(height, width, 1), ed.reshape(height, width, 1)


def rasterize_torch(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    colors: Tensor,  # [N, K, 3] SH coefficients, or [N, D] features
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Pure-PyTorch counterpart of ``gsplat.rasterization`` (render_mode ``RGB+ED``).

    Returns render [C, H, W, D+1] (features then expected depth), alpha [C, H, W, 1] and ``info``
    with means2d [C, N, 2] (retain_grad works), radii [C, N, 2], depths [C, N], width, height,
    n_cameras and gaussian_ids=None, as gsplat's DefaultStrategy expects.
    """
    covars = covariance3d(quats, scales)
    C = viewmats.shape[0]
    projs = [
        project(means, covars, viewmats[i], Ks[i], width, height, eps2d, near_plane, far_plane)
        for i in range(C)
    ]
    means2d = torch.stack([p["means2d"] for p in projs])  # [C, N, 2]
    renders, alphas = [], []
    for i, p in enumerate(projs):
        if sh_degree is not None:
            campos = -viewmats[i, :3, :3].T @ viewmats[i, :3, 3]
            col = torch.clamp_min(eval_sh(sh_degree, means - campos, colors) + 0.5, 0.0)
        else:
            col = colors
        opa = opacities
        if rasterize_mode == "antialiased":
            opa = opacities * torch.sqrt(torch.clamp(p["det0"] / p["det"].clamp(min=1e-10), min=0.0))
        bg = None if backgrounds is None else backgrounds[i]
        c, a, d = composite(means2d[i], p["conics"], opa, col, p["depths"], p["radii"], width, height, bg)
        renders.append(torch.cat([c, d], -1))
        alphas.append(a)
    info = {
        "means2d": means2d,
        "radii": torch.stack([p["radii"] for p in projs]),
        "depths": torch.stack([p["depths"] for p in projs]),
        "conics": torch.stack([p["conics"] for p in projs]),
        "width": width,
        "height": height,
        "n_cameras": C,
        "gaussian_ids": None,
    }
    return torch.stack(renders), torch.stack(alphas), info


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
    backend: str = "auto",
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render [C, H, W, D+1] (features + expected depth), alpha [C, H, W, 1], info.

    ``backend``: ``gsplat`` (CUDA kernels), ``torch`` (our CPU rasteriser) or ``auto``
    (gsplat when the tensors are on a CUDA device).
    """
    use_gsplat = backend == "gsplat" or (backend == "auto" and means.is_cuda)
    if use_gsplat:
        from gsplat import rasterization

        return rasterization(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmats,
            Ks,
            width,
            height,
            near_plane=near_plane,
            far_plane=far_plane,
            eps2d=eps2d,
            sh_degree=sh_degree,
            backgrounds=backgrounds,
            render_mode="RGB+ED",
            rasterize_mode=rasterize_mode,
            packed=False,
        )
    return rasterize_torch(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        sh_degree,
        backgrounds,
        near_plane,
        far_plane,
        eps2d,
        rasterize_mode,
    )


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR = −10 log10(MSE) for images in [0, 1]."""
    return -10 * torch.log10(((a - b) ** 2).mean().clamp(min=1e-12))


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> Tensor:
    """Normalised 2-D Gaussian window [size, size]."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, window: int = 11, reduce: bool = True) -> Tensor:
    """Mean SSIM of images [B, C, H, W] with an 11×11 Gaussian window (σ 1.5), 'same' padding,
    C1 = 0.01², C2 = 0.03² (the 3DGS definition, zero padding); ``reduce=False`` gives the map."""
    ch = a.shape[1]
    w = gaussian_window(window, 1.5, a.device, a.dtype).expand(ch, 1, window, window)
    pad = window // 2

    def f(x: Tensor) -> Tensor:
        return F.conv2d(x, w, padding=pad, groups=ch)

    mu_a, mu_b = f(a), f(b)
    saa = f(a * a) - mu_a**2
    sbb = f(b * b) - mu_b**2
    sab = f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return m.mean() if reduce else m


__all__ = [
    "C0",
    "quat_to_rotmat",
    "covariance3d",
    "sh_bases",
    "eval_sh",
    "project",
    "composite",
    "rasterize_torch",
    "rasterize",
    "psnr",
    "ssim",
    "gaussian_window",
]
