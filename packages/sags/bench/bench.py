"""sags bench: our rasteriser (``sags.render.rasterize``) against gsplat's pure-PyTorch reference path, same
Gaussians, same camera, interleaved in one process.

    python packages/sags/bench/bench.py [--reps 5] [--device cuda] [--json out.json] [--quick]

The peer is gsplat 1.5's documented reference pipeline (``gsplat/cuda/_torch_impl.py``), as ``rasterization``
chains it for ``render_mode="RGB+ED"``, ``packed=False``: the installed library's own pure-torch
``_quat_scale_to_covar_preci``, ``_fully_fused_projection`` and ``_spherical_harmonics`` (colour = max(SH + 0.5, 0),
depth appended as a fourth channel), ``_isect_offset_encode``; and, written here because gsplat has no CPU version:

- ``_isect_tiles``: the same sorted 64-bit keys (camera | tile | float bits of the depth) and flattened ids, built
  with tensor ops instead of gsplat's per-Gaussian Python loop (same output, much faster than the loop);
- ``rasterize_to_indices_in_range`` (a CUDA kernel in gsplat): for every 16x16 tile, every pixel of the tile
  against every Gaussian of the tile's list, in depth order: terms with s < 0 or alpha < 1/255 skipped, a pixel
  stops when its transmittance would reach 1e-4;
- ``accumulate`` (nerfacc's ``render_weight_from_alpha`` + ``accumulate_along_rays``): w = alpha * exclusive
  product of (1 - alpha) per pixel, colours and alphas summed per pixel; then ``_rasterize_to_pixels``' update
  and the background.

Rows: the forward render (no grad) and a training step (render, L = 0.8 L1 + 0.2 (1 - SSIM), backward, Adam on
the raw parameters), random Gaussians with SH degree 3. The bench asserts that both sides render the same image.
On CUDA ours is gsplat's fused kernels (``backend=auto``) under TF32; the peer is the same reference path on the
GPU. ``--quick``: 300 Gaussians at 32x32. Absolute frame / segmentation timings: ``bench/absolute.py``.
"""

from __future__ import annotations

import math

import torch
from vislab.bench import cli, compare, profile_top, profiling, quick

TILE = 16


# ------------------------------------------------------------------------------------------ the gsplat reference path
@torch.no_grad()
def isect_tiles(means2d: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor, tile: int, tw: int, th: int):
    """What gsplat's ``_isect_tiles`` returns (sorted isect ids, flattened ids), vectorised. [C, N, *] inputs."""
    C, N = depths.shape
    dev = means2d.device
    tmin = torch.floor(means2d / tile - radii / tile).int()
    tmax = torch.ceil(means2d / tile + radii / tile).int()
    tmin[..., 0].clamp_(0, tw)
    tmin[..., 1].clamp_(0, th)
    tmax[..., 0].clamp_(0, tw)
    tmax[..., 1].clamp_(0, th)
    nx, ny = tmax[..., 0] - tmin[..., 0], tmax[..., 1] - tmin[..., 1]
    cnt = (nx * ny * (radii > 0).all(-1)).reshape(-1).long()
    flat = torch.repeat_interleave(torch.arange(C * N, device=dev), cnt)
    local = torch.arange(int(cnt.sum()), device=dev) - (torch.cumsum(cnt, 0) - cnt)[flat]
    w = nx.reshape(-1)[flat].long()
    tx = tmin[..., 0].reshape(-1)[flat].long() + local % w
    ty = tmin[..., 1].reshape(-1)[flat].long() + local // w
    tile_id = ty * tw + tx
    cam = flat // N
    tile_bits = (tw * th).bit_length()
    depth_bits = depths.float().contiguous().view(torch.int32).reshape(-1)[flat].long() & 0xFFFFFFFF
    ids = (((cam << tile_bits) | tile_id) << 32) | depth_bits
    ids, order = torch.sort(ids)
    return ids, flat[order].int()


def _segment_excl_log(la: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
    """Per-pixel exclusive cumulative sum of ``la`` over pairs grouped (contiguous) by ``pix`` (a global cumsum
    minus each group's start: pass float64, the running total grows with the number of pixels)."""
    excl = torch.cumsum(la, 0) - la
    first = torch.ones(len(pix), dtype=torch.bool, device=pix.device)
    first[1:] = pix[1:] != pix[:-1]
    seg = torch.cumsum(first, 0) - 1
    return excl - excl[torch.where(first)[0]][seg]


def rasterize_to_pixels_reference(means2d, conics, colors, opacities, W: int, H: int, tile: int, offsets, flatten_ids,
                                  backgrounds=None, batch_per_iter: int = 100):
    """gsplat's ``_rasterize_to_pixels`` with its CUDA index kernel and nerfacc's accumulation in torch."""
    C, N = opacities.shape
    D = colors.shape[-1]
    dev = means2d.device
    th, tw = offsets.shape[-2:]
    n_isects = len(flatten_ids)
    render_c = torch.zeros(C, H, W, D, device=dev)
    render_a = torch.zeros(C, H, W, 1, device=dev)
    bounds = torch.cat([offsets.reshape(-1).long(), torch.tensor([n_isects], device=dev)])
    lens = bounds[1:] - bounds[:-1]
    block = tile * tile
    n_batches = (int(lens.max()) + block - 1) // block if len(lens) else 0
    iy, ix = torch.meshgrid(torch.arange(tile, device=dev), torch.arange(tile, device=dev), indexing="ij")
    in_tile = torch.stack([ix.reshape(-1), iy.reshape(-1)], -1)  # [256, 2] pixel offsets in a tile, row-major
    m2, cn, op, co = means2d.reshape(C * N, 2), conics.reshape(C * N, 3), opacities.reshape(C * N), colors.reshape(C * N, D)
    for step in range(0, n_batches, batch_per_iter):
        trans = 1.0 - render_a[..., 0]  # [C, H, W]
        with torch.no_grad():  # rasterize_to_indices_in_range: which (Gaussian, pixel) pairs contribute
            tiles = torch.arange(C * th * tw, device=dev)
            lo = (bounds[:-1] + step * block).clamp(max=bounds[1:])
            hi = (bounds[:-1] + (step + batch_per_iter) * block).clamp(max=bounds[1:])
            n = hi - lo
            t_of = torch.repeat_interleave(tiles, n)
            e = torch.arange(int(n.sum()), device=dev) - (torch.cumsum(n, 0) - n)[t_of] + lo[t_of]  # entry index
            g = flatten_ids[e].long()  # flattened (camera, Gaussian), depth order inside a tile
            cam = t_of // (th * tw)
            tl = t_of % (th * tw)
            px = (tl % tw)[:, None] * tile + in_tile[None, :, 0]  # [E, 256]
            py = (tl // tw)[:, None] * tile + in_tile[None, :, 1]
            inside = (px < W) & (py < H)
            d = torch.stack([px + 0.5, py + 0.5], -1) - m2[g][:, None]
            c = cn[g][:, None]
            s = 0.5 * (c[..., 0] * d[..., 0] ** 2 + c[..., 2] * d[..., 1] ** 2) + c[..., 1] * d[..., 0] * d[..., 1]
            alpha = torch.clamp_max(op[g][:, None] * torch.exp(-s), 0.999)
            ok = inside & (s >= 0) & (alpha >= 1.0 / 255.0)
            ei, pi = torch.where(ok)
            pix = cam[ei] * H * W + py[ei, pi] * W + px[ei, pi]
            pix, perm = torch.sort(pix, stable=True)  # grouped by pixel, depth order inside
            ei, gi = ei[perm], g[ei[perm]]
            la = torch.log1p(-alpha[ei, pi[perm]].double())
            log_t = torch.log(trans.reshape(-1).double().clamp(min=1e-30))[pix] + _segment_excl_log(la, pix) + la
            keep = log_t > math.log(1e-4)  # next_T > 1e-4, and every earlier term too (T only falls)
            gs_ids, pixel_ids = gi[keep], pix[keep]
        if len(gs_ids) == 0:
            break
        # accumulate: alphas again, with autograd, then w = alpha * exclusive prod (1 - alpha) per pixel
        p_local = pixel_ids % (H * W)
        dd = torch.stack([(p_local % W).to(m2.dtype) + 0.5, (p_local // W).to(m2.dtype) + 0.5], -1) - m2[gs_ids]
        c = cn[gs_ids]
        sig = 0.5 * (c[:, 0] * dd[:, 0] ** 2 + c[:, 2] * dd[:, 1] ** 2) + c[:, 1] * dd[:, 0] * dd[:, 1]
        a = torch.clamp_max(op[gs_ids] * torch.exp(-sig), 0.999)
        # nerfacc's exclusive product runs per pixel; a global float32 cumsum would lose it to cancellation
        w = a * torch.exp(_segment_excl_log(torch.log1p(-a.double()), pixel_ids)).to(a.dtype)
        rc = torch.zeros(C * H * W, D, device=dev).index_add(0, pixel_ids, w[:, None] * co[gs_ids])
        ra = torch.zeros(C * H * W, device=dev).index_add(0, pixel_ids, w)
        render_c = render_c + rc.reshape(C, H, W, D) * trans[..., None]
        render_a = render_a + ra.reshape(C, H, W, 1) * trans[..., None]
    if backgrounds is not None:
        render_c = render_c + backgrounds[:, None, None, :] * (1.0 - render_a)
    return render_c, render_a


def gsplat_reference(means, quats, scales, opacities, sh, viewmats, Ks, W: int, H: int, sh_degree: int):
    """``gsplat.rasterization(..., render_mode="RGB+ED", packed=False)`` through the pure-torch reference path."""
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _isect_offset_encode,
        _quat_scale_to_covar_preci,
        _spherical_harmonics,
    )

    C, N = viewmats.shape[0], means.shape[0]
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False, triu=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmats, Ks, W, H)
    opac = opacities[None].expand(C, N)
    campos = torch.inverse(viewmats)[:, :3, 3]
    dirs = means[None] - campos[:, None]
    colors = _spherical_harmonics(sh_degree, dirs, sh[None].expand(C, -1, -1, -1))
    colors = torch.clamp_min(colors + 0.5, 0.0)
    colors = torch.cat([colors, depths[..., None]], -1)  # RGB+ED
    tw, th = math.ceil(W / TILE), math.ceil(H / TILE)
    isect_ids, flatten_ids = isect_tiles(means2d, radii, depths, TILE, tw, th)
    offsets = _isect_offset_encode(isect_ids, C, tw, th)
    rc, ra = rasterize_to_pixels_reference(means2d, conics, colors, opac, W, H, TILE, offsets, flatten_ids)
    rc = torch.cat([rc[..., :3], rc[..., 3:] / ra.clamp(min=1e-10)], -1)
    return rc, ra


# ------------------------------------------------------------------------------------------ rows
def _scene(n: int, size: int, dev: torch.device):
    from sags.cameras import Camera, intrinsics, look_at
    from sags.gaussians import random_splats

    raw = {k: v.to(dev) for k, v in random_splats(n, 3, generator=torch.Generator().manual_seed(0)).items()}
    cam = Camera(look_at(torch.tensor([2.0, 1.0, 1.6]), torch.zeros(3)), intrinsics(size * 1.1, size, size), size, size)
    target = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1)).to(dev)
    return raw, cam.viewmat[None].to(dev), cam.K[None].to(dev), target


def _render(side: str, a: dict, vm, K, size: int):
    from sags.render import rasterize

    if side == "ours":
        out, alpha, _ = rasterize(a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], vm, K, size, size,
                                  sh_degree=3)
        return out, alpha
    return gsplat_reference(a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], vm, K, size, size, 3)


def render_row(dev: torch.device, reps: int, n: int, size: int) -> dict:
    from sags.gaussians import activated

    raw, vm, K, _ = _scene(n, size, dev)
    a = activated(raw)

    def make(side: str):
        def build():
            def step():
                with torch.no_grad():
                    return _render(side, a, vm, K, size)
            return step
        return build

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the equality check in full fp32 (the timed runs keep TF32)
    (oc, oa), (pc, pa) = make("ours")()(), make("peer")()()
    torch.backends.cuda.matmul.allow_tf32 = tf32
    diff = torch.cat([(oc[..., :3] - pc[..., :3]).abs(), (oa - pa).abs()], -1).amax(-1)
    err, off = diff.max().item(), (diff > 1e-4).float().mean().item()
    # a term whose alpha sits at the 1/255 cut (or a pixel at the 1e-4 stop) can fall on either side by one ulp
    # of float rounding: at most one such term per pixel, in a few pixels; everything else agrees to float precision
    assert pa.max() > 0.5, "degenerate scene (nothing rendered)"
    assert err <= 2 / 255 and off <= (0.02 if dev.type == "cuda" else 0.005), \
        f"renders disagree: max |ours - reference| = {err:.3g}, {100 * off:.2f} % of pixels off by > 1e-4"
    row = compare(f"render, {n} Gaussians, SH 3, {size}x{size} (no grad)", "gsplat 1.5 pure-torch reference path "
                  "(_torch_impl projection, SH, tile intersection, rasterize_to_pixels)", make("ours"), make("peer"),
                  reps=reps, dev=dev, package="sags", target=1.0, note=f"renders agree: {100 * off:.2f} % of pixels differ by > 1e-4 (alpha at the 1/255 cut), max {err:.1e}")
    if profiling():
        row["profile_top5_ours"] = profile_top(make("ours")(), 5, dev)
        row["profile_top5_peer"] = profile_top(make("peer")(), 5, dev)
    return row


def train_row(dev: torch.device, reps: int, n: int, size: int) -> dict:
    from sags.gaussians import activated
    from sags.losses import photometric_loss

    raw0, vm, K, target = _scene(n, size, dev)

    def make(side: str):
        def build():
            params = {k: torch.nn.Parameter(v.clone()) for k, v in raw0.items()}
            opt = torch.optim.Adam(params.values(), lr=1e-3, eps=1e-15)

            def step():
                out, _ = _render(side, activated(params), vm, K, size)
                loss, _ = photometric_loss(out[..., :3], target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss.detach()
            return step
        return build

    row = compare(f"training step, {n} Gaussians, SH 3, {size}x{size} (render, L1 + SSIM, backward, Adam)",
                  "the same step on gsplat 1.5's pure-torch reference path", make("ours"), make("peer"), reps=reps,
                  dev=dev, package="sags", target=1.0)
    if profiling():
        row["profile_top5_ours"] = profile_top(make("ours")(), 5, dev)
        row["profile_top5_peer"] = profile_top(make("peer")(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    if quick():
        return [render_row(dev, reps, 300, 32), train_row(dev, reps, 300, 32)]
    if dev.type == "cuda":
        return [render_row(dev, reps, 50_000, 256), train_row(dev, reps, 50_000, 256)]
    return [render_row(dev, reps, 5000, 128), train_row(dev, reps, 2000, 64)]


if __name__ == "__main__":
    cli("sags", rows)
