"""Toy faces: item layout, determinism, labels, balance, protocol splits."""

import numpy as np
import pytest
import torch
from vislab import faces as F


@pytest.fixture(scope="module")
def small():
    return F.ToyFaces(domains=("O", "M"), attacks=("print", "replay", "adv_sign", "gan"), identities=4, frames=1, seed=3)


def test_item_layout(small):
    it = small[0]
    assert it["image"].shape == (3, 64, 64) and it["image"].dtype == torch.float32
    assert 0.0 <= float(it["image"].min()) and float(it["image"].max()) <= 1.0
    assert it["depth"].shape == (1, 64, 64)
    assert set(it) >= {"image", "label", "live", "attack", "domain", "identity", "video", "frame", "depth"}
    batch = torch.utils.data.default_collate([small[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64) and batch["label"].dtype == torch.int64


def test_labels_follow_uniattack_convention(small):
    expected = {"live": 0, "print": 1, "replay": 1, "adv_sign": 2, "gan": 3}
    for i in range(len(small)):
        r = small.records[i]
        assert r.label == expected[r.attack]
        assert r.live == int(r.attack == "live")
    for name, a in F.ATTACKS.items():
        assert a.label == {"physical": 1, "adversarial": 2, "digital": 3}[a.kind]
        assert F.attack_label(name) == a.label
    assert F.attack_label("live") == 0
    assert set(F.PHYSICAL) == {"print", "replay", "mask3d"}
    assert F.LABEL_NAMES == ("live", "physical", "adversarial", "digital")


def test_live_spoof_balanced_in_every_domain(small):
    live = small.live
    doms = np.array(small.domain_names)
    for d in small.domains:
        assert live[doms == d].sum() * 2 == (doms == d).sum()


def test_depth_only_for_live(small):
    for i in range(len(small)):
        it = small[i]
        if it["live"]:
            assert float(it["depth"].max()) > 0.9
        else:
            assert float(it["depth"].abs().max()) == 0.0


def test_deterministic_and_order_independent(small):
    again = F.ToyFaces(domains=("O", "M"), attacks=("print", "replay", "adv_sign", "gan"), identities=4, frames=1, seed=3, cache=None)
    for i in (0, 5, len(small) - 1):
        assert torch.equal(small[i]["image"], again[i]["image"])
    # the same item inside a different subset (one domain, one attack) is rendered identically
    sub = F.ToyFaces(domains=("M",), attacks=("gan",), identities=4, frames=1, seed=3)
    j = next(k for k, r in enumerate(sub.records) if r.attack == "gan")
    rec = sub.records[j]
    i = small.records.index(rec)
    assert torch.equal(sub[j]["image"], small[i]["image"])
    other = F.ToyFaces(domains=("O", "M"), attacks=("print", "replay", "adv_sign", "gan"), identities=4, frames=1, seed=4)
    assert not torch.equal(small[0]["image"], other[0]["image"])


def test_frames_of_a_video_are_similar_but_not_identical():
    ds = F.ToyFaces(domains=("O",), attacks=("replay",), identities=2, frames=2, seed=0)
    a, b = ds.image_array(0), ds.image_array(1)
    assert ds.records[0].video == ds.records[1].video
    other_video = ds.image_array(2)
    assert 0 < np.abs(a - b).mean() < np.abs(a - other_video).mean() + 0.05


def test_splits_are_subject_disjoint():
    ids = {s: set(F.split_identities(12, s)) for s in ("train", "dev", "test")}
    assert ids["train"] == set(range(6)) and ids["dev"] == {6, 7, 8} and ids["test"] == {9, 10, 11}
    with pytest.raises(ValueError):
        F.split_identities(12, "val")


def test_leave_one_domain_out_protocol():
    p = F.leave_one_domain_out("M", identities=8, frames=1)
    assert set(p["train"].domain_names) == {"O", "C", "I"}
    assert set(p["dev"].domain_names) == {"O", "C", "I"}
    assert set(p["test"].domain_names) == {"M"}
    assert not set(p["train"].identity_ids) & set(p["test"].identity_ids)
    assert not set(p["train"].identity_ids) & set(p["dev"].identity_ids)
    q = F.leave_one_domain_out("O-C-I@M", identities=8, frames=1)
    assert q["test"].domains == ("M",) and q["train"].domains == ("O", "C", "I")
    with pytest.raises(ValueError):
        F.leave_one_domain_out("X")


@pytest.mark.parametrize("protocol", F.UNIATTACK_PROTOCOLS)
def test_uniattack_protocols_hold_out_attacks(protocol):
    p = F.uniattack_protocol(protocol, identities=8, frames=1)
    train_kinds = {F.ATTACKS[a].kind for a in p["train"].attacks} | {F.ATTACKS[a].kind for a in p["dev"].attacks}
    test_kinds = {F.ATTACKS[a].kind for a in p["test"].attacks}
    train_labels = set(p["train"].labels.tolist()) | set(p["dev"].labels.tolist())
    test_labels = set(p["test"].labels.tolist())
    if protocol == "p2.1":  # unseen physical: never a physical attack in train/dev
        assert "physical" not in train_kinds and 1 not in train_labels
        assert test_kinds == {"physical"} and test_labels == {0, 1}
    elif protocol == "p2.2":  # unseen digital: no adversarial or editing in train/dev
        assert train_kinds == {"physical"} and train_labels == {0, 1}
        assert test_kinds == {"adversarial", "digital"} and test_labels == {0, 2, 3}
    else:  # all families everywhere, editing methods held out across splits
        assert train_labels == test_labels == {0, 1, 2, 3}
        assert "gan" in p["test"].attacks and "gan" not in p["train"].attacks + p["dev"].attacks
    ids = [set(p[s].identity_ids) for s in ("train", "dev", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set(p["train"].domain_names) == {"U"}


def test_balanced_weights():
    w = F.balanced_weights([1, 0, 0, 0], ["O", "O", "O", "C"])
    # cells: (O,1): 1 sample, (O,0): 2 samples, (C,0): 1 sample -> weights 1, 1/2, 1/2, 1 (normalised)
    np.testing.assert_allclose(w.numpy(), np.array([1, 0.5, 0.5, 1]) / 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown attack"):
        F.ToyFaces(attacks=("nope",))
    with pytest.raises(ValueError, match="unknown face domain"):
        F.ToyFaces(domains=("Z",))
    with pytest.raises(ValueError, match="cache"):
        F.ToyFaces(cache="ram")


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path))
    kw = dict(domains=("I",), attacks=("mask3d",), identities=[0, 1], frames=1, seed=5, cache="disk")
    a = F.ToyFaces(**kw)
    first = a[1]["image"]
    files = list((tmp_path / "faces").glob("toyfaces-*.npz"))
    assert len(files) == 1
    b = F.ToyFaces(**kw)
    b.render = None  # a cache hit must not need to render: materialize() loads the file
    F.ToyFaces.materialize(b)
    assert torch.equal(torch.from_numpy(b._mem[1][0]).permute(2, 0, 1).float() / 255, first)
    files[0].write_bytes(b"corrupt")  # a broken cache file is re-rendered, not fatal
    c = F.ToyFaces(**kw)
    assert torch.equal(c[1]["image"], first)


def test_size_224_and_identity_list():
    ds = F.ToyFaces(domains=("U",), attacks=("gan",), identities=[3], frames=1, size=224, with_depth=False)
    assert len(ds) == 2 and ds[1]["image"].shape == (3, 224, 224) and "depth" not in ds[1]
    with pytest.raises(ValueError, match="not both"):
        F.ToyFaces(identities=[0, 1], split="train")


def test_public_api_names_exist():
    import vislab.metrics as M

    for name in F.__all__:
        assert getattr(F, name) is not None
    for name in M.__all__:
        assert callable(getattr(M, name))
