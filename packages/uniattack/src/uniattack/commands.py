"""``uniattack predict --checkpoint CKPT IMAGES...``: live/attack score and the most likely attack family per image, plus a CSV."""

from __future__ import annotations

import argparse
import csv
import io

FAMILIES = ("live", "physical", "adversarial", "digital")


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uniattack predict",
                                description="Score face images with a trained UniAttack checkpoint: P(attack), decision and attack family.")
    p.add_argument("images", nargs="+", help="image files or folders of images (face crops, or use --box)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `uniattack` training (RUN/checkpoints/last.ckpt)")
    p.add_argument("--out", default="uniattack_predictions.csv", help="CSV to write (default uniattack_predictions.csv)")
    p.add_argument("--threshold", type=float, default=None, help="P(live) threshold (default: the dev EER threshold stored in the checkpoint, else 0.5)")
    p.add_argument("--box", default=None, help="face box x0,y0,x1,y1 in pixels, applied to every image")
    p.add_argument("--detect", action="store_true", help="detect the largest face (scikit-image's bundled LBP cascade) and crop it with a 20%% margin")
    p.add_argument("--clip", default=None, help="replace the CLIP location recorded in the checkpoint (local HF folder)")
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
    with atomic_path(args.out) as tmp:
        tmp.write_text(buf.getvalue())
    print(f"wrote {args.out}")
    return 0
