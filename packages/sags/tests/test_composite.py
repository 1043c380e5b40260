"""The chunked segmented-scan compositor against the previous dense one (kept here as the oracle).

The oracle pads every pixel to the busiest pixel's depth and takes one cumprod; the new compositor
must give the same images (max difference < 1e-5) and gradients on the test scenes, whatever the
chunk size.
"""

import pytest
import torch
from sags.render import composite, covariance3d, project
from torch import Tensor


def _pairs_dense(
    means2d: Tensor, radii: Tensor, order: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """(gaussian id, pixel id) pairs of every pixel centre inside each Gaussian's box, in ``order``.

    The box is |x + 0.5 − u| ≤ rx, |y + 0.5 − v| ≤ ry, clipped to the image.
    """
    mu = means2d.detach()[order]
    r = radii[order].to(mu.dtype)
    x0 = torch.ceil(mu[:, 0] - r[:, 0] - 0.5).clamp(0, width).long()
    x1 = torch.floor(mu[:, 0] + r[:, 0] - 0.5).clamp(-1, width - 1).long()
    y0 = torch.ceil(mu[:, 1] - r[:, 1] - 0.5).clamp(0, height).long()
    y1 = torch.floor(mu[:, 1] + r[:, 1] - 0.5).clamp(-1, height - 1).long()
    wx = (x1 - x0 + 1).clamp(min=0)
    wy = (y1 - y0 + 1).clamp(min=0)
    cnt = wx * wy
    total = int(cnt.sum())
    if total == 0:
        e = torch.zeros(0, dtype=torch.long, device=mu.device)
        return e, e
    rep = torch.repeat_interleave(torch.arange(len(order), device=mu.device), cnt)
    start = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(total, device=mu.device) - start[rep]
    px = x0[rep] + local % wx[rep]
    py = y0[rep] + local // wx[rep]
    return order[rep], py * width + px


def composite_dense(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    depths: Tensor,  # [N]
    radii: Tensor,  # [N, 2]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D]
) -> tuple[Tensor, Tensor, Tensor]:
    """The previous compositor, kept as the oracle: every pixel padded to the busiest pixel's
    depth ([P, kmax]), int64 pair ids, one dense cumprod."""
    P, D = height * width, colors.shape[-1]
    dev, dt = means2d.device, means2d.dtype
    vis = torch.where((radii > 0).all(-1))[0]
    order = vis[torch.argsort(depths.detach()[vis], stable=True)]
    gid, pid = _pairs_dense(means2d, radii, order, width, height)
    out_c = torch.zeros(P, D, device=dev, dtype=dt)
    out_a = torch.zeros(P, device=dev, dtype=dt)
    out_d = torch.zeros(P, device=dev, dtype=dt)
    if len(gid):
        pid_sorted, perm = torch.sort(pid, stable=True)  # grouped by pixel, depth order inside a group
        gid = gid[perm]
        pid = pid_sorted
        counts = torch.bincount(pid, minlength=P)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(pid), device=dev) - first[pid]
        kmax = int(counts.max())
        px = (pid % width).to(dt) + 0.5
        py = torch.div(pid, width, rounding_mode="floor").to(dt) + 0.5
        d = torch.stack([px, py], -1) - means2d[gid]
        c = conics[gid]
        s = 0.5 * (c[:, 0] * d[:, 0] ** 2 + c[:, 2] * d[:, 1] ** 2) + c[:, 1] * d[:, 0] * d[:, 1]
        alpha = torch.clamp_max(opacities[gid] * torch.exp(-s), 0.999)
        ok = (s >= 0) & (alpha >= 1.0 / 255.0)
        alpha = alpha * ok
        dense = torch.zeros(P, kmax, device=dev, dtype=dt).index_put((pid, rank), alpha)
        with torch.no_grad():
            keep = torch.cumprod(1 - dense, 1) > 1e-4
        dense = dense * keep
        trans = torch.cumprod(1 - dense, 1)
        t_excl = torch.cat([torch.ones(P, 1, device=dev, dtype=dt), trans[:, :-1]], 1)
        w = (dense * t_excl)[pid, rank]
        out_c = out_c.index_add(0, pid, w[:, None] * colors[gid])
        out_a = out_a.index_add(0, pid, w)
        out_d = out_d.index_add(0, pid, w * depths[gid])
    if background is not None:
        out_c = out_c + (1 - out_a)[:, None] * background
    ed = out_d / out_a.clamp(min=1e-10)
    return out_c.reshape(height, width, D), out_a.reshape(height, width, 1), ed.reshape(height, width, 1)


def _check(p, opa, cols, W, H, bg, max_pairs):
    ref = composite_dense(p["means2d"], p["conics"], opa, cols, p["depths"], p["radii"], W, H, bg)
    new = composite(
        p["means2d"], p["conics"], opa, cols, p["depths"], p["radii"], W, H, bg, max_pairs=max_pairs
    )
    for r, n in zip(ref, new):
        assert (r - n).abs().max() < 1e-5


@pytest.mark.parametrize("max_pairs", [1 << 22, 700, 1])
@pytest.mark.parametrize("seed", [0, 3, 7])
def test_random_scenes_match_the_dense_oracle(seed, max_pairs):
    g = torch.Generator().manual_seed(seed)
    n = 300
    means = torch.randn(n, 3, generator=g) * 0.6
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.15 + 0.01
    opa = torch.rand(n, generator=g) * 0.5 + 0.5  # dense: the 1e-4 stop is reached in many pixels
    cols = torch.rand(n, 3, generator=g)
    vm = torch.eye(4)
    vm[2, 3] = 3.0
    K = torch.tensor([[40.0, 0, 17], [0, 38.0, 15], [0, 0, 1]])
    p = project(means, covariance3d(quats, scales), vm, K, 34, 30)
    _check(p, opa, cols, 34, 30, torch.tensor([0.2, 0.3, 0.4]), max_pairs)


def test_synthetic_scene_views_match_the_dense_oracle(scene):
    from sags.gaussians import activated

    a = activated(scene.splats)
    cov = covariance3d(a["quats"], a["scales"])
    col = a["colors"][:, 0] * 0.28209479177387814 + 0.5
    for c in scene.train_cams[:4] + scene.test_cams[:2]:
        p = project(a["means"], cov, c.viewmat, c.K, c.width, c.height)
        _check(p, a["opacities"], col, c.width, c.height, None, 4096)


def test_gradients_match_the_dense_oracle():
    g = torch.Generator().manual_seed(1)
    n = 80
    leaves = {
        "means": torch.randn(n, 3, generator=g) * 0.5,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.12 + 0.02,
        "opa": torch.rand(n, generator=g) * 0.6 + 0.4,
        "cols": torch.rand(n, 3, generator=g),
    }
    vm = torch.eye(4)
    vm[2, 3] = 3.0
    K = torch.tensor([[30.0, 0, 12], [0, 30.0, 11], [0, 0, 1]])
    w = torch.rand(22, 24, 5, generator=g)
    grads = []
    for fn in (composite_dense, lambda *a: composite(*a, max_pairs=300)):
        x = {k: v.clone().requires_grad_(True) for k, v in leaves.items()}
        p = project(x["means"], covariance3d(x["quats"], x["scales"]), vm, K, 24, 22)
        c, al, d = fn(p["means2d"], p["conics"], x["opa"], x["cols"], p["depths"], p["radii"], 24, 22, None)
        (torch.cat([c, al, d], -1) * w).sum().backward()
        grads.append({k: v.grad for k, v in x.items()})
    for k in leaves:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-5), k


def test_int32_pairs_and_no_padding():
    """2000 Gaussians stacked on one pixel of a 256×256 image: the result is the closed form, and the
    dense oracle's [65536, 2000] padding is not needed."""
    n = 2000
    means2d = torch.full((n, 2), 100.5)
    conics = torch.tensor([[4.0, 0.0, 4.0]]).expand(n, 3)
    radii = torch.ones(n, 2, dtype=torch.int32)
    opa = torch.full((n,), 0.004)  # T = 0.996^2000 = 3.3e-4 stays above the 1e-4 stop
    out, alpha, _ = composite(
        means2d, conics, opa, torch.ones(n, 1), torch.arange(n).float() + 1, radii, 256, 256
    )
    assert abs(float(alpha[100, 100, 0]) - (1 - (1 - 0.004) ** n)) < 1e-4
    assert float(alpha.sum() - alpha[99:102, 99:102].sum()) == 0.0
