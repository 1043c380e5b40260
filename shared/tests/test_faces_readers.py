"""Real-layout readers, exercised on the toy dataset written by `vislab toy faces`, plus bad input."""

import numpy as np
import pytest
import torch
from PIL import Image
from vislab import faces as F
from vislab.errors import InputError
from vislab.faces import layouts as L
from vislab.faces import readers as RD


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    from vislab.cli import main as vislab_main

    out = tmp_path_factory.mktemp("toyfaces")
    rc = vislab_main(["toy", "faces", "--out", str(out), "--size", "32", "--identities", "4", "--uni-identities", "4", "--frames", "2"])
    assert rc == 0
    return out


def test_cli_writes_grid_and_layouts(layout):
    grid = Image.open(layout / "grid.png")
    assert grid.size[0] > 11 * 32 and grid.size[1] > 5 * 32  # 11 columns (live + 10 attacks), 5 domains
    for d in ("MCIO/dg_protocol", "OULU-NPU/Protocols/Protocol_1", "UniAttackData/protocol"):
        assert (layout / d).is_dir()
    assert (layout / "summary.json").is_file()
    # the MCIO lists carry the lab's dataset names, as CASIA-FAS-Benchmark's dg_protocol does
    lists = sorted(p.name for p in (layout / "MCIO" / "dg_protocol").iterdir())
    assert "OULU_NPU_video_train.txt" in lists and "MSU_MFSD_video_test.txt" in lists and len(lists) == 12
    assert (layout / "MCIO" / "dg_protocol" / "CASIA_FASD_video_dev.txt").read_text().startswith("CASIA_FASD/C_id")


def test_mcio_reader_reads_back_the_toy_data(layout):
    ds = L.mcio_dataset(layout / "MCIO", "O-C-I@M", "train", frames=2, size=32)
    toy = F.ToyFaces(domains=("O", "C", "I"), attacks=("print", "replay"), identities=4, split="train", frames=2, size=32)
    assert len(ds) == len(toy) and not ds.errors
    assert ds.live.sum() == toy.live.sum()
    assert set(d for d in (ds[i]["domain"] for i in range(len(ds)))) == {"O", "C", "I"}
    # frame PNGs are lossless: pixels equal the toy dataset's
    it = ds[0]
    j = next(k for k, r in enumerate(toy.records) if r.domain == "O" and r.identity == 0 and r.attack == "live" and r.video_index == 0 and r.frame == 0)
    assert torch.equal(it["image"], toy[j]["image"])
    test = L.mcio_dataset(layout / "MCIO", "O-C-I@M", "test", size=32)
    assert {test[i]["domain"] for i in range(len(test))} == {"M"}
    assert set(test.labels.tolist()) == {0, 1}


def test_oulu_reader_reads_videos(layout):
    ds = L.oulu_dataset(layout / "OULU-NPU", 1, "train", frames=2, size=32)
    assert len(ds) > 0 and not ds.errors
    attacks = {ds[i]["attack"] for i in range(len(ds))}
    assert attacks == {"live", "print", "replay"}
    assert all(v.endswith(".avi") for v in ds.videos)
    one = L.oulu_dataset(layout / "OULU-NPU", 1, "train", frames=1, size=32)
    assert len(one) == len(ds) // 2


def test_uniattack_reader_protocol_semantics(layout):
    root = layout / "UniAttackData"
    p21_train = L.uniattack_dataset(root, "p2.1", "train", size=32)
    p21_test = L.uniattack_dataset(root, "p2.1", "test", size=32)
    p22_train = L.uniattack_dataset(root, "p2.2", "train", size=32)
    p22_test = L.uniattack_dataset(root, "UniAttackData@p2.2", "test", size=32)
    assert set(p21_train.labels.tolist()) == {0, 2, 3}  # unseen physical: none in training
    assert set(p21_test.labels.tolist()) == {0, 1}
    assert set(p22_train.labels.tolist()) == {0, 1}  # unseen digital
    assert set(p22_test.labels.tolist()) == {0, 2, 3}
    p1 = L.uniattack_dataset(root, "p1", "train", size=32)
    assert set(p1.labels.tolist()) == {0, 1, 2, 3}
    assert abs(int(p1.live.sum()) * 2 - len(p1)) == 0  # live : attack = 1 : 1
    vid = L.uniattack_dataset(root, "p1", "dev", kind="video", frames=2, size=32)
    assert len(vid) == len(L.uniattack_dataset(root, "p1", "dev", size=32))


def test_random_frame_sampling_gives_one_item_per_video(layout):
    ds = L.mcio_dataset(layout / "MCIO", "O-C-I@M", "train", sampling="random", size=32)
    uni = L.mcio_dataset(layout / "MCIO", "O-C-I@M", "train", frames=2, size=32)
    assert len(ds) * 2 == len(uni)
    torch.manual_seed(0)
    assert ds[0]["frame"] in (0, 1)


def _frames(folder, n=3, size=24, value=100):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size, 3), value + i, np.uint8)).save(folder / f"{i:03d}.png")


def test_bad_lines_and_files_are_reported_and_the_rest_loaded(tmp_path):
    _frames(tmp_path / "v_live")
    _frames(tmp_path / "v_spoof")
    (tmp_path / "v_empty").mkdir()
    _frames(tmp_path / "v_corrupt", n=2)
    (tmp_path / "v_corrupt" / "001.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.csv").write_text("x")
    lf = tmp_path / "list.txt"
    lf.write_text(
        "v_live 0\n"
        "v_spoof 1\n"
        "\n"
        "# a comment\n"
        "v_live 0 extra\n"  # 5: too many fields
        "v_spoof 7\n"  # 6: bad label
        "v_missing 1\n"  # 7: missing path
        "v_empty 0\n"  # 8: folder without frames
        "v_corrupt 1\n"  # 9: one corrupt frame (the other loads)
        "notes.csv 1\n"  # 10: neither folder, video nor image
    )
    with pytest.raises(InputError, match=r"5 of 8 entries unusable; first problem: .*list.txt:5:"):
        L.read_list_dataset(lf, label_format="binary", frames=3, size=16)
    for k in range(3, 9):  # more good videos: the bad lines become a minority, reported with a count
        _frames(tmp_path / f"v_ok{k}")
    lf.write_text(lf.read_text() + "".join(f"v_ok{k} {k % 2}\n" for k in range(3, 9)))
    ds = L.read_list_dataset(lf, label_format="binary", frames=3, size=16)
    assert len(ds.errors) == 6
    msgs = "\n".join(ds.errors)
    for n in (5, 6, 7, 8, 10):
        assert f"list.txt:{n}:" in msgs
    assert "list.txt:9:" in msgs and "001.png" in msgs and "cannot read image" in msgs
    assert ds.stats["lines"] == 14 and ds.stats["videos"] == 9 and ds.stats["skipped"] == 5
    assert len(ds) == 3 + 3 + 1 + 6 * 3
    assert ds[0]["image"].shape == (3, 16, 16)
    assert ds.live.tolist().count(1) == 3 + 3 * 3


def test_nothing_usable_raises_input_error(tmp_path):
    lf = tmp_path / "list.txt"
    lf.write_text("missing 0\n")
    with pytest.raises(InputError, match="no usable"):
        L.read_list_dataset(lf)
    with pytest.raises(InputError, match="not found"):
        L.read_list_dataset(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="dg_protocol"):
        L.mcio_dataset(tmp_path, "O-C-I@M", "train")


def test_label_formats():
    assert RD.parse_label("+1", "oulu") == (0, "live")
    assert RD.parse_label("-2", "oulu") == (1, "print")
    assert RD.parse_label("-4", "oulu") == (1, "replay")
    assert RD.parse_label("1", "live1") == (0, "live")
    assert RD.parse_label("0", "live1") == (1, "attack")
    assert RD.parse_label("3", "uniattack") == (3, "digital")
    with pytest.raises(ValueError):
        RD.parse_label("4", "uniattack")
    with pytest.raises(ValueError):
        RD.parse_label("0", "oulu")


def test_crop_from_box_files(tmp_path):
    img = np.zeros((60, 80, 3), np.uint8)
    img[20:40, 30:50] = 255  # the "face"
    v = tmp_path / "vid"
    v.mkdir()
    Image.fromarray(img).save(v / "0.png")
    Image.fromarray(img).save(v / "1.png")
    (v / "boxes.txt").write_text("0 30 20 20 20\n1 30 20 20 20\nthis is bad\n")
    lf = tmp_path / "l.txt"
    lf.write_text("vid 0\n")
    ds = L.read_list_dataset(lf, crop="boxes", margin=0.0, size=20, frames=2)
    assert float(ds[0]["image"].min()) == 1.0  # exactly the white box
    assert any("boxes.txt:3" in e for e in ds.errors)
    ds2 = L.read_list_dataset(lf, crop="boxes", margin=1.0, size=20, frames=2)
    assert 0.2 < float(ds2[0]["image"].mean()) < 0.35  # box = 1/4 of the enlarged crop's area
    (v / "boxes.txt").unlink()
    with pytest.raises(InputError, match="no usable"):
        L.read_list_dataset(lf, crop="boxes")


def test_crop_box_pads_outside_the_image():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10, 1).repeat(3, -1)
    c = RD.crop_box(img, (-5, -5, 10, 10), 0.0)
    assert c.shape == (10, 10, 3) and c[0, 0, 0] == 0


def test_detect_face_with_the_cascade_scikit_image_ships():
    from skimage import data

    box = RD.detect_face(data.astronaut())
    assert box is not None
    x, y, w, h = box
    assert 140 < x + w / 2 < 260 and 60 < y + h / 2 < 170  # the astronaut's face
    assert RD.detect_face(np.zeros((64, 64, 3), np.uint8)) is None


def test_cli_bad_arguments(tmp_path, capsys):
    from vislab.faces.cli import main

    assert main(["--out", str(tmp_path / "o"), "--identities", "1"]) == 2
    assert "error:" in capsys.readouterr().err


def test_mcio_paths_relative_to_the_dataset_folder(tmp_path):
    _frames(tmp_path / "MSU" / "real" / "v1")
    _frames(tmp_path / "MSU" / "attack" / "v2")
    (tmp_path / "dg_protocol").mkdir()
    (tmp_path / "dg_protocol" / "MSU_video_test.txt").write_text("real/v1 0\nattack/v2 1\n")
    ds = L.mcio_dataset(tmp_path, "O-C-I@M", "test", frames=2, size=8)
    assert len(ds) == 4 and ds.live.tolist() == [1, 1, 0, 0] and ds[0]["domain"] == "M"


