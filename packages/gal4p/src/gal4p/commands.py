"""``gal4p generate``: sample a personalised model into an image grid."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch


def generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gal4p generate", description="Generate images with a gal4p personalised model "
                                "(a run's model/ folder or rounds/<r>/model) and write an image grid.")
    p.add_argument("--model", required=True, type=Path, help="personalised model folder (holds gal4p_model.json)")
    p.add_argument("--prompt", required=True, action="append", help="prompt (repeatable), e.g. 'a sks star on the left'")
    p.add_argument("-n", "--num-images", type=int, default=4, help="images per prompt (default 4)")
    p.add_argument("--base", type=Path, default=None, help="base Stable Diffusion folder (default: the one recorded in the model)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--scheduler", default="default", help="default | dpm | ddim | ddpm | pndm")
    p.add_argument("--seed", type=int, default=8888)
    p.add_argument("--resolution", type=int, default=None, help="default: the model's native size")
    p.add_argument("--output", type=Path, default=None, help="grid PNG (default generated/<prompt>.png)")
    from vislab.runtime import add_device_argument

    add_device_argument(p)
    return p


def generate_main(argv: list[str]) -> int:
    args = generate_parser().parse_args(argv)
    from vislab.errors import VislabError
    from vislab.run import console
    from vislab.runtime import pick_device

    from gal4p.data import save_png
    from gal4p.learner import load_personalized
    from gal4p.query import generate

    if args.num_images < 1:
        raise VislabError("-n must be at least 1")
    sd, info = load_personalized(args.model, args.base, device=pick_device(args.device))
    g = torch.Generator().manual_seed(args.seed)
    imgs = generate(sd, args.prompt, args.num_images, args.steps, args.guidance, g, args.scheduler, args.resolution)
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", args.prompt[0]).strip("_")[:60] or "images"
    out = args.output or Path("generated") / f"{slug}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    from vislab.toy.world import save_captioned_grid

    caps = [p for p in args.prompt for _ in range(args.num_images)]
    save_captioned_grid(out, torch.nn.functional.interpolate(imgs, size=max(64, imgs.shape[-1]), mode="nearest"), caps,
                        ncol=min(8, args.num_images), title=f"gal4p {info.get('learner')} round {info.get('round', '?')}")
    for i, x in enumerate(imgs):
        save_png(out.with_name(f"{out.stem}_{i:03d}.png"), x)
    console().print(f"wrote {out} ({len(imgs)} images)")
    return 0
