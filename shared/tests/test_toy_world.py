"""The toy world: determinism, caption/label/mask/box consistency, held-out combinations, loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vislab.toy import world
from vislab.toy.world import (
    COLORS,
    HELD_OUT,
    OFF_BRIGHTNESS,
    POSITION_PHRASES,
    ToyDataModule,
    ToyDataset,
    label_names,
)


def test_vocabulary_sizes():
    assert len(world.SHAPES) >= 6 and len(COLORS) >= 8 and len(world.TEXTURES) == 4 and len(world.POSITIONS) == 5
    assert len(label_names()) == len(COLORS) * len(world.SHAPES)
    assert all(f"{c} {s}" in label_names() for c, s in HELD_OUT)


def test_deterministic_for_a_seed():
    a, b, c = ToyDataset(12, seed=3), ToyDataset(12, seed=3), ToyDataset(12, seed=4)
    ia, ca = a.tensors()
    ib, cb = b.tensors()
    ic, cc = c.tensors()
    assert torch.equal(ia, ib) and ca == cb
    assert not torch.equal(ia, ic) and ca != cc
    # item access equals batch rendering, and an item does not depend on which others were drawn
    assert torch.equal(a[5]["image"], ia[5]) and a[5]["caption"] == ca[5]
    assert torch.equal(ToyDataset(40, seed=3)[5]["image"], ia[5])


def test_splits_differ_and_images_are_valid():
    x = ToyDataset(8, split="pretrain")[0]["image"]
    y = ToyDataset(8, split="all")[0]["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert not torch.equal(x, y)
    assert ToyDataset(2, resolution=64)[0]["image"].shape == (3, 64, 64)


@pytest.mark.parametrize("resolution", [32, 64])
def test_caption_labels_masks_boxes_agree(resolution):
    ds = ToyDataset(60, resolution=resolution, seed=11, split="all")
    names = label_names()
    n_multi = 0
    for i in range(len(ds)):
        it = ds[i]
        objs, n = it["objects"], it["n_objects"]
        assert 1 <= n <= 3 and len(objs) == n
        n_multi += n > 1
        assert it["caption"].count(" and ") == n - 1
        # every object's shape is named, and in order; the full caption names every attribute
        for phrase, o in zip(it["caption"].split(" and "), objs):
            assert o["shape"] in phrase.split()
            for attr in ("color", "texture", "size"):
                assert phrase.split().count(o[attr]) <= 1
        for phrase, o in zip(it["full_caption"].split(" and "), objs):
            words = phrase.split()
            assert {o["shape"], o["color"], o["texture"], o["size"]} <= set(words)
            assert phrase.endswith(POSITION_PHRASES[o["position"]])
        assert len({o["position"] for o in objs}) == n
        # labels: exactly the objects' colour-shape classes
        on = {names[j] for j in torch.nonzero(it["labels"]).flatten().tolist()}
        assert on == {f"{o['color']} {o['shape']}" for o in objs}
        # masks: non-empty, disjoint, padded with zeros; boxes are the masks' bounding boxes
        m, boxes = it["masks"], it["boxes"]
        assert m.shape == (3, resolution, resolution) and boxes.shape == (3, 4)
        assert float(m[n:].sum()) == 0 and float(boxes[n:].abs().sum()) == 0
        assert float(m.sum(0).max()) <= 1
        img = it["image"].numpy()
        for k, o in enumerate(objs):
            mk = m[k].numpy() > 0
            assert mk.sum() > 4
            ys, xs = np.nonzero(mk)
            assert boxes[k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            # the box sits where the position word says
            cx, cy = (xs.mean() + 0.5) / resolution, (ys.mean() + 0.5) / resolution
            px, py = world.POSITIONS[o["position"]]
            assert abs(cx - px) < 0.12 and abs(cy - py) < 0.12
            # masked pixels show the object's colour (full or texture-darkened), not another palette colour
            pix = img[:, mk].T
            rgb = np.asarray(COLORS[o["color"]])
            lo = OFF_BRIGHTNESS * rgb  # textures blend between the dark and the full colour
            t = np.clip(((pix - lo) @ (rgb - lo)) / ((rgb - lo) @ (rgb - lo)), 0, 1)
            d_own = np.abs(pix - (lo + t[:, None] * (rgb - lo))).sum(1)
            assert np.median(d_own) < 0.05, (i, o)
            for other in COLORS.values():  # and is further from every other palette colour
                if other != COLORS[o["color"]]:
                    assert np.median(np.abs(pix - np.asarray(other)).sum(1)) > np.median(d_own)
    assert n_multi > 5


def test_held_out_never_in_pretraining():
    ds = ToyDataset(400, split="pretrain", seed=0)
    for i in range(len(ds)):
        spec = ds.spec(i)
        assert not any(world.is_held_out(o) for o in spec["objects"])
        for c, s in HELD_OUT:
            assert f"{c} {s}" not in spec["caption"]
    held = ToyDataset(50, split="heldout", seed=0)
    specs = [held.spec(i) for i in range(len(held))]
    assert all(world.is_held_out(s["objects"][0]) for s in specs)
    assert {(s["objects"][0]["color"], s["objects"][0]["shape"]) for s in specs} == set(HELD_OUT)
    # the "all" split contains them at about their share of combinations
    every = ToyDataset(400, split="all", max_objects=1)
    n_held = sum(world.is_held_out(every.spec(i)["objects"][0]) for i in range(len(every)))
    assert 0 < n_held < 60


def test_bad_arguments():
    with pytest.raises(ValueError):
        ToyDataset(0)
    with pytest.raises(ValueError):
        ToyDataset(4, split="nope")
    with pytest.raises(ValueError):
        ToyDataset(4, max_objects=5)
    with pytest.raises(IndexError):
        ToyDataset(4).spec(4)


def test_datamodule_batches():
    dm = ToyDataModule(n_train=16, n_val=8, n_test=8, batch_size=8, max_objects=2)
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (8, 3, 32, 32) and b["masks"].shape == (8, 2, 32, 32)
    assert b["labels"].shape == (8, len(label_names())) and len(b["caption"]) == 8 and len(b["objects"]) == 8
    assert b["n_objects"].max() <= 2
    v = next(iter(dm.val_dataloader()))
    assert v["caption"] != b["caption"]


def test_pictures(tmp_path):
    ds = ToyDataset(6)
    imgs, caps = ds.tensors()
    grid = world.image_grid(imgs, ncol=3, scale=2)
    assert grid.shape == (2 * (2 * 33 + 1), 2 * (3 * 33 + 1), 3) and grid.dtype == np.uint8
    world.save_captioned_grid(tmp_path / "g.png", imgs, caps, ncol=3)
    assert (tmp_path / "g.png").stat().st_size > 1000
