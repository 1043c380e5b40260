"""Replica trees of the real datasets: tiny images, exactly the published folder and file layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vislab.testing.models import tiny_clip_dir  # noqa: F401 (fixture)


def _jpg(path: Path, seed: int, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(path, "JPEG")


def coco2014_replica(root: Path) -> Path:
    """MS-COCO 2014 as unpacked from cocodataset.org/#download (``annotations_trainval2014.zip``,
    ``train2014.zip``, ``val2014.zip``): ``annotations/instances_{train,val}2014.json`` (keys info, licenses,
    images, annotations, categories; category ids are the sparse 1..90), images
    ``{train,val}2014/COCO_{split}2014_<12-digit id>.jpg``. One image per split has no annotation (dropped)."""
    cats = [{"supercategory": "person", "id": 1, "name": "person"}, {"supercategory": "vehicle", "id": 3, "name": "car"},
            {"supercategory": "animal", "id": 18, "name": "dog"}, {"supercategory": "indoor", "id": 90, "name": "toothbrush"}]
    for split, ids in (("train", [9, 25, 30, 34, 36, 42]), ("val", [139, 285, 632, 724])):
        images, anns = [], []
        for n, i in enumerate(ids):
            name = f"COCO_{split}2014_{i:012d}.jpg"
            _jpg(root / f"{split}2014" / name, i)
            images.append({"license": 1, "file_name": name, "coco_url": f"http://images.cocodataset.org/{split}2014/{name}",
                           "height": 12, "width": 16, "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": i})
            if n == len(ids) - 1:
                continue  # an image without annotations
            for c in (cats[n % 4], cats[(n + 1) % 4]):
                anns.append({"segmentation": [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]], "area": 8.0, "iscrowd": 0, "image_id": i,
                             "bbox": [1.0, 1.0, 4.0, 4.0], "category_id": c["id"], "id": len(anns) + 1})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(
            {"info": {"description": "COCO 2014 Dataset", "version": "1.0", "year": 2014}, "licenses": [{"id": 1, "name": "x", "url": ""}],
             "images": images, "annotations": anns, "categories": cats}))
    return root


VOC_OBJECTS = {"000005": [("chair", 0), ("chair", 1)], "000007": [("car", 0)], "000009": [("horse", 0), ("person", 0)],
               "000012": [("car", 0)], "000016": [("bicycle", 0)], "000001": [("dog", 0), ("person", 0)],
               "000002": [("train", 0)], "000003": [("sofa", 0), ("chair", 1)], "000004": [("car", 1)]}


def voc2007_replica(root: Path) -> Path:
    """PASCAL VOC 2007 as unpacked from ``VOCtrainval_06-Nov-2007.tar`` and ``VOCtest_06-Nov-2007.tar``
    (host.robots.ox.ac.uk/pascal/VOC/voc2007): ``VOCdevkit/VOC2007/{Annotations/<id>.xml, ImageSets/Main/{trainval,test,
    <class>_trainval}.txt, JPEGImages/<id>.jpg}``; each ``<object>`` has name, pose, truncated, difficult, bndbox.
    Image 000003 has a difficult-only chair, 000004 a difficult-only car (ignored in those classes)."""
    base = root / "VOCdevkit" / "VOC2007"
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for k, (i, objs) in enumerate(VOC_OBJECTS.items()):
        _jpg(base / "JPEGImages" / f"{i}.jpg", k)
        body = "".join(f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
                       f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>8</xmax><ymax>8</ymax></bndbox></object>" for n, d in objs)
        (base / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{i}.jpg</filename><source><database>The VOC2007 Database</database>"
            f"</source><size><width>16</width><height>12</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>")
    ids = list(VOC_OBJECTS)
    (base / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in ids[:5]))
    (base / "ImageSets" / "Main" / "test.txt").write_text("".join(f"{i}\n" for i in ids[5:]))
    (base / "ImageSets" / "Main" / "chair_trainval.txt").write_text("".join(
        f"{i} {' 1' if any(n == 'chair' for n, _ in VOC_OBJECTS[i]) else '-1'}\n" for i in ids[:5]))
    return root / "VOCdevkit"


NUS_CONCEPTS = ["airport", "animal", "beach", "sky"]


def nus_wide_replica(root: Path) -> Path:
    """NUS-WIDE as unpacked from the NUS-WIDE page (lms.comp.nus.edu.sg/research/NUS-WIDE.htm): ``ConceptsList/Concepts81.txt``,
    ``ImageList/{Imagelist,TrainImagelist,TestImagelist}.txt`` (Windows paths; the full list carries the
    ``C:\\ImageData\\Flickr\\`` prefix), ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt`` (0/1 per line),
    and the Flickr images under ``Flickr/<folder>/<n>_<flickr id>.jpg``. Train: one listed image is missing, one has no
    label, one is corrupt (found only when read); test: one unlabelled."""
    (root / "ConceptsList").mkdir(parents=True)
    (root / "ConceptsList" / "Concepts81.txt").write_text("".join(f"{c}\n" for c in NUS_CONCEPTS))
    (root / "ImageList").mkdir()
    labels = root / "Groundtruth" / "TrainTestLabels"
    labels.mkdir(parents=True)
    rows = {"Train": [("actor", "0001_2124494179", [1, 0, 0, 1]), ("airport", "0002_174174086", [1, 0, 0, 0]),
                      ("beach", "0003_1780910339", [0, 0, 1, 1]), ("zebra", "0004_2213462301", [0, 1, 0, 0]),
                      ("sky", "0005_2397651451", [0, 0, 0, 1]), ("actor", "0006_466436124", [0, 0, 0, 0]),
                      ("animal", "0007_1090153716", [0, 1, 1, 0]), ("beach", "0008_2339106452", [0, 0, 1, 0])],
            "Test": [("airport", "0009_497520150", [1, 0, 0, 1]), ("zebra", "0010_2163516316", [0, 1, 0, 0]),
                     ("sky", "0011_2415366536", [0, 0, 1, 1]), ("actor", "0012_2286823183", [0, 0, 0, 0])]}
    full = []
    for s, items in rows.items():
        (root / "ImageList" / f"{s}Imagelist.txt").write_text("".join(f"{d}\\{n}.jpg\r\n" for d, n, _ in items))
        full += [f"C:\\ImageData\\Flickr\\{d}\\{n}.jpg\r\n" for d, n, _ in items]
        for k, c in enumerate(NUS_CONCEPTS):
            (labels / f"Labels_{c}_{s}.txt").write_text("".join(f"{y[k]}\n" for _, _, y in items))
        for j, (d, n, _) in enumerate(items):
            if (s, j) == ("Train", 3):
                continue  # listed, but missing on disk
            _jpg(root / "Flickr" / d / f"{n}.jpg", j)
    (root / "Flickr" / "beach" / "0008_2339106452.jpg").write_bytes(b"\xff\xd8\xff truncated")  # dead mid-epoch
    (root / "ImageList" / "Imagelist.txt").write_text("".join(full))
    return root


@pytest.fixture(scope="session")
def replicas(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("replicas")
    return {"coco": coco2014_replica(base / "coco2014"), "voc": voc2007_replica(base / "voc"),
            "nus_wide": nus_wide_replica(base / "NUS-WIDE")}
