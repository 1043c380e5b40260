"""``pvlr predict --checkpoint CKPT IMAGES...``: labels above a threshold with their scores."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from vislab.errors import InputError
from vislab.io import load_image, require_file


def load_module(checkpoint: str | Path):
    """A trained :class:`PVLRModule` from a Lightning checkpoint, with a clear error for a foreign file."""
    from pvlr.module import PVLRModule

    ckpt = require_file(checkpoint, "checkpoint")
    try:
        return PVLRModule.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    except (KeyError, TypeError, RuntimeError, EOFError, ValueError) as e:
        raise InputError(ckpt, f"not a pvlr checkpoint ({e.__class__.__name__}: {(str(e).splitlines() or ['empty file'])[0][:160]})") from None
    except Exception as e:  # noqa: BLE001 - unpickling errors of arbitrary files
        if e.__class__.__name__ in ("UnpicklingError", "PicklingError"):
            raise InputError(ckpt, "not a checkpoint file (cannot unpickle)") from None
        raise


def load(run_dir: str | Path, checkpoint: str = "last.ckpt"):
    """The trained :class:`PVLRModule` of a ``pvlr`` output folder (``checkpoints/<checkpoint>``), eval mode, CPU.

    The checkpoint holds every weight and the CLIP's architecture, so neither the original CLIP files nor
    the toy cache are needed, and nothing is trained."""
    from vislab.io import require_dir

    return load_module(require_dir(run_dir, "pvlr run folder") / "checkpoints" / checkpoint)


def predict_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pvlr predict", description="Multi-label predictions for images.")
    p.add_argument("--checkpoint", required=True, help="a pvlr Lightning checkpoint (e.g. runs/pvlr/.../checkpoints/last.ckpt)")
    p.add_argument("images", nargs="+", help="image files")
    from vislab.cmdline import add_config_options, apply_overrides, config_overrides, trained_config

    add_config_options(p, "pvlr", {"--threshold": "threshold"}, unset="the run's threshold, beside the checkpoint")
    p.add_argument("--csv", type=Path, default=None, help="also write image,label,score rows here")
    from vislab.runtime import add_device_argument, pick_device

    add_device_argument(p)
    args = p.parse_args(argv)
    dev = pick_device(args.device)
    module = load_module(args.checkpoint).to(dev)
    threshold = float(apply_overrides(trained_config(args.checkpoint, "pvlr"), config_overrides(args))["threshold"])
    size = int(module.hparams.model.get("image_size", 224))
    names = module.hparams.classnames
    imgs = torch.stack([torch.from_numpy(load_image(f, size=size)).permute(2, 0, 1).float() / 255 for f in args.images])
    with torch.no_grad():
        scores = torch.sigmoid(module(imgs.to(dev)).float()).cpu()
    rows = []
    for f, s in zip(args.images, scores):
        picked = [(names[k], float(s[k])) for k in torch.argsort(s, descending=True) if s[k] >= threshold]
        text = ", ".join(f"{n} {v:.2f}" for n, v in picked) or f"(nothing above {threshold}; best: {names[int(s.argmax())]} {float(s.max()):.2f})"
        sys.stdout.write(f"{f}: {text}\n")
        rows += [(f, n, f"{v:.4f}") for n, v in picked]
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "label", "score"])
            w.writerows(rows)
    return 0
