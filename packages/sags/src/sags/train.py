"""``sags`` / ``train sags``: fit 3D Gaussians (Lightning), export the INRIA PLY, then segment with SA-GS.

Embedded default: the procedural scene of :mod:`sags.scene`. Headline metric: mIoU of the rendered
object masks on the held-out test views (SA-GS with Gaussian Decomposition), computed on the
initial Gaussians ("before") and on the fitted ones ("after"); PSNR before/after, mIoU without GD
and 3D IoU are reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from vislab.errors import ConfigError, VislabError
from vislab.run import Run, track
from vislab.runtime import is_main_process, setup

from sags.cameras import Camera, save_cameras_json, scene_scale, stack
from sags.data import PosedImages, SplatDataModule, load_blender_scene, load_colmap_scene
from sags.gaussians import Splats, pad_sh, save_ply
from sags.module import GaussianSplatModule, evaluate_psnr, init_splats
from sags.scene import auto_click


def parse_points(text: str | None) -> np.ndarray | None:
    """ "x,y;x,y" -> [P, 2] float32 (None/empty -> None)."""
    if text is None or str(text).strip() == "":
        return None
    try:
        pts = [[float(v) for v in p.split(",")] for p in str(text).split(";") if p.strip()]
        arr = np.asarray(pts, np.float32)
    except ValueError:
        raise VislabError(f"cannot parse points {text!r}: expected 'x,y;x,y'") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise VislabError(f"cannot parse points {text!r}: expected 'x,y;x,y'")
    return arr


def build_data(cfg: dict[str, Any]) -> tuple[PosedImages, PosedImages | None, Splats, dict[str, Any]]:
    """Training data, optional separate validation views, initial Gaussians, extras (synthetic GT)."""
    d, gen = cfg["data"], torch.Generator().manual_seed(int(cfg["seed"]))
    deg = int(cfg["model"]["sh_degree"])
    if d["source"] == "synthetic":
        from sags.scene import make_scene

        s = cfg["synthetic"]
        scene = make_scene(
            int(s["size"]), float(s["focal"]), int(s["n_train"]), int(s["n_test"]), float(s["spacing"])
        )
        pts = scene.splats["means"] + torch.randn(scene.splats["means"].shape, generator=gen) * float(
            s["init_jitter"]
        )
        nf = int(len(pts) * float(s["floaters"]))
        lo, hi = torch.tensor([-1.0, -1.0, 0.0]), torch.tensor([1.0, 1.0, 0.6])
        pts = torch.cat([pts, lo + torch.rand(nf, 3, generator=gen) * (hi - lo)])
        splats = init_splats(pts, torch.full((len(pts), 3), 0.5), deg, float(cfg["init"]["opacity"]), gen)
        train = PosedImages(scene.train_images, scene.train_cams)
        val = PosedImages(scene.test_images, scene.test_cams)
        return train, val, splats, {"scene": scene}
    if d["path"] is None:
        raise ConfigError(f"data.source={d['source']} needs --data.path")
    if d["source"] == "colmap":
        data = load_colmap_scene(d["path"], d["images"], int(d["factor"]), bool(d["normalize"]))
    elif d["source"] == "blender":
        p = Path(d["path"])
        data = load_blender_scene(
            p / "transforms_train.json" if p.is_dir() else p, int(d["factor"]), bool(d["white_background"])
        )
    else:
        raise ConfigError(f"unknown data.source {d['source']!r} (synthetic, colmap, blender)")
    sc = scene_scale(data.cameras)
    if cfg["init"]["type"] == "sfm" and data.points is not None and len(data.points):
        pts = torch.from_numpy(data.points)
        rgb = torch.from_numpy(data.colors).float() / 255.0
    else:
        n = int(cfg["init"]["num_random"])
        pts = (torch.rand(n, 3, generator=gen) * 2 - 1) * float(cfg["init"]["random_extent"]) * sc
        rgb = torch.rand(n, 3, generator=gen)
    splats = init_splats(pts, rgb, deg, float(cfg["init"]["opacity"]), gen)
    return data, None, splats, {}


def make_module(cfg: dict[str, Any], splats: Splats, data: PosedImages) -> GaussianSplatModule:
    m = cfg["model"]
    return GaussianSplatModule(
        splats,
        scene_scale=scene_scale(data.cameras),
        sh_degree=int(m["sh_degree"]),
        sh_degree_interval=int(m["sh_degree_interval"]),
        ssim_lambda=float(m["ssim_lambda"]),
        lr={k: float(v) for k, v in m["lr"].items()},
        means_lr_final_ratio=float(m["means_lr_final_ratio"]),
        max_steps=int(cfg["trainer"].get("max_steps", 30000) or 30000),
        background=tuple(data.background),
        strategy=dict(cfg["strategy"]),
        near_plane=float(m["near_plane"]),
        eps2d=float(m["eps2d"]),
        rasterize_mode=str(m["rasterize_mode"]),
        backend=str(m["backend"]),
    )


def segment_config(sc: dict[str, Any]):
    from sags.segment import SegmentConfig

    return SegmentConfig(
        lift=sc["lift"],
        tau=float(sc["tau"]),
        vote_denominator=sc["vote_denominator"],
        occlusion_test=bool(sc["occlusion_test"]),
        gd=bool(sc["gd"]),
        gd_mode=sc["gd_mode"],
        gd_stage=sc["gd_stage"],
        gd_views=int(sc["gd_views"]),
        eval_mode=sc["eval_mode"],
    )


def evaluate_segmentation(
    splats: Splats,
    cams: list[Camera],
    ref_view: int,
    points: np.ndarray,
    neg: np.ndarray | None,
    provider,
    sc: dict[str, Any],
    scale: float,
    test_cams: list[Camera],
    test_gt: list[torch.Tensor],
    member_fn=None,
    background=(0.0, 0.0, 0.0),
) -> tuple[Any, dict[str, float]]:
    """Run SA-GS and score it: mIoU/mAcc on test views with and without GD, 3D IoU (if known)."""
    from sags.metrics import iou_3d, mean_iou_acc
    from sags.segment import render_masks, segment_gaussians

    cfg = segment_config(sc)
    seg = segment_gaussians(
        splats, cams, ref_view, points, provider, neg, cfg, scale, background, progress=track
    )
    n0 = seg.info["n_gaussians"]
    scores = {}
    for mode in ("label", "alpha"):  # label: background children left out; alpha: object alone
        pm = render_masks(seg.splats, seg.labels, test_cams, mode, n_original=n0)
        scores[mode] = (*mean_iou_acc(pm, test_gt), pm)
        scores[mode + "_noGD"] = mean_iou_acc(
            render_masks(splats, seg.labels_no_gd, test_cams, mode), test_gt
        )
    pm_kids = render_masks(seg.splats, seg.labels, test_cams, "label")  # children painting background
    miou_gd, macc_gd, pm_gd = scores[cfg.eval_mode]
    miou_no, macc_no = scores[cfg.eval_mode + "_noGD"]
    res = {
        "mIoU": miou_gd,
        "mAcc": macc_gd,
        "mIoU_noGD": miou_no,
        "mAcc_noGD": macc_no,
        "eval_mode": cfg.eval_mode,
        "mIoU_label": scores["label"][0],
        "mIoU_label_noGD": scores["label_noGD"][0],
        "mIoU_object_only": scores["alpha"][0],
        "mIoU_object_only_noGD": scores["alpha_noGD"][0],
        "mIoU_label_with_bg_children": mean_iou_acc(pm_kids, test_gt)[0],
        **seg.info,
    }
    if member_fn is not None:
        mem, valid = member_fn(splats)
        res["iou3d"] = iou_3d(seg.labels_no_gd == 1, mem, valid)
    seg.info["pred_masks_test"] = pm_gd
    return seg, res


class ViewWriter:
    """``on_view`` callback of :func:`sags.segment.segment_gaussians`: writes ``renders/NNN.png`` and
    ``masks/NNN.png`` as each view is done and keeps overlay thumbnails (≤ 256 px) for the grid."""

    def __init__(self, out: Path, points: np.ndarray | None = None, ref_view: int = 0, thumb: int = 256):
        self.out, self.points, self.ref_view, self.thumb = Path(out), points, ref_view, thumb
        self.thumbs: dict[int, np.ndarray] = {}

    def __call__(self, v: int, rgb: np.ndarray, mask: np.ndarray | None) -> None:
        from PIL import Image

        from sags.viz import overlay, save_png

        save_png(rgb, self.out / "renders" / f"{v:03d}.png")
        if mask is not None:
            save_png(mask.astype(np.uint8) * 255, self.out / "masks" / f"{v:03d}.png")
        ov = overlay(rgb, mask, points=self.points if v == self.ref_view else None)
        s = min(1.0, self.thumb / max(ov.shape[:2]))
        if s < 1:
            ov = np.asarray(
                Image.fromarray(ov).resize((max(1, round(ov.shape[1] * s)), max(1, round(ov.shape[0] * s))))
            )
        self.thumbs[v] = ov


def write_segmentation(
    seg,
    out: Path,
    cams: list[Camera],
    points: np.ndarray | None = None,
    ref_view: int = 0,
    writer: ViewWriter | None = None,
) -> None:
    """labels.npy (rows of scene.ply = the scene after GD), votes.npy (per-view labels [V, N]),
    object.ply, background.ply, masks/, renders/, mask_overlays.png, object/background renders,
    segmentation.json (counts, the object's oriented and axis-aligned boxes). With a
    :class:`ViewWriter` that already wrote the views, the renders are not needed."""
    from vislab.io import atomic_path, write_json

    from sags.edit import pca_box, split_object
    from sags.segment import render_all
    from sags.viz import grid, save_png

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "labels.npy") as t:
        with open(t, "wb") as f:
            np.save(f, seg.labels.numpy().astype(np.int8))
    with atomic_path(out / "votes.npy") as t:
        with open(t, "wb") as f:
            np.save(f, seg.view_labels.numpy().astype(np.int8))
    save_ply(seg.splats, out / "scene.ply")  # the scene after GD: its rows match labels.npy
    obj, bg = split_object(seg.splats, seg.labels)
    if len(obj["means"]):
        save_ply(obj, out / "object.ply")
    save_ply(bg, out / "background.ply")
    if writer is None:
        writer = ViewWriter(out, points, ref_view)
        for v, m in enumerate(seg.masks):
            writer(v, seg.renders[v].numpy(), m)
    n = len(cams)
    ov = [writer.thumbs[v] for v in range(n)]
    cols = min(n, 8)
    rows = [ov[i : i + cols] for i in range(0, n, cols)]
    if len(rows) > 1 and len(rows[-1]) < cols:
        rows[-1] = rows[-1] + [np.full_like(ov[0], 255)] * (cols - len(rows[-1]))
    scale = max(1, 256 // max(ov[0].shape[:2]))
    save_png(grid(rows), out / "mask_overlays.png", scale=scale)
    show = list(range(0, n, max(1, n // 4)))[:4]
    small = [_thumb_camera(cams[v], 256) for v in show]
    r_obj = render_all(obj, small)[0] if len(obj["means"]) else None
    r_bg = render_all(bg, small)[0]
    rows = [[r for r in render_all(seg.splats, small)[0]], [r_bg[i] for i in range(len(show))]]
    if r_obj is not None:
        rows.insert(1, [r_obj[i] for i in range(len(show))])
    save_png(grid(rows), out / "object_background_renders.png", scale=scale)
    info = {k: v for k, v in seg.info.items() if isinstance(v, (int, float, str))}
    if len(obj["means"]):
        box = pca_box(obj)
        info["object_aabb_min"] = box["aabb_min"].tolist()
        info["object_aabb_max"] = box["aabb_max"].tolist()
        info["object_box_center"] = box["center"].tolist()
        info["object_box_half_extent"] = box["half"].tolist()
    write_json(out / "segmentation.json", info)


def _thumb_camera(cam: Camera, size: int) -> Camera:
    """The camera at most ``size`` pixels on its longer side (for pictures of large scenes)."""
    from sags.cameras import resize_cameras

    longest = max(cam.width, cam.height)
    return cam if longest <= size else resize_cameras([cam], factor=longest / size)[0]


def train(run: Run) -> dict[str, Any] | None:
    """Fit, export, segment, score, draw."""
    cfg = run.config
    setup(int(cfg["seed"]))
    data, val, splats0, extra = build_data(cfg)
    dm = SplatDataModule(data, int(cfg["data"]["test_every"]), val)
    module = make_module(cfg, splats0, data)
    eval_set = (
        val
        if val is not None
        else PosedImages(
            data.images[:: max(int(cfg["data"]["test_every"]), 1)],
            data.cameras[:: max(int(cfg["data"]["test_every"]), 1)],
        )
    )
    vm, Ks = stack(eval_set.cameras)
    deg = int(cfg["model"]["sh_degree"])
    psnr_before = (
        evaluate_psnr(splats0, eval_set.images, vm, Ks, deg, data.background) if is_main_process() else 0.0
    )
    run.log(
        f"{len(splats0['means'])} initial Gaussians, scene scale {scene_scale(data.cameras):.3f}, test PSNR before {psnr_before:.2f} dB"
    )
    trainer = run.trainer()
    trainer.fit(module, datamodule=dm, ckpt_path=run.resume_checkpoint())
    if not trainer.is_global_zero:
        return None
    splats = module.export_splats()
    psnr_after = evaluate_psnr(splats, eval_set.images, vm, Ks, deg, data.background)
    save_ply(pad_sh(splats, 3), run.path("point_cloud.ply"))  # SH 3 (zero bands): INRIA's loader reads it
    save_cameras_json(data.cameras, run.path("cameras.json"))
    if val is not None:
        save_cameras_json(val.cameras, run.path("test_cameras.json"))
    _fit_pictures(run, splats0, splats, eval_set)
    result: dict[str, Any] = {
        "psnr_before": psnr_before,
        "psnr_after": psnr_after,
        "num_gaussians": len(splats["means"]),
    }
    sc = cfg["segment"]
    scene = extra.get("scene")
    if not sc["enabled"] or (scene is None and not sc["points"]):
        return run.finish(
            metric="psnr", higher_is_better=True, before=psnr_before, after=psnr_after, **result
        )
    from sags.providers import make_provider

    ref = int(sc["ref_view"])
    if scene is not None:
        from sags.scene import membership_3d

        k = int(sc["object"])
        points = parse_points(sc["points"]) if sc["points"] else auto_click(scene.train_inst[ref], k)
        neg = parse_points(sc["neg_points"])
        test_gt = [m == k for m in scene.test_inst]
        member_fn = lambda s: membership_3d(s["means"], s["opacities"], k)  # noqa: E731
        sscale = scene_scale(scene.train_cams)
        res = {}
        for tag, sp in (("before", splats0), ("after", splats)):
            provider = make_provider(
                sc["provider"], scene.train_inst, sc["sam_type"], sc["sam_checkpoint"], sc["sam_k"]
            )
            seg, r = evaluate_segmentation(
                sp,
                scene.train_cams,
                ref,
                points,
                neg,
                provider,
                sc,
                sscale,
                scene.test_cams,
                test_gt,
                member_fn,
            )
            res[tag] = r
            run.log(
                f"segmentation on {tag}-training Gaussians: mIoU {r['mIoU']:.3f} (no GD {r['mIoU_noGD']:.3f}), 3D IoU {r.get('iou3d', float('nan')):.3f}"
            )
        write_segmentation(seg, run.out / "segmentation", scene.train_cams, points, ref)
        _test_pictures(run, seg, scene, test_gt)
        for key in (
            "mIoU_noGD",
            "mAcc",
            "mAcc_noGD",
            "mIoU_label",
            "mIoU_label_noGD",
            "mIoU_object_only",
            "mIoU_object_only_noGD",
            "mIoU_label_with_bg_children",
            "iou3d",
            "n_object",
            "n_decomposed",
        ):
            result[f"{key}"] = res["after"].get(key)
            result[f"{key}_before_training"] = res["before"].get(key)
        result["provider"] = sc["provider"]
        result["click"] = points.tolist()
        return run.finish(
            metric="mIoU",
            higher_is_better=True,
            before=res["before"]["mIoU"],
            after=res["after"]["mIoU"],
            **result,
        )
    # real scene with clicks: no ground truth; segment and write outputs, headline stays the fit
    points = parse_points(sc["points"])
    provider = make_provider(sc["provider"], None, sc["sam_type"], sc["sam_checkpoint"], sc["sam_k"])
    from sags.segment import segment_gaussians

    seg = segment_gaussians(
        splats,
        data.cameras,
        ref,
        points,
        provider,
        parse_points(sc["neg_points"]),
        segment_config(sc),
        scene_scale(data.cameras),
        data.background,
        progress=track,
    )
    write_segmentation(seg, run.out / "segmentation", data.cameras, points, ref)
    result.update({k: v for k, v in seg.info.items() if isinstance(v, (int, float))})
    return run.finish(metric="psnr", higher_is_better=True, before=psnr_before, after=psnr_after, **result)


def _fit_pictures(run: Run, before: Splats, after: Splats, ev: PosedImages) -> None:
    from sags.segment import render_all
    from sags.viz import grid, save_png

    n = min(4, len(ev.cameras))
    cams = ev.cameras[:n]
    rb = render_all(before, cams, ev.background)[0]
    ra, _, depth = render_all(after, cams, ev.background)
    d = depth / depth[depth > 0].max().clamp(min=1e-6) if (depth > 0).any() else depth
    rows = [
        [ev.images[i] for i in range(n)],
        [rb[i] for i in range(n)],
        [ra[i] for i in range(n)],
        [d[i][..., None].expand(-1, -1, 3) for i in range(n)],
    ]
    save_png(
        grid(rows),
        run.path("renders_gt_before_after_depth.png"),
        scale=max(1, 256 // max(ev.images.shape[1:3])),
    )


def _test_pictures(run: Run, seg, scene, test_gt) -> None:
    from sags.segment import render_all
    from sags.viz import grid, overlay, save_png

    rgb = render_all(seg.splats, scene.test_cams)[0]
    pm = seg.info["pred_masks_test"]
    rows = [
        [overlay(rgb[i], test_gt[i], color=(0.1, 1.0, 0.2)) for i in range(len(pm))],
        [overlay(rgb[i], pm[i]) for i in range(len(pm))],
    ]
    save_png(grid(rows), run.path("test_masks_gt_vs_pred.png"), scale=max(1, 256 // max(rgb.shape[1:3])))
