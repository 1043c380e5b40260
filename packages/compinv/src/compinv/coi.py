"""CoI, the paper's composition metric: the share of generated images in which an object
detector finds the composed object.

For each image of a prompt "<concept> and <object>" ("<object> in front of <concept>" for the barn), DETR
(``facebook/detr-resnet-50`` in the paper and the official ``utils/clip_eval.py``) runs on the image; the
image counts when a detection above the threshold (0.8) carries the object's COCO label.
CoI = (#images counted) / (#images).

The detector loads from a LOCAL folder only (``DetrForObjectDetection.save_pretrained`` layout plus the
image processor's ``preprocessor_config.json``; a folder downloaded from the Hub beforehand works). compinv
does not require timm: the ``no_timm`` revision of ``facebook/detr-resnet-50`` (a transformers ResNet
backbone, same weights) loads as is; the main revision's timm backbone needs ``pip install timm``. The toy world has no detector; its default run reports the judge-CLIP metrics only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from vislab.errors import InputError, VislabError


def composed_object(prompt: str) -> str:
    """The COCO name a composition prompt asks for: the words after " and " (or before " in front of ")."""
    p = prompt.strip().rstrip(".")
    if " in front of " in p:
        return p.split(" in front of ", 1)[0].strip()
    if " and " in p:
        return p.split(" and ", 1)[1].strip()
    raise VislabError(f"cannot find the composed object in {prompt!r} (expected '... and <object>' or '<object> in front of ...')")


class Detector:
    """DETR + its image processor from a local folder; :meth:`detect` gives per-image label sets."""

    def __init__(self, model, processor, device=None):
        self.model, self.processor = model.eval(), processor
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)
        self.id2label = {int(k): str(v) for k, v in model.config.id2label.items()}

    @torch.no_grad()
    def detect(self, images: torch.Tensor, threshold: float = 0.8) -> list[dict[str, float]]:
        """images (B, 3, H, W) in [0, 1] -> per image {label name: best score} of detections with score > threshold
        (softmax over classes without the no-object class, as DETR's post-processing)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise VislabError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        enc = self.processor(images=[x.float().cpu() for x in images], return_tensors="pt", do_rescale=False)
        out = self.model(pixel_values=enc["pixel_values"].to(self.device),
                         **({"pixel_mask": enc["pixel_mask"].to(self.device)} if "pixel_mask" in enc else {}))
        sizes = [tuple(x.shape[-2:]) for x in images]
        res = self.processor.post_process_object_detection(out, threshold=float(threshold), target_sizes=sizes)
        found = []
        for r in res:
            best: dict[str, float] = {}
            for s, lab in zip(r["scores"].tolist(), r["labels"].tolist()):
                name = self.id2label.get(int(lab), str(lab))
                best[name] = max(best.get(name, 0.0), float(s))
            found.append(best)
        return found


def load_detector(path: str | Path, device=None) -> Detector:
    """DETR from a local folder (no downloads); a bad folder is an :class:`InputError`."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(p, "detector folder not found (a local DETR folder, e.g. facebook/detr-resnet-50 saved with save_pretrained)")
    if not (p / "config.json").is_file():
        raise InputError(p, "not a transformers model folder (no config.json)")
    if not (p / "preprocessor_config.json").is_file():
        raise InputError(p, "no preprocessor_config.json (save the DETR image processor into the folder too)")
    import importlib.util
    import json

    from transformers import AutoImageProcessor, DetrForObjectDetection

    try:
        bb = (json.loads((p / "config.json").read_text()).get("backbone_config") or {}).get("model_type")
    except ValueError:
        raise InputError(p / "config.json", "unreadable model config") from None
    if (bb == "timm_backbone" or bb is None) and importlib.util.find_spec("timm") is None:
        raise InputError(p, "this DETR uses a timm backbone and timm is not installed: install timm, or use the "
                            "transformers-backbone revision (facebook/detr-resnet-50, revision 'no_timm')")
    try:
        model = DetrForObjectDetection.from_pretrained(str(p), local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds
        raise InputError(p, f"cannot load DETR from this folder ({e.__class__.__name__}: {str(e)[:200]})") from None
    return Detector(model, processor, device)


def coi_hits(detections: list[dict[str, float]], objects: list[str]) -> list[bool]:
    """Per image: was its composed object (case-insensitive COCO name) detected?"""
    if len(detections) != len(objects):
        raise VislabError(f"{len(detections)} detections for {len(objects)} objects")
    return [o.strip().lower() in {k.lower() for k in d} for d, o in zip(detections, objects)]


def coi_score(detector: Detector, images: torch.Tensor, objects: list[str], threshold: float = 0.8,
              batch_size: int = 8) -> tuple[float, list[bool]]:
    """CoI of ``images`` whose prompts composed ``objects`` (one per image): (share detected, per-image hits)."""
    if len(images) == 0:
        raise VislabError("CoI of no images")
    dets: list[dict[str, float]] = []
    for i in range(0, len(images), batch_size):
        dets += detector.detect(images[i:i + batch_size], threshold)
    hits = coi_hits(dets, objects)
    return sum(hits) / len(hits), hits
