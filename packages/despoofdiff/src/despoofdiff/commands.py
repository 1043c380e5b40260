"""``despoofdiff predict``: score face crops with a trained pipeline and draw what it saw."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from vislab.errors import InputError, VislabError


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.ckpt`` file, or a run folder / its ``checkpoints/`` (-> ``last.ckpt``, else ``despoofdiff.ckpt``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for c in (p / "checkpoints" / "last.ckpt", p / "checkpoints" / "despoofdiff.ckpt", p / "last.ckpt", p / "despoofdiff.ckpt"):
            if c.is_file():
                return c
        raise InputError(p, "no despoofdiff checkpoint in this folder (looked for checkpoints/last.ckpt and despoofdiff.ckpt)")
    if not p.exists():
        raise InputError(p, "checkpoint not found")
    return p


def load_module(path: str | Path, cls=None):
    """Load a despoofdiff LightningModule checkpoint (ClassifierModule by default) with clear errors."""
    from vislab.io import load_torch

    from despoofdiff.module import ClassifierModule

    cls = cls or ClassifierModule
    p = resolve_checkpoint(path)
    ck = load_torch(p, "checkpoint")
    if not isinstance(ck, dict) or "state_dict" not in ck or "hyper_parameters" not in ck:
        raise InputError(p, "not a despoofdiff checkpoint (no state_dict / hyper_parameters)")
    hp = dict(ck["hyper_parameters"])
    try:
        import inspect

        names = set(inspect.signature(cls.__init__).parameters) - {"self"}
        required = {n for n, q in inspect.signature(cls.__init__).parameters.items() if n != "self" and q.default is inspect.Parameter.empty}
        if not required <= set(hp):
            raise InputError(p, f"not a despoofdiff {cls.__name__} checkpoint (hyper-parameters lack {sorted(required - set(hp))})")
        m = cls(**{k: v for k, v in hp.items() if k in names})
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - foreign hyper-parameters
        raise InputError(p, f"checkpoint hyper-parameters do not build a {cls.__name__} ({e.__class__.__name__}: {str(e)[:160]})") from None
    try:
        m.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as e:
        raise InputError(p, f"checkpoint weights do not match the {cls.__name__} architecture ({str(e).splitlines()[0][:200]})") from None
    return m.eval()


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="despoofdiff predict",
        description="De-spoof face crops with a trained despoofdiff pipeline and score them (higher = live). "
        "Writes scores.csv, scores.json and, per image, <name>_despoof.png: image | de-spoofed image | spoof noise | depth map.",
    )
    p.add_argument("--checkpoint", required=True, help="a despoofdiff .ckpt (checkpoints/last.ckpt of a run) or a run folder")
    p.add_argument("images", nargs="+", help="aligned face crops (files or folders of images)")
    p.add_argument("--output-dir", type=Path, default=Path("despoofdiff-predictions"), help="where to write (default ./despoofdiff-predictions)")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the dev-set EER threshold stored in the checkpoint)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=None, help="override the DDIM steps K of the bridge")
    p.add_argument("--device", default=None, help="cpu / cuda (default: best available)")
    p.add_argument("--videos", action="store_true", help="treat each folder of images as one video's frames: also write videos.csv "
                   "with the video score = mean frame score (the video protocols' convention) and its decision")
    p.add_argument("--labels", type=Path, default=None, help="a list '<image> <label> [attack]' (1 live, 0 spoof; image matched by path or file "
                   "name): also report APCER/BPCER/ACER/HTER at the threshold, per frame and (with --videos) per video, in metrics.json")
    return p


def read_labels(path: Path) -> dict[str, tuple[int, str]]:
    """``<image> <label> [attack]`` lines (space, tab or comma separated; ``#`` comments) -> {image: (live, attack)}."""
    from vislab.io import require_file

    f = require_file(path, "labels list")
    out: dict[str, tuple[int, str]] = {}
    for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        parts = s.replace(",", " ").split()
        if len(parts) < 2 or parts[1] not in ("0", "1"):
            raise InputError(f, f"line {n}: expected '<image> <label 1 live / 0 spoof> [attack]', got {s!r}")
        live = int(parts[1])
        out[parts[0]] = (live, parts[2] if len(parts) > 2 else ("live" if live else "spoof"))
    if not out:
        raise InputError(f, "labels list has no entries")
    return out


def label_of(labels: dict[str, tuple[int, str]], image: Path, where: Path) -> tuple[int, str]:
    for k in (str(image), str(image.resolve()), image.name, f"{image.parent.name}/{image.name}"):
        if k in labels:
            return labels[k]
    for k, v in labels.items():
        if Path(k).expanduser().resolve() == image.resolve():
            return v
    raise InputError(where, f"no label for {image}")


def level_metrics(rows: list[dict[str, Any]], thr: float) -> dict[str, float]:
    from despoofdiff.metrics import evaluate

    return evaluate([r["score"] for r in rows], [r["label"] for r in rows], thr, [r["attack"] for r in rows])


def collect_images(args: list[str]) -> list[Path]:
    from vislab.io import IMAGE_SUFFIXES, list_images, require_file

    out: list[Path] = []
    for a in args:
        p = Path(a).expanduser()
        if p.is_dir():
            out += list_images(p)
        else:
            f = require_file(p, "image")
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f, f"not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))})")
            out.append(f)
    if not out:
        raise VislabError("no images given")
    return out


def predict_main(argv: list[str]) -> int:
    from vislab import runtime
    from vislab.io import load_image, write_json

    from despoofdiff.pictures import panel, save_png

    args = predict_parser().parse_args(argv)
    files = collect_images(args.images)
    labels = read_labels(args.labels) if args.labels is not None else None
    truth = {f: label_of(labels, f, args.labels) for f in files} if labels is not None else None
    model = load_module(args.checkpoint)
    res = int(model.hparams.resolution)
    # read every image first: a corrupt file fails before anything is written
    xs = [torch.from_numpy(load_image(f, size=res)).permute(2, 0, 1).float().div(127.5).sub(1) for f in files]
    if args.steps is not None:
        if args.steps < 1:
            raise VislabError("--steps must be >= 1")
        model.bridge.steps = int(args.steps)
    if args.batch_size < 1:
        raise VislabError("--batch-size must be >= 1")
    dev = torch.device(args.device) if args.device else runtime.device()
    model = model.to(dev)
    thr = float(model.threshold) if args.threshold is None else float(args.threshold)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(xs), args.batch_size):
        x = torch.stack(xs[i : i + args.batch_size]).to(dev)
        r = model.predict_images(x)
        for j in range(x.shape[0]):
            f = files[i + j]
            s = float(r["score"][j])
            pic = out / f"{f.stem}_despoof.png"
            save_png(panel(x[j].cpu(), r["x_g"][j].cpu(), r["noise"][j].cpu(), r["depth"][j].cpu()), pic, upscale=max(1, 128 // res))
            rows.append({"image": str(f), "score": s, "live": bool(s >= thr), "mean_abs_noise": float(r["noise"][j].abs().mean()), "picture": str(pic)})
    import csv

    from vislab.io import atomic_path

    with atomic_path(out / "scores.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    videos: list[dict[str, Any]] = []
    if args.videos:  # one folder = one video: video score = mean frame score
        groups: dict[str, list[dict[str, Any]]] = {}
        for r_ in rows:
            groups.setdefault(str(Path(r_["image"]).parent), []).append(r_)
        for v, rs in groups.items():
            sc = sum(r_["score"] for r_ in rs) / len(rs)
            videos.append({"video": v, "frames": len(rs), "score": sc, "live": bool(sc >= thr)})
        with atomic_path(out / "videos.csv") as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(videos[0]))
                w.writeheader()
                w.writerows(videos)
    result: dict[str, Any] = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "threshold": thr, "results": rows}
    if videos:
        result["videos"] = videos
    if truth is not None:
        lab = [{**r_, "label": truth[f][0], "attack": truth[f][1]} for r_, f in zip(rows, files)]
        metrics: dict[str, Any] = {"threshold": thr, "frame": level_metrics(lab, thr)}
        if args.videos:
            vl: dict[str, list[dict[str, Any]]] = {}
            for r_ in lab:
                vl.setdefault(str(Path(r_["image"]).parent), []).append(r_)
            if any(len({r_["label"] for r_ in rs}) > 1 for rs in vl.values()):
                raise InputError(args.labels, "frames of one folder (video) have different labels")
            vrows = [{"score": sum(r_["score"] for r_ in rs) / len(rs), "label": rs[0]["label"], "attack": rs[0]["attack"]} for rs in vl.values()]
            metrics["video"] = level_metrics(vrows, thr)
        result["metrics"] = metrics
        write_json(out / "metrics.json", metrics)
    write_json(out / "scores.json", result)
    for r_ in rows:
        print(f"{r_['image']}\t{r_['score']:.4f}\t{'live' if r_['live'] else 'spoof'}")
    for v in videos:
        print(f"video {v['video']}\t{v['frames']} frames\t{v['score']:.4f}\t{'live' if v['live'] else 'spoof'}")
    if truth is not None:
        for lvl, m in result["metrics"].items():
            if isinstance(m, dict):
                print(f"{lvl}: " + ", ".join(f"{k.upper()} {100 * m[k]:.2f} %" for k in ("apcer", "bpcer", "acer", "hter") if k in m))
    print(f"wrote {len(rows)} results to {out}", flush=True)
    return 0
