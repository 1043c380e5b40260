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
    return p


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
    write_json(out / "scores.json", {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "threshold": thr, "results": rows})
    for r_ in rows:
        print(f"{r_['image']}\t{r_['score']:.4f}\t{'live' if r_['live'] else 'spoof'}")
    print(f"wrote {len(rows)} results to {out}", flush=True)
    return 0
