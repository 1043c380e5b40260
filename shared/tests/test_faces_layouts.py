"""Each published layout's reader on its replica tree (vislab.testing.faces), plus protocol codes and bad input."""

import numpy as np
import pytest
from vislab.errors import ConfigError, InputError
from vislab.faces import layouts as L
from vislab.faces.readers import eyes_to_box, read_box_file
from vislab.testing import faces as R


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return R.lab_replica(tmp_path_factory.mktemp("lab"), videos=2, frames=3)


def test_protocol_codes_accept_every_naming():
    assert L.resolve_protocol("O-C-I@M") == ("mcio", ["O", "C", "I"], "M")
    assert L.resolve_protocol("CASIA_FASD-OULU_NPU-ReplayAttack@MSU_MFSD") == ("mcio", ["C", "O", "I"], "M")
    assert L.resolve_protocol("oulu-casia-replay@msu") == ("mcio", ["O", "C", "I"], "M")
    assert L.resolve_protocol("C@I") == ("mcio", ["C"], "I")
    # protocol 2: C is CeFA next to W / S (the lab writes E)
    assert L.resolve_protocol("W-C@S") == ("wcs", ["W", "C"], "S")
    assert L.resolve_protocol("E-S@W") == ("wcs", ["C", "S"], "W")
    with pytest.raises(ConfigError, match="unknown domain 'X'"):
        L.resolve_protocol("O-X@M")
    with pytest.raises(ConfigError, match="mixes"):
        L.resolve_protocol("O-W@M")


def test_lab_layout_frames_in_crop_color_or_the_video_folder(lab):
    train = L.mcio_dataset(lab, "O-C-I@M", "train", frames=2, size=8)
    assert train.stats["videos"] == 3 * 4 and len(train) == 24 and not train.errors
    assert {train.entries[0].frames[0].parent.name} == {"crop"}  # OULU_NPU/.../crop/0001.png
    assert any(e.frames[0].parent.name == "color" for e in train.entries)  # ReplayAttack's color/
    test = L.mcio_dataset(lab, "CASIA_FASD-OULU_NPU-ReplayAttack@MSU_MFSD", "test", frames=2, size=8)
    assert test.stats["videos"] == 4 and test[0]["domain"] == "M" and test[0]["image"].shape == (3, 8, 8)
    dev = L.mcio_dataset(lab, "O-C-I@M", "dev", frames=2, size=8)
    assert dev.stats["videos"] == 12 and "dev_release" in dev.entries[0].source or "dev_release" in str(dev.entries[0].path)
    with pytest.raises(InputError, match="IDIAP_WMCA_video_train.txt"):
        L.mcio_dataset(lab, "W-C@S", "train")


def test_flip_layout_reads_the_lists_and_the_whole_target(tmp_path):
    root = R.flip_replica(tmp_path, videos=3)
    test = L.flip_dataset(tmp_path, "O-C-I@M", "test", frames=2, size=8)
    # the target's test lists name the videos of both folders: 2 folders x 2 classes x 3 videos, 2 frames each
    assert test.stats["videos"] == 12 and len(test) == 24
    assert {p.name.split("_frame")[1] for e in test.entries for p in e.frames} == {"0.png", "1.png"}
    train = L.flip_dataset(root, "O-C-I@M", "train", frames=2, size=8)
    dev = L.flip_dataset(root, "O-C-I@M", "dev", frames=2, size=8)
    assert train.stats["videos"] + dev.stats["videos"] == 3 * 6 and dev.stats["videos"] == 3 * 2
    assert not {str(e.path) for e in train.entries} & {str(e.path) for e in dev.entries}
    (root / "frame" / "msu" / "test" / "real" / "real_client001_test_frame0.png").unlink()
    ds = L.flip_dataset(root, "O-C-I@M", "test", frames=2, size=8)  # one bad line of 12: a warning, the rest loads
    assert len(ds.errors) == 1 and "msu_real_test.txt:" in ds.errors[0] and ds.stats["videos"] == 11


def test_oulu_eye_positions_become_a_face_box(tmp_path):
    root = R.oulu_replica(tmp_path, users=1, frames=3, size=32)
    ds = L.oulu_dataset(root, 1, "train", frames=2, size=16, crop="boxes")
    assert ds.stats["videos"] == 3 and ds.live.tolist().count(1) == 2
    box = ds.entries[0].boxes[0]
    assert box == pytest.approx(eyes_to_box(11, 13, 21, 13))
    x, y, w, h = eyes_to_box(10, 20, 30, 20)  # d = 20: side 50, centre (20, 28)
    assert (x + w / 2, y + h / 2, w, h) == pytest.approx((20, 28, 50, 50))
    errs = []
    bad = tmp_path / "bad.txt"
    bad.write_text("0, 1, 2, 3\n")
    assert read_box_file(bad, errs, "eyes") == {} and "frame, xL, yL, xR, yR" in errs[0]
    with pytest.raises(ConfigError, match="fold"):
        L.oulu_dataset(root, 3, "train")


def test_casia_replay_msu_native_layouts(tmp_path):
    c = R.casia_fasd_replica(tmp_path / "casia", train_subjects=5, test_subjects=1)
    tr, dv, te = (L.casia_fasd_dataset(c, s, frames=1, size=8) for s in ("train", "dev", "test"))
    assert (tr.stats["videos"], dv.stats["videos"], te.stats["videos"]) == (4 * 12, 12, 12)
    assert te.live.tolist().count(1) == 3 and {e.attack for e in te.entries} == {"live", "print", "cut_print", "replay"}
    r = R.replay_attack_replica(tmp_path / "replay", clients=1, size=32)
    ds = L.replay_attack_dataset(r, "dev", frames=2, size=8, crop="boxes")
    assert ds.stats["videos"] == 3 and ds.entries[0].boxes[0] == (8, 8, 16, 16)
    assert sorted(e.attack for e in ds.entries) == ["live", "print", "replay"]
    m = R.msu_mfsd_replica(tmp_path / "msu", train=(2, 3, 5, 6, 9), test=(1,))
    tr, dv, te = (L.msu_mfsd_dataset(m, s, frames=1, size=8) for s in ("train", "dev", "test"))
    assert (tr.stats["videos"], dv.stats["videos"], te.stats["videos"]) == (12, 3, 3)
    assert sorted(e.attack for e in te.entries) == ["live", "print", "replay"]


def test_siw_protocols(tmp_path):
    root = R.siw_replica(tmp_path, train_subjects=(6, 7, 8, 11, 12), test_subjects=(9,), frames=3)
    p1 = L.siw_dataset(root, 1, "train", frames=0, size=8, train_frames=2)
    assert p1.stats["videos"] == 4 * 7 and len(p1) == 4 * 7 * 2  # first 2 frames only
    p2 = L.siw_dataset(root, 2, "test", fold=3, frames=1, size=8, crop="boxes")
    assert sorted(e.attack for e in p2.entries) == ["live", "replay"] and p2.entries[0].boxes[0] == (4, 4, 8, 8)
    p2tr = L.siw_dataset(root, 2, "train", fold=3, frames=1, size=8)
    assert sorted(e.attack for e in p2tr.entries).count("replay") == 4 * 3
    p3 = L.siw_dataset(root, 3, "test", fold=1, frames=1, size=8)
    assert {e.attack for e in p3.entries} == {"live", "replay"}
    with pytest.raises(ConfigError):
        L.siw_dataset(root, 2, "train", fold=5)


def test_uniattack_lists_relative_to_the_lab_root(tmp_path):
    root = R.uniattack_replica(tmp_path, subjects=1)
    img = L.uniattack_dataset(root, "p1", "train", kind="image", size=8)
    assert sorted(set(img.labels.tolist())) == [0, 1, 2, 3] and len(img) == 8
    vid = L.uniattack_dataset(root / "UniAttackData", "UniAttackData@p2.1", "test", kind="video", size=8)
    assert sorted(set(vid.labels.tolist())) == [0, 1] and vid.stats["videos"] == 2 and len(vid) == 4
    # binary lists (1 = any attack): the folder gives the family
    lf = root / "UniAttackData" / "protocol" / "UniAttackData@p1_video_dev.txt"
    lf.write_text("".join(line.rsplit(" ", 1)[0] + (" 0\n" if line.endswith(" 0") else " 1\n") for line in lf.read_text().split("\n") if line))
    dev = L.uniattack_dataset(root, "p1", "dev", kind="video", size=8)
    assert sorted(set(dev.labels.tolist())) == [0, 1, 2, 3]


def test_bad_list_lines_name_file_and_line(lab, tmp_path):
    lf = lab / "dg_protocol" / "MSU_MFSD_video_test.txt"
    good = lf.read_text()
    empty = lab / "MSU_MFSD" / "empty_video"
    empty.mkdir(exist_ok=True)
    lf.write_text(good + "MSU_MFSD/missing 1\nMSU_MFSD/empty_video 0\n")
    ds = L.mcio_dataset(lab, "O-C-I@M", "test", frames=1, size=8)  # 2 bad of 6: warning, the rest loads
    assert ds.stats["videos"] == 4 and len(ds.errors) == 2
    assert "MSU_MFSD_video_test.txt:5: MSU_MFSD/missing not found" in ds.errors[0]
    assert "MSU_MFSD_video_test.txt:6:" in ds.errors[1] and "has no frames" in ds.errors[1]
    lf.write_text("MSU_MFSD/missing 1\n" * 4 + good)  # 4 bad of 8: an error naming the first bad line
    with pytest.raises(InputError, match=r"4 of 8 entries unusable; first problem: .*MSU_MFSD_video_test.txt:1:"):
        L.mcio_dataset(lab, "O-C-I@M", "test", frames=1, size=8)
    lf.write_text(good)
    assert np.array_equal(L.mcio_dataset(lab, "O-C-I@M", "test", frames=1, size=8).live, [1, 0, 1, 0])
