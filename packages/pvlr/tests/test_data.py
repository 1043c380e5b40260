"""Dataset readers on small fixtures written in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pvlr.data import MultiLabelDataModule, read_coco, read_generic, read_nus_wide, read_voc
from vislab.errors import InputError, VislabError


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_coco_maps_sparse_ids_and_drops_unannotated(tmp_path):
    (tmp_path / "annotations").mkdir()
    data = {"categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}],
            "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
            "annotations": [{"image_id": 1, "category_id": 90}, {"image_id": 1, "category_id": 1}]}
    (tmp_path / "annotations" / "instances_val2014.json").write_text(json.dumps(data))
    paths, t, names = read_coco(tmp_path, "val")
    assert names == ["person", "toothbrush"] and len(paths) == 1 and t.tolist() == [[1, 1]]


def test_voc_difficult_only_is_ignored(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2007"
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "Annotations").mkdir()
    (base / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    (base / "Annotations" / "000001.xml").write_text(
        "<annotation><object><name>dog</name><difficult>0</difficult></object>"
        "<object><name>cat</name><difficult>1</difficult></object></annotation>")
    _, t, names = read_voc(tmp_path, "test")
    assert t[0, names.index("dog")] == 1 and t[0, names.index("cat")] == -1 and t[0, names.index("bus")] == 0


def test_nus_wide_and_generic(tmp_path):
    (tmp_path / "ImageList").mkdir()
    (tmp_path / "TrainTestLabels").mkdir()
    (tmp_path / "Concepts81.txt").write_text("sky\nwater\n")
    (tmp_path / "ImageList" / "TestImagelist.txt").write_text("a\\1.jpg\nb\\2.jpg\n")
    (tmp_path / "TrainTestLabels" / "Labels_sky_Test.txt").write_text("1\n0\n")
    (tmp_path / "TrainTestLabels" / "Labels_water_Test.txt").write_text("0\n")
    with pytest.raises(InputError, match="has 1 labels but the image list has 2"):
        read_nus_wide(tmp_path, "test")
    (tmp_path / "TrainTestLabels" / "Labels_water_Test.txt").write_text("0\n1\n")
    paths, t, names = read_nus_wide(tmp_path, "test")
    assert paths[0].as_posix().endswith("Flickr/a/1.jpg") and t.tolist() == [[1, 0], [0, 1]]

    g = tmp_path / "g"
    g.mkdir()
    (g / "classes.txt").write_text("cat\ndog\n")
    (g / "labels.csv").write_text("image,labels,split\nx.png,cat;dog,train\ny.png,cat,val\n")
    _img(g / "x.png")
    _img(g / "y.png")
    dm = MultiLabelDataModule("generic", str(g), image_size=16)
    assert dm.classnames == ["cat", "dog"] and len(dm.train_set) == 1
    x, y = dm.train_set[0]
    assert x.shape == (3, 16, 16) and y.tolist() == [1, 1]
    (g / "labels.csv").write_text("image,labels,split\nx.png,bird,train\n")
    with pytest.raises(InputError, match="unknown class 'bird'"):
        read_generic(g, "train")
    (g / "labels.csv").write_text("image,labels,split\n")
    with pytest.raises(VislabError, match="empty"):
        MultiLabelDataModule("generic", str(g), image_size=16)
