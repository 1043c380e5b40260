"""``uniattack predict --checkpoint CKPT IMAGES...``: live/attack score and the most likely attack family per image, plus a CSV."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

FAMILIES = ("live", "physical", "adversarial", "digital")


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uniattack predict",
                                description="Score face images with a trained UniAttack checkpoint: P(attack), decision and attack family.")
    p.add_argument("images", nargs="+", help="image files or folders of images (face crops, or use --box)")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint written by `uniattack` training (RUN/checkpoints/best.ckpt: lowest dev ACER; last.ckpt: end of training)")
    p.add_argument("--out", default="uniattack_predictions.csv", help="CSV to write (default uniattack_predictions.csv)")
    p.add_argument("--threshold", type=float, default=None, help="P(live) threshold (default: the dev EER threshold stored in the checkpoint, else 0.5)")
    p.add_argument("--box", default=None, help="face box x0,y0,x1,y1 in pixels, applied to every image")
    p.add_argument("--detect", action="store_true", help="detect the largest face (scikit-image's bundled LBP cascade) and crop it with a 20%% margin")
    p.add_argument("--clip", default=None, help="replace the CLIP location recorded in the checkpoint (local HF folder)")
    p.add_argument("--per-video", action="store_true",
                   help="video-level scores: the images of each folder are the frames of one video; their scores are averaged "
                        "(threshold: the checkpoint's video-level dev EER threshold) and written to <out>_videos.csv")
    p.add_argument("--batch-size", type=int, default=32)
    from vislab.runtime import add_device_argument

    add_device_argument(p)
    return p


def predict_main(argv: list[str]) -> int:
    args = predict_parser().parse_args(argv)
    import torch
    from vislab.faces.inputs import load_faces
    from vislab.io import atomic_path
    from vislab.runtime import pick_device

    from uniattack.build import load_checkpoint
    from uniattack.data import resize

    # decode everything first: a bad file fails before anything is written
    files, crops, _ = load_faces(args.images, args.box, args.detect)
    model, meta = load_checkpoint(args.checkpoint, clip_path=args.clip)
    thr = args.threshold if args.threshold is not None else float(meta.get("threshold", 0.5))
    thr_video = args.threshold if args.threshold is not None else float(meta.get("threshold_video", meta.get("threshold", 0.5)))
    dev = pick_device(args.device)
    model.to(dev)
    size = int(model.clip.image_size)
    imgs = [resize(c, size) for c in crops]
    rows = []
    with torch.no_grad():
        for i in range(0, len(imgs), args.batch_size):
            s = model.scores(torch.stack(imgs[i : i + args.batch_size]).to(dev))
            for pl_, pf in zip(s["p_live"].cpu().tolist(), s["p_family"].cpu().tolist()):
                rows.append((pl_, pf))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "p_attack", "p_live", "decision", "attack_family", *[f"p_family_{n}" for n in FAMILIES], "threshold"])
    for f, (p_live, pf) in zip(files, rows):
        decision = "live" if p_live >= thr else "attack"
        family = FAMILIES[1 + max(range(3), key=lambda k: pf[1 + k])]
        w.writerow([str(f), f"{1 - p_live:.6f}", f"{p_live:.6f}", decision, family, *[f"{v:.6f}" for v in pf], f"{thr:.6f}"])
        print(f"{f}\tP(attack)={1 - p_live:.4f}\t{decision}\tmost likely attack family: {family}")
    video_csv = None
    if args.per_video:  # frames grouped by folder, scores averaged per video
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(files):
            groups.setdefault(str(Path(f).parent), []).append(i)
        vbuf = io.StringIO()
        vw = csv.writer(vbuf)
        vw.writerow(["video", "frames", "p_attack", "p_live", "decision", "attack_family", *[f"p_family_{n}" for n in FAMILIES], "threshold"])
        for video, idx in groups.items():
            p_live = sum(rows[i][0] for i in idx) / len(idx)
            pf = [sum(rows[i][1][k] for i in idx) / len(idx) for k in range(len(FAMILIES))]
            decision = "live" if p_live >= thr_video else "attack"
            family = FAMILIES[1 + max(range(3), key=lambda k: pf[1 + k])]
            vw.writerow([video, len(idx), f"{1 - p_live:.6f}", f"{p_live:.6f}", decision, family, *[f"{v:.6f}" for v in pf], f"{thr_video:.6f}"])
            print(f"video {video} ({len(idx)} frames)\tP(attack)={1 - p_live:.4f}\t{decision}\tmost likely attack family: {family}")
        out = Path(args.out)
        video_csv = out.with_name(f"{out.stem}_videos{out.suffix or '.csv'}")
    with atomic_path(args.out) as tmp:
        tmp.write_text(buf.getvalue())
    print(f"wrote {args.out}")
    if video_csv is not None:
        with atomic_path(video_csv) as tmp:
            tmp.write_text(vbuf.getvalue())
        print(f"wrote {video_csv}")
    return 0
