"""``cfpl predict --checkpoint CKPT IMAGES...``: live/spoof score per face image, printed and written to CSV."""

from __future__ import annotations

import argparse
import csv
import io


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cfpl predict",
        description="Score face images with a trained CFPL checkpoint: P(live) and the live/spoof decision per image.",
    )
    p.add_argument("images", nargs="+", help="image files or folders of images (face crops, or use --box / --cascade)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `cfpl train` (e.g. RUN/checkpoints/last.ckpt)")
    p.add_argument("--out", default="cfpl_predictions.csv", help="CSV to write (default cfpl_predictions.csv)")
    p.add_argument("--threshold", type=float, default=None,
                   help="P(live) threshold for the decision (default: the checkpoint's threshold, the EER threshold of the "
                        "source dev split; 0.5 for a checkpoint without one)")
    p.add_argument("--box", default=None, help="face box x0,y0,x1,y1 in pixels applied to every image (crop before scoring)")
    p.add_argument("--detect", action="store_true", help="detect the largest face (scikit-image's bundled LBP cascade) and crop it with a 20%% margin")
    p.add_argument("--cascade", default=None, help="a local OpenCV Haar-cascade XML: detect the largest face and crop it (20%% margin)")
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

    from cfpl.build import load_checkpoint, to_device

    # read every image first: a corrupt file fails before anything is written
    files, crops, notes = load_faces(args.images, args.box, args.detect, args.cascade)
    model, meta = load_checkpoint(args.checkpoint, clip_path=args.clip)
    if args.threshold is not None:
        threshold, rule = args.threshold, "given with --threshold"
    elif "threshold" in meta:
        threshold, rule = float(meta["threshold"]), str(meta.get("threshold_rule", "stored with the checkpoint"))
    else:
        threshold, rule = 0.5, "0.5 (the checkpoint stores no threshold)"
    print(f"threshold {threshold:.4f}: {rule}")
    size = int(model.clip.image_size)
    dev = to_device(model, args.device)
    from cfpl.data import resize

    scores: list[float] = []
    with torch.no_grad():
        for i in range(0, len(crops), args.batch_size):
            x = torch.stack([resize(c, size) for c in crops[i : i + args.batch_size]]).to(dev)
            scores.extend(model.live_score(x).float().cpu().tolist())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "p_live", "p_spoof", "decision", "threshold", "threshold_rule", "crop"])
    for f, s, n in zip(files, scores, notes):
        dec = "live" if s >= threshold else "spoof"
        w.writerow([str(f), f"{s:.6f}", f"{1 - s:.6f}", dec, f"{threshold:.6f}", rule, n])
        print(f"{f}\tP(live)={s:.4f}\t{dec}")
    with atomic_path(args.out) as tmp:
        tmp.write_text(buf.getvalue())
    print(f"wrote {args.out}")
    return 0
