"""``diffspeaker animate``: speech (+ neutral mesh) -> vertex animation (.npy) and a video."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from vislab.errors import InputError, VislabError


def animate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffspeaker animate",
        description="Animate a face mesh from speech with a trained DiffSpeaker checkpoint.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a .ckpt written by `diffspeaker` training (e.g. RUN/checkpoints/last.ckpt)",
    )
    p.add_argument(
        "--audio",
        required=True,
        type=Path,
        help="speech file (.wav/.flac); stereo is averaged, other rates resampled to 16 kHz",
    )
    p.add_argument(
        "--template",
        type=Path,
        default=None,
        help="neutral mesh (.npy (V,3), .ply or .obj) with the checkpoint's vertex count "
        "(default: the template stored in the checkpoint, e.g. the synthetic face)",
    )
    p.add_argument(
        "--style", default="0", help="speaking style: index or name of a training subject (default 0)"
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=Path("."),
        help="where to write <audio stem>.npy and the video (default .)",
    )
    from vislab.cmdline import Option, add_config_options

    add_config_options(
        p,
        "diffspeaker",
        {
            "--steps": Option("sampling.steps", help="DDIM steps"),
            "--guidance": Option("sampling.guidance"),
            "--seed": Option("sampling.eval_seed", default=0, help="seed of the sampling noise"),
        },
        unset="the checkpoint's",
    )
    p.add_argument(
        "--video", choices=["mp4", "gif", "none"], default="mp4", help="video format (mp4 carries the audio)"
    )
    p.add_argument("--size", type=int, default=320, help="video frame size in pixels")
    p.add_argument("--device", default=None, help="cpu or cuda (default: best available)")
    return p


def resolve_style(style: str, styles: list[str], n_styles: int) -> int:
    if style in styles:
        return styles.index(style)
    try:
        k = int(style)
    except ValueError:
        raise VislabError(
            f"--style {style!r}: not an index or a training style ({', '.join(styles)})"
        ) from None
    if not 0 <= k < n_styles:
        raise VislabError(
            f"--style {k}: out of range, the checkpoint has {n_styles} styles ({', '.join(styles)})"
        )
    return k


def animate_main(argv: list[str]) -> int:
    args = animate_parser().parse_args(argv)
    import torch
    from vislab import runtime
    from vislab.io import atomic_path
    from vislab.run import console

    from diffspeaker.data import read_audio, read_mesh
    from diffspeaker.model import demo_frame_count
    from diffspeaker.module import load_checkpoint
    from diffspeaker.render import render_sequence, save_video

    con = console()
    module = load_checkpoint(args.checkpoint)
    g = module.geometry
    n_feats = module.model.denoiser.motion_decoder.out_features
    n_styles = module.model.denoiser.style.embedding.num_embeddings
    audio = read_audio(args.audio, resample=True, log=lambda m: con.print(f"[yellow]note[/yellow]: {m}"))
    faces = g.faces if g is not None else None
    if args.template is not None:
        tpl, tfaces = read_mesh(args.template)
        faces = (
            tfaces
            if tfaces is not None
            else (faces if faces is not None and len(tpl) * 3 == n_feats else None)
        )
    elif g is not None:
        tpl = g.template
    else:
        raise VislabError("this checkpoint stores no template mesh: pass --template")
    if tpl.size != n_feats:
        raise InputError(
            args.template or args.checkpoint,
            f"template has {len(tpl)} vertices, the checkpoint expects {n_feats // 3}",
        )
    k = resolve_style(args.style, g.styles if g is not None else [], n_styles)
    fps = g.fps if g is not None else float(module.hparams["model"].get("fps", 30.0))
    if args.steps is not None:
        module.sampling["steps"] = args.steps
    if args.guidance is not None:
        module.sampling["guidance"] = args.guidance
    dev = torch.device(args.device) if args.device else runtime.device()
    module = module.to(dev)
    wave = torch.as_tensor(audio)[None]
    lengths = torch.tensor([len(audio)])
    S = module.model.audio_encoder.feature_lengths(lengths)[0]
    T = demo_frame_count(S, fps)
    style = torch.zeros(1, n_styles)
    style[0, k] = 1
    batch = {
        "audio": wave,
        "audio_len": lengths,
        "n_frames": torch.tensor([T]),
        "style": style,
        "frame_mask": torch.ones(1, T, dtype=torch.bool),
        "template": torch.as_tensor(tpl.reshape(1, -1)),
    }
    t0 = time.perf_counter()
    with torch.no_grad():
        verts = module.generate(batch, seed=args.seed)[0].cpu().numpy().reshape(T, -1, 3).astype(np.float32)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    npy = out / f"{args.audio.stem}.npy"
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, verts)
    npy.chmod(0o644)
    con.print(
        f"{T} frames ({len(audio) / 16000:.2f} s of audio, {fps:g} fps) in {secs:.2f} s = {T / secs:.1f} frames/s "
        f"({module.sampling['steps']} DDIM steps, all frames in parallel) -> {npy}  [(T,V,3) = {verts.shape}]"
    )
    if args.video != "none":
        frames = render_sequence(verts, faces, size=args.size)
        vid = out / f"{args.audio.stem}.{args.video}"
        try:
            save_video(frames, vid, fps, audio=audio if args.video == "mp4" else None)
        except Exception as e:  # noqa: BLE001 - no ffmpeg: fall back to GIF
            vid = out / f"{args.audio.stem}.gif"
            con.print(
                f"[yellow]note[/yellow]: mp4 writing failed ({e.__class__.__name__}); writing a GIF instead"
            )
            save_video(frames, vid, fps)
        vid.chmod(0o644)
        con.print(f"video -> {vid}")
    return 0


def convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffspeaker convert",
        description="Convert an official theEricMa/DiffSpeaker checkpoint into a diffspeaker checkpoint.",
    )
    p.add_argument(
        "--official",
        required=True,
        type=Path,
        help="official .ckpt (e.g. vocaset/wav2vec2.ckpt from the authors' release)",
    )
    from vislab.cmdline import Option, add_config_options

    add_config_options(
        p,
        "diffspeaker",
        {"--dataset": Option("data.source", choices=("vocaset", "biwi"), required=True,
                             help="which dataset the checkpoint was trained on")},
    )
    p.add_argument("--out", required=True, type=Path, help="where to write the converted .ckpt")
    add_config_options(
        p,
        "diffspeaker",
        {
            "--data-root": Option(
                "data.root", type=Path,
                help="dataset folder: stores lip/upper-face regions, faces and a template for animate/eval",
            ),
            "--audio-encoder": Option(
                "audio.path", type=Path,
                help="local transformers folder whose config.json describes the backbone (unset: wav2vec2-base sizes)",
            ),
        },
        unset="none",
    )
    return p


def convert_main(argv: list[str]) -> int:
    args = convert_parser().parse_args(argv)
    from vislab.io import require_dir, require_file, save_torch
    from vislab.run import console

    from diffspeaker.data import TalkingFaceFolder
    from diffspeaker.module import CKPT_MARK, FORMAT_VERSION, from_official_checkpoint

    audio_config = None
    if args.audio_encoder is not None:
        import json

        audio_config = json.loads(
            require_file(
                require_dir(args.audio_encoder, "audio encoder folder") / "config.json", "config.json"
            ).read_text()
        )
    geometry = None
    if args.data_root is not None:
        geometry = TalkingFaceFolder(args.data_root, args.dataset, "train").geometry()
    module = from_official_checkpoint(args.official, args.dataset, audio_config, geometry)
    module.hparams["model"]["fps"] = 30.0 if args.dataset == "vocaset" else 25.0
    ck = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        CKPT_MARK: FORMAT_VERSION,
    }
    module.on_save_checkpoint(ck)
    save_torch(ck, args.out)
    console().print(f"converted {args.official} ({args.dataset}) -> {args.out}")
    return 0


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffspeaker evaluate",
        description="LVE/FDD of a checkpoint on VOCASET or BIWI (official protocol: repeated runs, mean +- 1.96 std/sqrt(n)).",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    from vislab.cmdline import Option, add_config_options

    add_config_options(
        p,
        "diffspeaker",
        {
            "--data-root": Option("data.root", type=Path, required=True, help="dataset folder in the official layout"),
            "--dataset": Option("data.source", choices=("vocaset", "biwi"), required=True),
        },
    )
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--runs", type=int, default=10, help="repeated test runs (seeds 1234, 0, 10, 20, ...)")
    add_config_options(
        p,
        "diffspeaker",
        {"--steps": Option("sampling.steps", help="DDIM steps"), "--batch-size": Option("eval.batch_size", default=8)},
        unset="the checkpoint's",
    )
    p.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    return p


def evaluate_main(argv: list[str]) -> int:
    args = evaluate_parser().parse_args(argv)
    import json

    import torch
    from vislab import runtime
    from vislab.io import write_json

    from diffspeaker.data import TalkingFaceFolder
    from diffspeaker.metrics import confidence_interval
    from diffspeaker.module import evaluate, load_checkpoint, test_seeds

    if args.runs < 1:
        raise VislabError("--runs must be >= 1")
    module = load_checkpoint(args.checkpoint)
    ds = TalkingFaceFolder(args.data_root, args.dataset, args.split)
    geometry = ds.geometry()
    n_feats = module.model.denoiser.motion_decoder.out_features
    if ds.n_feats != n_feats:
        raise InputError(
            args.data_root,
            f"dataset meshes have {ds.n_feats // 3} vertices, the checkpoint expects {n_feats // 3}",
        )
    n_styles = module.model.denoiser.style.embedding.num_embeddings
    if len(geometry.styles) != n_styles:
        raise InputError(
            args.checkpoint,
            f"checkpoint has {n_styles} styles, {args.dataset} has {len(geometry.styles)} training subjects",
        )
    module.geometry = geometry
    module = module.to(runtime.device() if torch.cuda.is_available() else torch.device("cpu"))
    runs = []
    for seed in test_seeds(args.runs):
        r = evaluate(
            module, ds, steps=args.steps, seed=seed, batch_size=args.batch_size, progress=f"seed {seed}"
        )
        runs.append({k: v for k, v in r.items() if k != "results"} | {"seed": seed})
    summary = {}
    for key in ("LVE", "LVE_weighted", "FDD", "FDD_weighted"):
        m, ci = confidence_interval([r[key] for r in runs])
        summary[key] = {"mean": m, "ci95": ci}
    out = {
        "checkpoint": str(args.checkpoint),
        "dataset": args.dataset,
        "split": args.split,
        "sequences": len(ds),
        "summary": summary,
        "runs": runs,
    }
    if args.output is not None:
        write_json(args.output, out)
    print(json.dumps(summary, indent=2))
    return 0
