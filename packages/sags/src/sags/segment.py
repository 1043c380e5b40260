"""SA-GS: training-free segmentation of 3D Gaussians from clicks in one view (Hu et al., arXiv:2401.17857).

render all views → lift the clicks to 3D (:func:`lift_clicks`) → re-project them into every view
(:func:`project_prompts`, with an occlusion test) → per-view masks from a :class:`MaskProvider`
→ per-view labels of the Gaussian centres (:func:`assign_labels`) → cross-view vote
(:func:`vote`) → Gaussian Decomposition of boundary Gaussians (:func:`gaussian_decomposition`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from vislab.errors import VislabError

from sags.cameras import Camera
from sags.gaussians import Splats, activated, sh_degree_of
from sags.providers import MaskProvider
from sags.render import covariance3d, quat_to_rotmat, rasterize


@dataclass
class SegmentConfig:
    """Switches of the method; [C] official code, [R] our choice (see README)."""

    lift: str = "depth"  # depth [R] | nearest [C]
    min_click_alpha: float = 0.5
    nearest_window: int = 8
    nearest_min_opacity: float = 0.1
    near: float = 0.01
    occlusion_rel: float = 0.05  # z > D(1 + rel) + abs·scene_scale is occluded
    occlusion_abs: float = 0.01
    occlusion_test: bool = False  # [R] also apply the depth test in label assignment
    tau: float = 0.7  # voting threshold [C]
    vote_denominator: str = "official"  # official [C] | all | valid [R]
    gd: bool = True
    gd_mode: str = "split"  # split [R] | official [C]
    gd_stage: str = "after_vote"  # after_vote [R] | per_view
    gd_views: int = 5
    gd_extent: float = 1.5  # endpoints at ± 1.5 √λ
    gd_min_ratio: float = 0.05
    eval_mode: str = "label"  # label: rasterise colour = label, > 0.5 | alpha: object-subset alpha > 0.5


@dataclass
class Segmentation:
    """Result of :func:`segment_gaussians`."""

    labels: Tensor  # [N'] int8 after GD (1 object, 0 not)
    labels_no_gd: Tensor  # [N] int8 after voting
    splats: Splats  # the scene after GD (N' ≥ N rows; rows 0..N−1 are the input's, children appended)
    view_labels: Tensor  # [V, N] int8 in {−1, 0, 1}
    masks: list[np.ndarray | None]  # per view bool [H, W] or None (abstained)
    renders: Tensor | None  # [V, H, W, 3] uint8, None when not kept
    prompts3d: Tensor  # [P, 3]
    prompt_labels: np.ndarray  # [P]
    info: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def render_view(
    a: dict[str, Tensor],
    deg: int,
    cam: Camera,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """RGB [H,W,3], alpha [H,W], expected depth [H,W] (CPU) of one view of activated splats ``a``."""
    out, alpha, _ = rasterize(
        a["means"],
        a["quats"],
        a["scales"],
        a["opacities"],
        a["colors"],
        cam.viewmat[None].to(a["means"]),
        cam.K[None].to(a["means"]),
        cam.width,
        cam.height,
        sh_degree=deg,
        backgrounds=torch.tensor([background], dtype=torch.float32, device=a["means"].device),
        backend=backend,
    )
    return out[0, ..., :3].clamp(0, 1).cpu(), alpha[0, ..., 0].cpu(), out[0, ..., 3].cpu()


@torch.no_grad()
def render_all(
    splats: Splats,
    cams: list[Camera],
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """RGB [V,H,W,3], alpha [V,H,W], expected depth [V,H,W] of every view (small scenes; see
    :func:`render_view` to stream)."""
    a, deg = activated(splats), sh_degree_of(splats)
    views = [render_view(a, deg, c, background, backend) for c in cams]
    return tuple(torch.stack([v[i] for v in views]) for i in range(3))  # type: ignore[return-value]


def lift_clicks(
    points_xy: np.ndarray, cam: Camera, alpha: Tensor, depth: Tensor, splats: Splats, cfg: SegmentConfig
) -> Tensor:
    """3D prompts [P, 3] from clicks (x, y) in continuous pixel coordinates of the reference view.

    ``depth`` [R]: X = C + D(p)·r(p), D = Σwz/Σw, r with unit camera-space z; a click with alpha
    < 0.5 is rejected (empty space). ``nearest`` [C]: among centres (z > 0, opacity ≥ 0.1 [R]) that
    project into the window [p − 4, p + 4), the one with the smallest z.
    """
    H, W = alpha.shape
    out = []
    for x, y in points_xy:
        if not (0 <= x < W and 0 <= y < H):
            raise VislabError(f"click ({x:g}, {y:g}) is outside the {W}×{H} reference image")
        i, j = int(np.floor(y)), int(np.floor(x))
        if cfg.lift == "depth":
            if float(alpha[i, j]) < cfg.min_click_alpha:
                raise VislabError(
                    f"click ({x:g}, {y:g}) is on empty space (rendered alpha {float(alpha[i, j]):.2f} < {cfg.min_click_alpha})"
                )
            o, d = cam.ray(float(x), float(y))
            out.append(o + float(depth[i, j]) * d)
        elif cfg.lift == "nearest":
            uv, z = cam.project(splats["means"].detach().cpu().float())
            h = cfg.nearest_window / 2
            ok = (z > 0) & (uv[:, 0] >= x - h) & (uv[:, 0] < x + h) & (uv[:, 1] >= y - h) & (uv[:, 1] < y + h)
            ok &= torch.sigmoid(splats["opacities"].detach().cpu()) >= cfg.nearest_min_opacity
            if not ok.any():
                raise VislabError(
                    f"click ({x:g}, {y:g}) has no Gaussian centre in its {cfg.nearest_window}×{cfg.nearest_window} window (empty space)"
                )
            idx = torch.where(ok)[0]
            out.append(splats["means"].detach().cpu()[idx[z[idx].argmin()]].float())
        else:
            raise VislabError(f"unknown lift mode {cfg.lift!r} (depth, nearest)")
    return torch.stack(out)


def visible(uv: Tensor, z: Tensor, depth: Tensor, cfg: SegmentConfig, scene_scale: float) -> Tensor:
    """In front of the near plane, inside the image and not occluded: z ≤ D(p)(1 + rel) + abs·scale."""
    H, W = depth.shape
    inside = (z > cfg.near) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    i = uv[:, 1].floor().long().clamp(0, H - 1)
    j = uv[:, 0].floor().long().clamp(0, W - 1)
    d = depth[i, j]
    return inside & (z <= d * (1 + cfg.occlusion_rel) + cfg.occlusion_abs * scene_scale)


def project_prompts(
    prompts: Tensor, labels: np.ndarray, cam: Camera, depth: Tensor, cfg: SegmentConfig, scene_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Prompts kept in this view: pixel coords [P', 2] and labels [P'] (dropped: behind, off-image, occluded)."""
    uv, z = cam.project(prompts)
    keep = visible(uv, z, depth, cfg, scene_scale).numpy()
    return uv.numpy()[keep], labels[keep]


def assign_labels(
    means: Tensor, cam: Camera, mask: np.ndarray | None, depth: Tensor, cfg: SegmentConfig, scene_scale: float
) -> Tensor:
    """ℓ_v(g) = M_v[⌊v_g⌋, ⌊u_g⌋] for centres with z > 0 inside the image, else −1 [N] int8 [C].

    An abstaining view (mask None) gives −1 everywhere; ``occlusion_test`` [R] also gives −1 to
    centres behind the rendered depth.
    """
    N = len(means)
    lab = torch.full((N,), -1, dtype=torch.int8)
    if mask is None:
        return lab
    H, W = mask.shape
    uv, z = cam.project(means)
    ok = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    if cfg.occlusion_test:
        ok &= visible(uv, z, depth, cfg, scene_scale)
    i = uv[:, 1].floor().long().clamp(0, H - 1)
    j = uv[:, 0].floor().long().clamp(0, W - 1)
    m = torch.from_numpy(mask)[i, j].to(torch.int8)
    lab[ok] = m[ok]
    return lab


def vote(view_labels: Tensor, tau: float = 0.7, denominator: str = "all") -> Tensor:
    """Cross-view vote over per-view labels in {−1, 0, 1}. view_labels [V, N] int8 -> [N] bool.

    ``official`` [C]: the label is the mode over the V views (ties go to the smaller label, as
    ``torch.mode`` does), and the Gaussian is object iff that mode is 1 and its count n₁ > τV. For
    τ ≥ 0.5 the mode condition is implied by n₁ > τV; below 0.5 it also requires n₁ > n₀ and
    n₁ > n₋₁. ``all``: n₁ > τV alone (the same as ``official`` for τ ≥ 0.5).
    ``valid`` [R]: n₁ > τ·n_valid with n_valid ≥ max(3, 0.3 V).
    """
    V = view_labels.shape[0]
    n1 = (view_labels == 1).sum(0).float()
    if denominator == "all":
        return n1 > tau * V
    if denominator == "official":
        n0 = (view_labels == 0).sum(0).float()
        nm = (view_labels == -1).sum(0).float()
        return (n1 > tau * V) & (n1 > n0) & (n1 > nm)
    if denominator == "valid":
        nv = (view_labels >= 0).sum(0).float()
        return (n1 > tau * nv) & (nv >= max(3.0, 0.3 * V))
    raise VislabError(f"unknown vote_denominator {denominator!r} (official, all, valid)")


def _jacobian(means_c: Tensor, K: Tensor) -> Tensor:
    """Perspective Jacobian [N, 2, 3] at camera-space points [N, 3]."""
    x, y, z = means_c.unbind(-1)
    fx, fy = K[0, 0], K[1, 1]
    zero = torch.zeros_like(z)
    return torch.stack([fx / z, zero, -fx * x / z**2, zero, fy / z, -fy * y / z**2], -1).reshape(-1, 2, 3)


def _sample(mask: Tensor, pts: Tensor) -> Tensor:
    H, W = mask.shape
    return mask[pts[:, 1].floor().long().clamp(0, H - 1), pts[:, 0].floor().long().clamp(0, W - 1)]


def decompose_view(
    splats: Splats, labels: Tensor, cam: Camera, mask: np.ndarray, cfg: SegmentConfig
) -> tuple[Splats, Tensor, int]:
    """Gaussian Decomposition of the object's boundary Gaussians in one view.

    For each object Gaussian whose centre is in the image:
    Σ₂ = J W Σ Wᵀ Jᵀ (no blur), largest eigenpair (λ, e); endpoints p± = μ₂ ± 1.5√λ e (clipped);
    boundary iff M[p₊] ≠ M[p₋]; r = fraction of in-mask samples among max(|Δu|,|Δv|)+1 samples on
    p₋→p₊, clamped to [0.05, 1]; d₂ = ±e towards the in-mask endpoint; a = axis of the largest scale
    s_a, L = 3 s_a; σ = sign⟨J W a, d₂⟩ (a direction, not a point: the official code's bug fixed).
    Foreground child (replaces the parent row): μ + σ·½(1−r)L·a, s_a·r. ``split`` also appends a
    background child μ − σ·½rL·a, s_a·(1−r) with label 0. ``official``: foreground child only, every
    axis ×0.8r. Returns the new splats, labels and the number of decomposed Gaussians.
    """
    M = torch.from_numpy(mask)
    H, W = M.shape
    obj = torch.where(labels == 1)[0]
    if len(obj) == 0:
        return splats, labels, 0
    mu = splats["means"][obj].float()
    Wm, t = cam.viewmat[:3, :3], cam.viewmat[:3, 3]
    mc = mu @ Wm.T + t
    z = mc[:, 2]
    uv = torch.stack([cam.K[0, 0] * mc[:, 0] / z + cam.K[0, 2], cam.K[1, 1] * mc[:, 1] / z + cam.K[1, 2]], -1)
    inimg = (z > cfg.near) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    if not inimg.any():
        return splats, labels, 0
    obj, mu, mc, uv = obj[inimg], mu[inimg], mc[inimg], uv[inimg]
    scales = torch.exp(splats["scales"][obj].float())
    quats = splats["quats"][obj].float()
    J = _jacobian(mc, cam.K)
    cov2 = J @ (Wm @ covariance3d(quats, scales) @ Wm.T) @ J.transpose(-1, -2)
    evals, evecs = torch.linalg.eigh(cov2)
    lam, e = evals[:, 1].clamp(min=0), evecs[:, :, 1]
    half = cfg.gd_extent * lam.sqrt()[:, None] * e
    lo = torch.tensor([0.0, 0.0])
    hi = torch.tensor([W - 1e-3, H - 1e-3])
    pp = torch.minimum(torch.maximum(uv + half, lo), hi)
    pm = torch.minimum(torch.maximum(uv - half, lo), hi)
    mp, mm = _sample(M, pp), _sample(M, pm)
    bnd = mp != mm
    if not bnd.any():
        return splats, labels, 0
    obj, mu, uv, pp, pm, mp, e, J, scales, quats = (
        x[bnd] for x in (obj, mu, uv, pp, pm, mp, e, J, scales, quats)
    )
    n = ((pp - pm).abs().max(-1).values.floor().long() + 1).clamp(min=2)
    rep = torch.repeat_interleave(torch.arange(len(obj)), n)
    start = torch.cumsum(n, 0) - n
    k = (torch.arange(int(n.sum())) - start[rep]).float()
    tt = k / (n[rep] - 1).float()
    samples = pm[rep] + tt[:, None] * (pp[rep] - pm[rep])
    inside = _sample(M, samples).float()
    r = torch.zeros(len(obj)).index_add(0, rep, inside) / n.float()
    r = r.clamp(cfg.gd_min_ratio, 1.0)
    d2 = torch.where(mp[:, None], e, -e)
    R = quat_to_rotmat(quats)
    ia = scales.argmax(-1)
    a = R[torch.arange(len(obj)), :, ia]  # [n, 3] world axis
    s_a = scales[torch.arange(len(obj)), ia]
    L = 3 * s_a
    a2 = (J @ (Wm @ a[:, :, None]))[:, :, 0]
    sigma = torch.sign((a2 * d2).sum(-1))
    sigma = torch.where(sigma == 0, torch.ones_like(sigma), sigma)
    new = {k_: v.clone() for k_, v in splats.items()}
    log_s = splats["scales"][obj].clone()
    ar = torch.arange(len(obj))
    if cfg.gd_mode == "split":
        new["means"][obj] = (mu + (sigma * 0.5 * (1 - r) * L)[:, None] * a).to(new["means"].dtype)
        fg_s = log_s.clone()
        fg_s[ar, ia] = fg_s[ar, ia] + torch.log(r)
        new["scales"][obj] = fg_s
        bg_s = log_s.clone()
        bg_s[ar, ia] = bg_s[ar, ia] + torch.log((1 - r).clamp(min=cfg.gd_min_ratio))
        child = {k_: v[obj].clone() for k_, v in splats.items()}
        child["means"] = (mu - (sigma * 0.5 * r * L)[:, None] * a).to(new["means"].dtype)
        child["scales"] = bg_s
        new = {k_: torch.cat([new[k_], child[k_]]) for k_ in new}
        labels = torch.cat([labels, torch.zeros(len(obj), dtype=labels.dtype)])
    elif cfg.gd_mode == "official":
        new["means"][obj] = (mu + (sigma * 0.5 * (1 - r) * L)[:, None] * a).to(new["means"].dtype)
        new["scales"][obj] = log_s + torch.log(0.8 * r)[:, None]
    else:
        raise VislabError(f"unknown gd_mode {cfg.gd_mode!r} (split, official)")
    return new, labels, len(obj)


def farthest_points(mask: np.ndarray, k: int = 5) -> np.ndarray:
    """Up to ``k`` clicks (x, y) from a scribble mask [H, W] by farthest-point sampling (NVOS protocol).

    Starts at the scribble pixel nearest the scribble's centroid, then repeatedly adds the pixel
    farthest from those chosen. Returns pixel centres [k', 2].
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise VislabError("the scribble mask is empty")
    pts = np.stack([xs, ys], 1).astype(np.float64) + 0.5
    first = int(np.argmin(((pts - pts.mean(0)) ** 2).sum(1)))
    chosen = [first]
    d = ((pts - pts[first]) ** 2).sum(1)
    while len(chosen) < min(k, len(pts)):
        nxt = int(np.argmax(d))
        if d[nxt] == 0:
            break
        chosen.append(nxt)
        d = np.minimum(d, ((pts - pts[nxt]) ** 2).sum(1))
    return pts[chosen].astype(np.float32)


def gd_view_indices(valid: list[int], n: int) -> list[int]:
    """``n`` evenly spaced entries of the valid (non-abstaining) views [R]."""
    if not valid:
        return []
    if len(valid) <= n:
        return list(valid)
    pos = np.linspace(0, len(valid) - 1, n).round().astype(int)
    return [valid[i] for i in sorted(set(pos.tolist()))]


@torch.no_grad()
def segment_gaussians(
    splats: Splats,
    cams: list[Camera],
    ref_view: int,
    points: np.ndarray,
    provider: MaskProvider,
    neg_points: np.ndarray | None = None,
    cfg: SegmentConfig | None = None,
    scene_scale: float = 1.0,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
    progress=None,
    keep_renders: bool = True,
    on_view: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
) -> Segmentation:
    """The whole SA-GS pipeline for clicks ``points`` [P, 2] (x, y) in view ``ref_view``.

    Views are rendered one at a time. ``on_view(v, rgb_u8, mask)`` sees each view as it is done (to
    write it out); ``keep_renders=False`` keeps no renders (``Segmentation.renders`` is None), so
    the memory is the masks (1 byte per pixel) and the per-view labels, not V float images.
    """
    cfg = cfg or SegmentConfig()
    if not 0 <= ref_view < len(cams):
        raise VislabError(f"reference view {ref_view} out of range (0..{len(cams) - 1})")
    points = np.asarray(points, np.float32).reshape(-1, 2)
    if len(points) == 0:
        raise VislabError("at least one positive click is needed")
    neg = (
        np.zeros((0, 2), np.float32)
        if neg_points is None
        else np.asarray(neg_points, np.float32).reshape(-1, 2)
    )
    from vislab.runtime import device

    dev = device()  # render on the GPU (gsplat) when there is one
    a_dev = activated({k: v.detach().float().to(dev) for k, v in splats.items()})
    deg = sh_degree_of(splats)
    splats = {k: v.detach().cpu().float() for k, v in splats.items()}
    ref = cams[ref_view]
    all_pts = np.concatenate([points, neg])
    all_lab = np.concatenate([np.ones(len(points), np.int64), np.zeros(len(neg), np.int64)])
    V, N = len(cams), len(splats["means"])
    masks: list[np.ndarray | None] = [None] * V
    view_labels = torch.full((V, N), -1, dtype=torch.int8)
    renders: list[Tensor | None] = [None] * V
    order = [ref_view] + [v for v in range(V) if v != ref_view]  # the reference view first (SAM's k)
    it = progress(order, "masks + labels") if progress else order
    gd_splats, gd_labels, n_gd = None, None, 0
    prompts = None
    for v in it:  # one view at a time: only its render is in memory (uint8 kept if keep_renders)
        rgb, alpha, depth = render_view(a_dev, deg, cams[v], background, backend)
        img = (rgb.numpy() * 255).round().astype(np.uint8)
        if v == ref_view:
            prompts = lift_clicks(all_pts, ref, alpha, depth, splats, cfg)
            pts, lab = all_pts, all_lab
        else:
            pts, lab = project_prompts(prompts, all_lab, cams[v], depth, cfg, scene_scale)
        if (lab == 1).sum() > 0:  # otherwise abstain: labels stay −1
            masks[v] = np.asarray(provider(img, pts, lab, v), bool)
            view_labels[v] = assign_labels(splats["means"], cams[v], masks[v], depth, cfg, scene_scale)
        if keep_renders:
            renders[v] = torch.from_numpy(img)
        if on_view is not None:
            on_view(v, img, masks[v])
        del rgb, alpha, depth
    selected = vote(view_labels, cfg.tau, cfg.vote_denominator)
    labels_vote = selected.to(torch.int8)
    valid = [v for v in range(V) if masks[v] is not None]
    gd_splats, gd_labels = splats, labels_vote.clone()
    if cfg.gd:
        views = valid if cfg.gd_stage == "per_view" else gd_view_indices(valid, cfg.gd_views)
        for v in views:
            gd_splats, gd_labels, k = decompose_view(gd_splats, gd_labels, cams[v], masks[v], cfg)
            n_gd += k
    return Segmentation(
        labels=gd_labels,
        labels_no_gd=labels_vote,
        splats=gd_splats,
        view_labels=view_labels,
        masks=masks,
        renders=torch.stack(renders) if keep_renders else None,  # type: ignore[arg-type]
        prompts3d=prompts,
        prompt_labels=all_lab,
        info={
            "n_gaussians": N,
            "n_object": int(selected.sum()),
            "n_decomposed": n_gd,
            "n_after_gd": len(gd_labels),
            "valid_views": len(valid),
        },
    )


@torch.no_grad()
def render_masks(
    splats: Splats,
    labels: Tensor,
    cams: list[Camera],
    mode: str = "label",
    backend: str = "auto",
    n_original: int | None = None,
) -> list[Tensor]:
    """Predicted 2D masks [H, W] bool per camera.

    ``label``: rasterise the full scene with colour = label (1/0), background 0, threshold 0.5 —
    respects occlusion. With ``n_original``, rows ≥ n_original that are not object (the background
    children Gaussian Decomposition appends) are left out, so they do not paint object pixels as
    background. ``alpha``: render the object subset alone, alpha > 0.5.
    """
    from vislab.runtime import device

    if n_original is not None and mode == "label" and len(labels) > n_original:
        keep = torch.ones(len(labels), dtype=torch.bool)
        keep[n_original:] = labels[n_original:].cpu() == 1
        splats = {k: v[keep.to(v.device)] for k, v in splats.items()}
        labels = labels[keep.to(labels.device)]
    dev = device()
    a = activated({k: v.detach().float().to(dev) for k, v in splats.items()})
    labels = labels.to(dev)
    lab = (labels == 1).float()[:, None]
    out = []
    for c in cams:
        c = Camera(c.viewmat.to(dev), c.K.to(dev), c.width, c.height)
        if mode == "label":
            img, _, _ = rasterize(
                a["means"],
                a["quats"],
                a["scales"],
                a["opacities"],
                lab,
                c.viewmat[None],
                c.K[None],
                c.width,
                c.height,
                backend=backend,
            )
            out.append((img[0, ..., 0] > 0.5).cpu())
        elif mode == "alpha":
            sel = labels == 1
            if not sel.any():
                out.append(torch.zeros(c.height, c.width, dtype=torch.bool))
                continue
            _, alpha, _ = rasterize(
                a["means"][sel],
                a["quats"][sel],
                a["scales"][sel],
                a["opacities"][sel],
                lab[sel],
                c.viewmat[None],
                c.K[None],
                c.width,
                c.height,
                backend=backend,
            )
            out.append((alpha[0, ..., 0] > 0.5).cpu())
        else:
            raise VislabError(f"unknown eval mode {mode!r} (label, alpha)")
    return out
