"""CoI (share of images where DETR detects the composed object) with a tiny random DETR and a forced output."""

from __future__ import annotations

import pytest
import torch
from vislab.errors import InputError, VislabError


def test_composed_object():
    from compinv.coi import composed_object

    assert composed_object("<cute-cat> cat and backpack") == "backpack"
    assert composed_object("teddy bear in front of <brown-barn> barn") == "teddy bear"
    with pytest.raises(VislabError):
        composed_object("a <cute-cat> cat")


def test_tiny_detr_loads_from_a_local_folder_and_detects(tiny_detr):
    from compinv.coi import load_detector

    det = load_detector(tiny_detr)
    assert det.id2label[0] == "person" and len(det.id2label) == 80
    out = det.detect(torch.rand(3, 3, 32, 32), threshold=0.0)  # random weights: every query passes threshold 0
    assert len(out) == 3 and all(d and all(n in det.id2label.values() for n in d) for d in out)
    assert det.detect(torch.rand(2, 3, 32, 32), threshold=1.0) == [{}, {}]


def test_coi_is_the_share_of_images_with_the_object_above_threshold(tiny_detr):
    from compinv.coi import coi_score, load_detector
    from transformers.models.detr.modeling_detr import DetrObjectDetectionOutput

    det = load_detector(tiny_detr)
    bicycle, person = 1, 0
    n_cls = len(det.id2label) + 1  # + no-object

    def forced(pixel_values, pixel_mask=None):
        b = pixel_values.shape[0]
        logits = torch.full((b, 10, n_cls), -10.0)
        logits[:, :, -1] = 10.0  # every query "no object" ...
        for img, query, cls, val in ((0, 0, bicycle, 10.0),  # ... except: image 0 holds a sure bicycle
                                     (1, 0, person, 10.0),  # image 1 a sure person only
                                     (2, 0, bicycle, 1.0),  # image 2 a bicycle at 0.5 < 0.8 (tie with no-object)
                                     (3, 3, bicycle, 10.0)):  # image 3 a sure bicycle on another query
            logits[img, query, cls] = val
            logits[img, query, -1] = 1.0 if val == 1.0 else -10.0
        return DetrObjectDetectionOutput(logits=logits, pred_boxes=torch.full((b, 10, 4), 0.5))

    det.model.forward = forced
    score, hits = coi_score(det, torch.rand(4, 3, 32, 32), ["bicycle", "bicycle", "bicycle", "Bicycle"], 0.8, batch_size=4)
    assert hits == [True, False, False, True] and score == pytest.approx(0.5)
    score, hits = coi_score(det, torch.rand(4, 3, 32, 32), ["bicycle", "bicycle", "bicycle", "Bicycle"], 0.4, batch_size=4)
    assert hits == [True, False, True, True] and score == pytest.approx(0.75)


def test_bad_detector_folder(tmp_path, tiny_detr):
    import shutil

    from compinv.coi import load_detector

    with pytest.raises(InputError, match="not found"):
        load_detector(tmp_path / "nodetr")
    half = tmp_path / "half"
    shutil.copytree(tiny_detr, half)
    (half / "preprocessor_config.json").unlink()
    with pytest.raises(InputError, match="preprocessor_config"):
        load_detector(half)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_detr, broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot load DETR"):
        load_detector(broken)
