"""``vislab toy pretrain clip|sd [--preset default|fast] [--steps N] [--out DIR]``, ``vislab toy pack [--out DIR]``.

``vislab toy pretrain sd`` also prints the toy SD's failure modes measured by the pixel oracle
(object dropping rate, concept overfitting rate; :mod:`vislab.toy.failures`), kept in
``failure_modes.json`` beside the model.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vislab toy", description="The toy world's pretrained models.")
    sub = p.add_subparsers(dest="cmd")
    pre = sub.add_parser(
        "pretrain",
        help="pretrain the toy CLIP or the toy Stable Diffusion",
        description="Pretrain a toy model. Without --out the result goes to the cache "
        "($VISLAB_CACHE or ~/.cache/vislab, reused when it exists); with --out it is written to DIR.",
    )
    pre.add_argument("model", choices=["clip", "sd"])
    pre.add_argument("--preset", default="default", choices=["default", "fast"])
    pre.add_argument("--steps", type=int, default=None, help="training steps (CLIP steps; SD: UNet steps)")
    pre.add_argument("--vae-steps", type=int, default=None, help="SD only: VAE training steps")
    pre.add_argument("--clip", type=Path, default=None, help="SD only: the text encoder's CLIP folder (default: the cached toy CLIP)")
    pre.add_argument("--out", type=Path, default=None, help="output folder (default: the cache)")
    pre.add_argument("--no-failures", action="store_true",
                     help="SD only: skip measuring the failure modes (object dropping, concept overfitting)")
    pk = sub.add_parser(
        "pack",
        help="write the bundled default toy CLIP and SD from the pretrained cache entries",
        description="Write vislab/toy/bundled/ (safetensors + manifest.json with SHA-256 of every file) "
        "from the cached pretrained default toy CLIP and toy SD; a cache miss for those entries is then "
        "rebuilt from the bundle instead of pretrained.",
    )
    pk.add_argument("--out", type=Path, default=None, help="bundle folder (default: the package's vislab/toy/bundled)")
    return p


def failure_modes(sd_dir: Path, preset: str = "default", recompute: bool = False) -> dict:
    """The toy SD's failure modes (``vislab.toy.failures``), measured once and kept in
    ``failure_modes.json`` beside the model."""
    import json

    from vislab.io import write_json
    from vislab.run import console

    f = sd_dir / "failure_modes.json"
    if f.is_file() and not recompute:
        try:
            return json.loads(f.read_text())
        except ValueError:
            pass
    from diffusers import StableDiffusionPipeline

    from vislab.toy import failures

    log = console().print
    log("toy SD failure modes: measuring object dropping and concept overfitting with the pixel oracle")
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, safety_checker=None, requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    m = failures.measure(pipe, log=log, **failures.SIZES[preset])
    grid = sd_dir / "failure_modes.png"
    from vislab.toy import world

    d, o = m["object_dropping"], m["concept_overfitting"]
    world.save_captioned_grid(grid, __import__("torch").cat([d["_images"][:12], o["_images"][:12]]),
                              d["_prompts"][:12] + o["_prompts"][:12], ncol=6, title="toy SD failure modes")
    m = failures.public(m)
    write_json(f, m)
    return m


def pretrain(args: argparse.Namespace) -> Path:
    from vislab.toy import clip_preset, sd_preset, toy_clip, toy_sd

    if args.model == "clip":
        if args.vae_steps is not None or args.clip is not None:
            from vislab.errors import ConfigError

            raise ConfigError("--vae-steps and --clip apply to 'vislab toy pretrain sd' only")
        if args.out is None:
            return toy_clip(args.preset, steps=args.steps)
        from vislab.toy.clip_model import pretrain_clip

        pretrain_clip(clip_preset(args.preset, steps=args.steps), args.out)
        return args.out
    overrides = {"unet_steps": args.steps, "vae_steps": args.vae_steps}
    if args.clip is not None:
        from vislab.io import require_file

        require_file(args.clip / "config.json", "CLIP folder's config.json")
    if args.out is None:
        return toy_sd(args.preset, clip=args.clip, **overrides)
    from vislab.toy.sd_model import pretrain_sd

    clip_dir = args.clip if args.clip is not None else (lambda: toy_clip(args.preset))
    pretrain_sd(sd_preset(args.preset, **overrides), clip_dir, args.out)
    return args.out


def main(argv: list[str] | None = None) -> int:
    from vislab.errors import VislabError

    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    try:
        if args.cmd == "pack":
            from vislab.toy.bundle import load_manifest, pack

            out = pack(bundle_dir=args.out)
            for name, e in load_manifest(out)["entries"].items():
                size = sum(f["bytes"] for f in e["files"].values())
                print(f"{name}: {len(e['files'])} files, {size / 1e6:.1f} MB", flush=True)
            print(out)
            return 0
        out = pretrain(args)
        if args.cmd == "pretrain" and args.model == "sd" and not args.no_failures:
            from vislab.toy import failures

            print(failures.summary_line(failure_modes(Path(out), args.preset)), flush=True)
    except VislabError as e:
        if os.environ.get("VISLAB_DEBUG"):
            raise
        print(f"vislab toy: error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
