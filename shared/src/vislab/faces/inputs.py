"""Reading a user's face images for a predict command: files or folders, an optional fixed box or a face
detector (scikit-image's bundled LBP cascade, or a local OpenCV Haar cascade), all decoded before any output
is written so a bad file fails first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vislab.errors import InputError, VislabError
from vislab.io import list_images, load_image, require_file


def expand_images(items: list[str]) -> list[Path]:
    """Image files from a mix of files and folders (folders: their images, sorted)."""
    files: list[Path] = []
    for it in items:
        p = Path(it).expanduser()
        if p.is_dir():
            files.extend(list_images(p))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(p, "image not found")
    return files


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` -> an integer pixel box."""
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise VislabError(f"--box must be x0,y0,x1,y1, got {text!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise VislabError(f"--box {text!r} is empty (x1 <= x0 or y1 <= y0)")
    return x0, y0, x1, y1


def crop(img: np.ndarray, box: tuple[int, int, int, int], path: Path) -> np.ndarray:
    """``img`` (H, W, C) cut to ``box`` clipped to the image; a box outside the image names the file."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError(path, f"face box {box} lies outside the {w}x{h} image")
    return img[y0:y1, x0:x1]


class CascadeDetector:
    """Largest face from an OpenCV Haar cascade (a local XML file), box enlarged by 20 %."""

    def __init__(self, xml: str):
        import cv2

        p = require_file(xml, "cascade XML")
        self.det = cv2.CascadeClassifier(str(p))
        if self.det.empty():
            raise InputError(p, "not an OpenCV cascade classifier XML")

    def __call__(self, img: np.ndarray) -> tuple[int, int, int, int] | None:
        import cv2

        faces = self.det.detectMultiScale(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), scaleFactor=1.1, minNeighbors=4)
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        m = 0.2
        return int(x - m * w), int(y - m * h), int(x + (1 + m) * w), int(y + (1 + m) * h)


def load_faces(items: list[str], box: str | None = None, detect: bool = False,
               cascade: str | None = None) -> tuple[list[Path], list[torch.Tensor], list[str]]:
    """Files, face crops (3, h, w) float in [0, 1] and a note per image saying how it was cropped
    (``box``, ``detected``, ``cascade``, ``no face detected: whole image`` or empty)."""
    from vislab.faces.readers import crop_box, detect_face

    files = expand_images(items)
    fixed = parse_box(box) if box else None
    det = CascadeDetector(cascade) if cascade else None
    crops, notes = [], []
    for f in files:
        img = load_image(f)
        note = ""
        if fixed is not None:
            img, note = crop(img, fixed, f), "box"
        elif detect or det is not None:
            b = detect_face(img) if detect else det(img)
            if b is None:
                note = "no face detected: whole image"
            elif detect:
                img, note = crop_box(img, b, 0.2), "detected"
            else:
                img, note = crop(img, b, f), "cascade"
        crops.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0)
        notes.append(note)
    return files, crops, notes
