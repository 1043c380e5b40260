"""Inference commands: ``sags segment | render | edit | collide | eval``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from vislab import runtime
from vislab.errors import InputError, VislabError
from vislab.io import require_file, write_json


def _scene(ply: str, cameras: str):
    from sags.cameras import load_cameras
    from sags.gaussians import load_ply

    return load_ply(ply), load_cameras(cameras)


def _add_size_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--factor", type=float, default=None, help="render at the cameras' size divided by this (e.g. 4)"
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="render this many pixels wide (aspect ratio kept)"
    )


def _sized(cams, a):
    from sags.cameras import resize_cameras

    return resize_cameras(cams, a.factor, a.resolution)


def _labels(path: str, n: int) -> torch.Tensor:
    p = require_file(path, "labels file")
    try:
        lab = np.load(p)
    except Exception as e:  # noqa: BLE001
        raise InputError(p, f"cannot read labels ({e.__class__.__name__})") from None
    if lab.ndim != 1 or len(lab) != n:
        raise InputError(p, f"labels have shape {lab.shape}, but the PLY holds {n} Gaussians")
    return torch.from_numpy(lab.astype(np.int8))


def segment_main(argv: list[str]) -> int:
    """Segment an object of a 3DGS scene from clicks in one view."""
    from sags.cameras import scene_scale
    from sags.providers import make_provider
    from sags.run_helpers import segment_args_to_config
    from sags.segment import segment_gaussians
    from sags.train import ViewWriter, parse_points, write_segmentation

    p = argparse.ArgumentParser(
        prog="sags segment", description="SA-GS: segment the Gaussians of an object clicked in one view."
    )
    p.add_argument("--ply", required=True, help="INRIA 3DGS PLY (point_cloud.ply)")
    p.add_argument(
        "--cameras",
        required=True,
        help="cameras.json (INRIA), transforms.json or a COLMAP sparse/0 folder, in the PLY's frame",
    )
    p.add_argument(
        "--scribble",
        default=None,
        help="scribble image (non-zero = object): up to 5 clicks by farthest-point sampling",
    )
    from vislab.cmdline import Option, add_config_options

    # the defaults of a standalone segmentation are SegmentConfig's ([C] official code, [R] our choice; see README)
    add_config_options(
        p,
        "sags",
        {
            "--view": Option("segment.ref_view", default=0, help="index of the reference view"),
            "--points": Option("segment.points", help="positive clicks 'x,y;x,y' in pixels of the reference view"),
            "--neg": Option("segment.neg_points", help="negative clicks 'x,y;x,y'"),
            "--provider": Option("segment.provider", default="sam", choices=("sam", "floodfill"), help="mask provider"),
            "--sam-checkpoint": Option("segment.sam_checkpoint", help="local SAM checkpoint (sam_vit_b_01ec64.pth, ...)"),
            "--sam-type": Option("segment.sam_type", default="vit_b"),
            "--sam-k": Option("segment.sam_k", help="fixed multimask output (0..2); unset: best score in the reference view"),
            "--lift": Option("segment.lift", default="depth", choices=("depth", "nearest")),
            "--tau": Option("segment.tau", default=0.7, help="voting threshold"),
            "--vote-denominator": Option(
                "segment.vote_denominator",
                default="official",
                choices=("official", "all", "valid"),
                help="official: the mode must be 1 and n1 > tau*V; all: n1 > tau*V; valid: n1 > tau*n_valid, for 360-degree captures",
            ),
            "--occlusion-test": Option("segment.occlusion_test", default=False,
                                       help="also apply the depth test in label assignment"),
            "--gd": Option("segment.gd", default=True, help="Gaussian Decomposition (--no-gd skips it)"),
            "--gd-mode": Option("segment.gd_mode", default="split", choices=("split", "official")),
            "--gd-stage": Option("segment.gd_stage", default="after_vote"),
            "--gd-views": Option("segment.gd_views", default=5),
        },
        unset="none",
    )
    p.add_argument("--background", default="0,0,0", help="render background r,g,b in [0,1]")
    p.add_argument("--out", required=True, help="output folder")
    _add_size_arguments(p)
    runtime.add_device_argument(p)
    a = p.parse_args(argv)
    runtime.use_device(a.device)
    points = parse_points(a.points)
    if a.scribble:
        from vislab.io import load_image

        from sags.segment import farthest_points

        scr = farthest_points(load_image(a.scribble, "L") > 0, 5)
        points = scr if points is None else np.concatenate([points, scr])
    if points is None:
        raise VislabError("give --points (at least one click) or --scribble")
    splats, cams = _scene(a.ply, a.cameras)
    cams = _sized(cams, a)  # clicks are in pixels of the resized reference view
    cfg = segment_args_to_config(a)
    dev = str(runtime.device())
    provider = make_provider(a.provider, None, a.sam_type, a.sam_checkpoint, a.sam_k, dev)
    bg = tuple(float(x) for x in a.background.split(","))
    out = Path(a.out)
    writer = ViewWriter(out, points, a.view)
    seg = segment_gaussians(
        splats,
        cams,
        a.view,
        points,
        provider,
        parse_points(a.neg),
        cfg,
        scene_scale(cams),
        bg,
        keep_renders=False,
        on_view=writer,
    )
    write_segmentation(seg, out, cams, points, a.view, writer)
    print(
        f"{seg.info['n_object']} of {seg.info['n_gaussians']} Gaussians selected, {seg.info['n_decomposed']} decomposed; outputs in {out}"
    )
    return 0


def render_main(argv: list[str]) -> int:
    """Render a PLY from its cameras."""
    from sags.gaussians import activated, sh_degree_of
    from sags.segment import render_view
    from sags.viz import save_png

    p = argparse.ArgumentParser(
        prog="sags render", description="Render an INRIA PLY from cameras (one PNG per view)."
    )
    p.add_argument("--ply", required=True)
    p.add_argument("--cameras", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--background", default="0,0,0")
    _add_size_arguments(p)
    runtime.add_device_argument(p)
    a = p.parse_args(argv)
    runtime.use_device(a.device)
    splats, cams = _scene(a.ply, a.cameras)
    cams = _sized(cams, a)
    act, deg = activated({k: v.to(runtime.device()) for k, v in splats.items()}), sh_degree_of(splats)
    bg = tuple(float(x) for x in a.background.split(","))
    for i, c in enumerate(cams):  # one view at a time
        save_png(render_view(act, deg, c, bg)[0], Path(a.out) / f"{i:03d}.png")
    print(f"{len(cams)} views rendered into {a.out}")
    return 0


def edit_main(argv: list[str]) -> int:
    """Remove, translate or rotate the segmented object."""
    from sags.edit import axis_angle_matrix, rotate, split_object, translate
    from sags.gaussians import load_ply, save_ply

    p = argparse.ArgumentParser(
        prog="sags edit", description="Edit a segmented object: remove | translate | rotate."
    )
    p.add_argument("op", choices=["remove", "translate", "rotate"])
    p.add_argument(
        "--ply", required=True, help="the scene PLY the labels belong to (segmentation's full scene)"
    )
    p.add_argument("--labels", required=True, help="labels.npy from sags segment")
    p.add_argument("--t", default="0,0,0", help="translation x,y,z")
    p.add_argument("--axis", default="0,0,1", help="rotation axis")
    p.add_argument("--degrees", type=float, default=0.0)
    p.add_argument("--out", required=True, help="output PLY")
    a = p.parse_args(argv)
    splats = load_ply(a.ply)
    lab = _labels(a.labels, len(splats["means"]))
    if a.op == "remove":
        res = split_object(splats, lab)[1]
    elif a.op == "translate":
        res = translate(splats, lab, torch.tensor([float(x) for x in a.t.split(",")]))
    else:
        res = rotate(
            splats, lab, axis_angle_matrix(torch.tensor([float(x) for x in a.axis.split(",")]), a.degrees)
        )
    save_ply(res, a.out)
    print(f"wrote {a.out}")
    return 0


def collide_main(argv: list[str]) -> int:
    """Collision-style queries on segmented objects: boxes, overlap, point inside."""
    from sags.edit import boxes_overlap, pca_box, point_inside
    from sags.gaussians import load_ply

    p = argparse.ArgumentParser(
        prog="sags collide",
        description="Oriented/axis-aligned boxes of object PLYs, their overlap, and point-inside tests.",
    )
    p.add_argument("--a", required=True, help="object PLY")
    p.add_argument("--b", default=None, help="second object PLY (overlap test)")
    p.add_argument("--point", action="append", default=[], help="x,y,z to test against --a (repeatable)")
    a = p.parse_args(argv)
    box_a = pca_box(load_ply(a.a))
    res = {"a": {k: v.tolist() for k, v in box_a.items()}}
    if a.b:
        box_b = pca_box(load_ply(a.b))
        res["b"] = {k: v.tolist() for k, v in box_b.items()}
        res["overlap"] = bool(boxes_overlap(box_a, box_b))
    if a.point:
        pts = torch.tensor([[float(x) for x in s.split(",")] for s in a.point])
        res["inside"] = point_inside(box_a, pts).tolist()
    import json

    print(json.dumps(res, indent=1))
    return 0


def eval_main(argv: list[str]) -> int:
    """mIoU / mAcc of rendered masks against ground-truth masks (NVOS / SPIn-NeRF style)."""
    from vislab.io import load_image

    from sags.gaussians import load_ply
    from sags.metrics import mean_iou_acc
    from sags.segment import render_masks

    p = argparse.ArgumentParser(
        prog="sags eval", description="Score a segmentation against ground-truth masks."
    )
    p.add_argument("--ply", required=True, help="scene PLY the labels belong to")
    p.add_argument("--labels", required=True)
    p.add_argument("--cameras", required=True)
    p.add_argument("--views", required=True, help="comma-separated view indices that have ground-truth masks")
    p.add_argument(
        "--gt-masks", nargs="+", required=True, help="mask images (non-zero = object), one per view"
    )
    from vislab.cmdline import Option, add_config_options

    add_config_options(p, "sags", {"--mode": Option(
        "segment.eval_mode",
        default="label",
        help="label: whole scene, colour = label (occlusion-aware); alpha: the object rendered alone",
    )})
    p.add_argument(
        "--n-original",
        type=int,
        default=None,
        help="rows of the PLY before Gaussian Decomposition; later non-object rows (background "
        "children) are left out in label mode (default: n_gaussians of segmentation.json beside --labels)",
    )
    p.add_argument("--out", default=None, help="metrics JSON path")
    _add_size_arguments(p)
    runtime.add_device_argument(p)
    a = p.parse_args(argv)
    runtime.use_device(a.device)
    import json

    from sags.cameras import load_cameras

    splats = load_ply(a.ply)
    cams = _sized(load_cameras(a.cameras), a)
    lab = _labels(a.labels, len(splats["means"]))
    n_orig = a.n_original
    info = Path(a.labels).parent / "segmentation.json"
    if n_orig is None and info.is_file():
        n_orig = json.loads(info.read_text()).get("n_gaussians")
    views = [int(v) for v in a.views.split(",")]
    if len(views) != len(a.gt_masks):
        raise VislabError(f"{len(views)} views but {len(a.gt_masks)} masks")
    preds, gts = [], []
    for v, mp in zip(views, a.gt_masks):  # one view at a time
        if not 0 <= v < len(cams):
            raise VislabError(f"view {v} out of range")
        m = load_image(mp, "L")
        c = cams[v]
        if m.shape != (c.height, c.width):
            if a.factor is None and a.resolution is None:
                raise InputError(mp, f"mask is {m.shape[1]}x{m.shape[0]}, camera {v} is {c.width}x{c.height}")
            from PIL import Image

            m = np.asarray(Image.fromarray(m).resize((c.width, c.height), Image.NEAREST))
        gts.append(torch.from_numpy(m > 0))  # any non-zero value is object (0/1 and 0/255 masks)
        preds += render_masks(splats, lab, [c], a.mode, n_original=n_orig)
    miou, macc = mean_iou_acc(preds, gts)
    res = {"mIoU": miou, "mAcc": macc, "views": views}
    if a.out:
        write_json(a.out, res)
    print(f"mIoU {miou:.4f}  mAcc {macc:.4f}")
    return 0


COMMANDS = {
    "segment": segment_main,
    "render": render_main,
    "edit": edit_main,
    "collide": collide_main,
    "eval": eval_main,
}
