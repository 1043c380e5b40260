"""``cfpl predict --checkpoint CKPT IMAGES...``: live/spoof score per face image, printed and written to CSV."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
from vislab.errors import InputError, VislabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cfpl predict",
        description="Score face images with a trained CFPL checkpoint: P(live) and the live/spoof decision per image.",
    )
    p.add_argument("images", nargs="+", help="image files or folders of images (face crops, or use --box / --cascade)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `cfpl train` (e.g. RUN/checkpoints/last.ckpt)")
    p.add_argument("--out", default="cfpl_predictions.csv", help="CSV to write (default cfpl_predictions.csv)")
    p.add_argument("--threshold", type=float, default=None,
                   help="P(live) threshold for the decision (default: the EER threshold stored with the checkpoint, else 0.5)")
    p.add_argument("--box", default=None, help="face box x0,y0,x1,y1 in pixels applied to every image (crop before scoring)")
    p.add_argument("--detect", action="store_true", help="detect the largest face (scikit-image's bundled LBP cascade) and crop it with a 20%% margin")
    p.add_argument("--cascade", default=None, help="a local OpenCV Haar-cascade XML: detect the largest face and crop it (20%% margin)")
    p.add_argument("--clip", default=None, help="replace the CLIP location recorded in the checkpoint (local HF folder)")
    p.add_argument("--batch-size", type=int, default=32)
    return p


def expand_images(items: list[str]) -> list[Path]:
    files: list[Path] = []
    for it in items:
        p = Path(it).expanduser()
        if p.is_dir():
            from vislab.io import list_images

            files.extend(list_images(p))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(p, "image not found")
    return files


def parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise VislabError(f"--box must be x0,y0,x1,y1, got {text!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise VislabError(f"--box {text!r} is empty (x1 <= x0 or y1 <= y0)")
    return x0, y0, x1, y1


def crop(img: np.ndarray, box: tuple[int, int, int, int], path: Path) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError(path, f"face box {box} lies outside the {w}x{h} image")
    return img[y0:y1, x0:x1]


class CascadeDetector:
    """Largest face from an OpenCV Haar cascade (a local XML file), box enlarged by 20 %."""

    def __init__(self, xml: str):
        import cv2
        from vislab.io import require_file

        p = require_file(xml, "cascade XML")
        self.det = cv2.CascadeClassifier(str(p))
        if self.det.empty():
            raise InputError(p, "not an OpenCV cascade classifier XML")

    def __call__(self, img: np.ndarray) -> tuple[int, int, int, int] | None:
        import cv2

        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        faces = self.det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4)
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        m = 0.2
        return int(x - m * w), int(y - m * h), int(x + (1 + m) * w), int(y + (1 + m) * h)


def predict_main(argv: list[str]) -> int:
    args = predict_parser().parse_args(argv)
    import torch
    from vislab.io import atomic_path, load_image

    from cfpl.build import load_checkpoint, to_device

    files = expand_images(args.images)
    box = parse_box(args.box) if args.box else None
    det = CascadeDetector(args.cascade) if args.cascade else None
    model, meta = load_checkpoint(args.checkpoint, clip_path=args.clip)
    threshold = args.threshold if args.threshold is not None else float(meta.get("threshold", 0.5))
    size = int(model.clip.image_size)
    dev = to_device(model)
    # read every image first: a corrupt file fails before anything is written
    crops, notes = [], []
    for f in files:
        img = load_image(f)
        note = ""
        if box is not None:
            img = crop(img, box, f)
            note = "box"
        elif args.detect:
            from vislab.faces.readers import crop_box, detect_face

            b = detect_face(img)
            if b is None:
                note = "no face detected: whole image"
            else:
                img, note = crop_box(img, b, 0.2), "detected"
        elif det is not None:
            b = det(img)
            if b is None:
                note = "no face detected: whole image"
            else:
                img, note = crop(img, b, f), "cascade"
        crops.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255.0)
        notes.append(note)
    from cfpl.data import resize

    scores: list[float] = []
    with torch.no_grad():
        for i in range(0, len(crops), args.batch_size):
            x = torch.stack([resize(c, size) for c in crops[i : i + args.batch_size]]).to(dev)
            scores.extend(model.live_score(x).float().cpu().tolist())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "p_live", "p_spoof", "decision", "threshold", "crop"])
    for f, s, n in zip(files, scores, notes):
        dec = "live" if s >= threshold else "spoof"
        w.writerow([str(f), f"{s:.6f}", f"{1 - s:.6f}", dec, f"{threshold:.6f}", n])
        print(f"{f}\tP(live)={s:.4f}\t{dec}")
    with atomic_path(args.out) as tmp:
        tmp.write_text(buf.getvalue())
    print(f"wrote {args.out}")
    return 0
