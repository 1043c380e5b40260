"""``incantations learn --model DIR --prompt "..."``: learn one prompt, print it, write images and attention maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def learn_main(argv: list[str]) -> int:
    from vislab import runtime

    from incantations.pipeline import attention_maps, load_models, run_prompt
    from incantations.plots import save_attention, save_prompt_panel
    from incantations.train import check_held_out

    p = argparse.ArgumentParser(prog="incantations learn", description="Learn an incantation for one prompt.")
    p.add_argument("--model", default="toy", help="a local diffusers SD folder, or 'toy' (the toy SD)")
    p.add_argument("--guidance-clip", default=None, help="local HF CLIP folder for guidance (default: toy CLIP for the toy SD)")
    p.add_argument("--judge-clip", default=None, help="local HF CLIP folder for judging (default: a second toy CLIP)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", type=Path, default=Path("incantations_out"))
    p.add_argument("--preset", default="default")
    p.add_argument("--config", type=Path, default=None, help="YAML merged over the preset")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="sampling seeds of the before/after images (held out: not the probe seed or learn.select_seeds)")
    runtime.add_device_argument(p)
    args, rest = p.parse_known_args(argv)
    from vislab.errors import InputError
    from vislab.run import resolve_config

    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "--out is an existing file, not a folder")
    if (args.out / "incantation.txt").is_file():
        raise InputError(args.out, "--out already holds a learned incantation; choose another folder")
    device = runtime.pick_device(args.device)
    cfg = resolve_config("incantations", args.preset, args.config, rest)  # typed schema: bad values refused before loading
    cfg["model"]["sd"] = args.model
    if args.guidance_clip:
        cfg["model"]["guidance_clip"] = args.guidance_clip
    if args.judge_clip:
        cfg["model"]["judge_clip"] = args.judge_clip
    runtime.setup(int(cfg["seed"]))
    frozen, judge = load_models(cfg["model"], device)
    seeds = args.seeds or [int(s) for s in cfg["eval"]["seeds"]]
    check_held_out(cfg, seeds)
    res = run_prompt(frozen, args.prompt, cfg, seeds)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_prompt_panel(out / "before_after.png", res, seeds)
    words = args.prompt.rstrip(".").split()
    positions = list(range(1, 1 + len(words)))
    s = cfg["sampling"]
    with torch.no_grad():
        emb, _ = frozen.embed(args.prompt, None, 0)
        before = attention_maps(frozen, frozen.H(emb), seeds[0], s["steps"], s["cfg"], positions)
        after = attention_maps(frozen, res.learner.prompt_embeds(), seeds[0], s["steps"], s["cfg"], positions)
    save_attention(out / "attention.png", before, after, words)
    (out / "incantation.txt").write_text(res.learner.text() + "\n")
    from safetensors.torch import save_file

    save_file({"prompt_embeds": res.learner.prompt_embeds()[:1].cpu().contiguous()}, str(out / "prompt_embeds.safetensors"))
    sys.stdout.write(res.learner.text() + "\n")
    print(f"images and attention maps in {out}", file=sys.stderr)
    return 0


def calibrate_main(argv: list[str]) -> int:
    """``incantations calibrate``: choose ``guidance.threshold`` on calibration prompts and seeds disjoint from the
    evaluation (toy SD only: the labels come from the toy world's pixel oracle)."""
    import json

    from vislab import runtime
    from vislab.errors import ConfigError

    from incantations.calibrate import CALIBRATION_SEEDS, calibrate
    from incantations.pipeline import load_models
    from incantations.train import load_prompt_set

    p = argparse.ArgumentParser(prog="incantations calibrate",
                                description="Calibrate the absolute grounding threshold on prompts and seeds disjoint from the evaluation.")
    p.add_argument("--preset", default="default")
    p.add_argument("--config", type=Path, default=None, help="YAML merged over the preset")
    p.add_argument("--prompts", type=int, default=24, help="number of calibration prompts (two-object toy prompts)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(CALIBRATION_SEEDS))
    p.add_argument("--out", type=Path, default=None, help="write the result (threshold, J, per-unit rows) as JSON")
    runtime.add_device_argument(p)
    args, rest = p.parse_known_args(argv)
    from vislab.run import resolve_config

    cfg = resolve_config("incantations", args.preset, args.config, rest)
    if cfg["model"]["sd"] != "toy":
        raise ConfigError("incantations calibrate labels units with the toy world's oracle: it needs model.sd: toy "
                          "(for a real SD use guidance.threshold: null, the relative rule)")
    runtime.setup(int(cfg["seed"]))
    frozen, _ = load_models(cfg["model"], runtime.pick_device(args.device))
    exclude = {r["prompt"] for r in load_prompt_set({**cfg, "prompts": {**cfg["prompts"], "limit": None}})}
    res = calibrate(frozen, cfg, exclude, args.prompts, tuple(args.seeds))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))
    print(f"threshold {res['threshold']:.4f}  (Youden J {res['youden_j']:.3f}, TPR absent {res['tpr_absent']:.2f}, "
          f"FPR present {res['fpr_present']:.2f}, AUC {res['auc']:.3f}; {res['units']} units, {res['absent']} absent)")
    return 0
