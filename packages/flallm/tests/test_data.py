"""Frame sampling, the synthetic world, dataset layout readers, video decoding, bad input."""

from __future__ import annotations

import gzip
import json
import pickle
import random

import numpy as np
import pytest
from flallm.data import (
    ClipTransform,
    load_input,
    load_sample_frames,
    read_csl_daily,
    read_gfslt,
    read_how2sign,
    read_manifest,
    read_phoenix14t,
    read_split,
    read_video,
    sample_indices,
)
from flallm.world import WORDS, gloss_to_sentence, lexicon, make_split
from PIL import Image
from vislab.errors import InputError, VislabError


def test_sample_indices():
    assert sample_indices(10, 4, 300, train=False) == [0, 4, 8]
    assert sample_indices(3, 4, 300, train=False) == [0]
    rng = random.Random(0)
    phases = {sample_indices(10, 4, 300, True, rng)[0] for _ in range(200)}
    assert phases == {0, 1, 2, 3}
    long = sample_indices(1000, 4, 300, train=False)
    assert len(long) == 75 and long[0] == 0 and long[-1] <= 999
    tr = sample_indices(1000, 4, 300, True, random.Random(1))
    assert len(tr) == 75 and tr == sorted(tr)


def test_world_is_deterministic_and_grammatical():
    a, b = make_split(6, seed=3), make_split(6, seed=3)
    assert [s["text"] for s in a] == [s["text"] for s in b]
    assert all(np.array_equal(x["frames"], y["frames"]) for x, y in zip(a, b))
    assert gloss_to_sentence(["man", "ball", "sees"]) == "the man sees the ball"
    assert gloss_to_sentence(["dog", "wants"]) == "the dog wants"
    lex = lexicon()
    assert len({(s.shape, s.colour) for s in lex.values()}) == len(WORDS) == 12
    s = a[0]
    assert s["frames"].dtype == np.uint8 and s["frames"].shape[1:] == (32, 32, 3)
    n_signs = len(s["glosses"])
    assert 6 * n_signs <= len(s["frames"]) <= 12 * n_signs


def test_clip_transform_resize_crop():
    fr = np.random.randint(0, 255, (3, 210, 260, 3), dtype=np.uint8)
    t = ClipTransform(224, 256, augment=True)
    x = t(fr, train=True, rng=random.Random(0))
    assert x.shape == (3, 3, 224, 224) and 0 <= float(x.min()) and float(x.max()) <= 1
    y = ClipTransform(224, 256)(fr, train=False, rng=random.Random(0))
    assert y.shape == (3, 3, 224, 224)


def _frames_dir(d, n=5, size=(26, 21)):
    d.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), i * 20, np.uint8)).save(d / f"images{i + 1:04d}.png")
    return d


def test_phoenix_reader_and_malformed_line(tmp_path):
    root = tmp_path / "PHOENIX-2014-T"
    ann = root / "annotations" / "manual"
    ann.mkdir(parents=True)
    header = "name|video|start|end|speaker|orth|translation"
    (ann / "PHOENIX-2014-T.train.corpus.csv").write_text(
        f"{header}\nclipA|clipA/1/*.png|-1|-1|Signer01|REGEN|und nun die wettervorhersage\n")
    _frames_dir(root / "features" / "fullFrame-210x260px" / "train" / "clipA", n=9)
    s = read_phoenix14t(root, "train")
    assert s[0]["text"] == "und nun die wettervorhersage"
    fr = load_sample_frames(s[0], 4, 300, False, random.Random(0))
    assert fr.shape == (3, 21, 26, 3) and fr[1, 0, 0, 0] == 80  # frames 0, 4, 8
    (ann / "PHOENIX-2014-T.dev.corpus.csv").write_text(f"{header}\nclipB|x|-1|-1|Signer01|REGEN\n")
    with pytest.raises(InputError, match="line 2"):
        read_phoenix14t(root, "dev")
    (ann / "PHOENIX-2014-T.test.corpus.csv").write_text("wrong|header\n")
    with pytest.raises(InputError, match="header"):
        read_phoenix14t(root, "test")
    with pytest.raises(InputError, match="not found"):
        read_phoenix14t(tmp_path / "nowhere", "train")


def test_csl_daily_how2sign_gfslt_manifest(tmp_path):
    root = tmp_path / "CSL-Daily"
    (root / "sentence_label").mkdir(parents=True)
    with open(root / "sentence_label" / "csl2020ct_v2.pkl", "wb") as fh:
        pickle.dump({"info": [{"name": "S1", "length": 5, "label_char": ["你", "好"], "label_gloss": ["X"]},
                              {"name": "S2", "length": 5, "label_char": ["再", "见"]}]}, fh)
    (root / "sentence_label" / "split_1.txt").write_text("Name|split\nS1|train\nS2|dev\n")
    tr = read_csl_daily(root, "train")
    assert [(s["id"], s["text"]) for s in tr] == [("S1", "你好")]
    assert read_csl_daily(root, "dev")[0]["text"] == "再见"
    (root / "sentence_label" / "split_1.txt").write_text("Name|split\nS1 train\n")
    with pytest.raises(InputError, match="line 2"):
        read_csl_daily(root, "train")

    h = tmp_path / "how2sign"
    h.mkdir()
    cols = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"
    (h / "how2sign_realigned_val.csv").write_text(f"{cols}\nv1\tvid1\ts1\tvid1_0-1\t0.1\t2.0\tHello there.\n")
    s = read_how2sign(h, "dev")
    assert s[0]["video"].name == "vid1_0-1.mp4" and "val_rgb_front_clips" in str(s[0]["video"])
    (h / "how2sign_realigned_test.csv").write_text(f"{cols}\nv1\tvid1\ts1\n")
    with pytest.raises(InputError, match="line 2"):
        read_how2sign(h, "test")

    g = tmp_path / "gfslt"
    _frames_dir(g / "imgs" / "c1", n=4)
    with gzip.open(g / "labels.train", "wb") as fh:
        pickle.dump({"c1": {"name": "c1", "gloss": "", "text": "hallo", "length": 4,
                            "imgs_path": [f"imgs/c1/images{i:04d}.png" for i in range(1, 5)]}}, fh)
    gs = read_gfslt(g / "labels.train", g)
    assert gs[0]["text"] == "hallo" and len(gs[0]["frame_paths"]) == 4

    m = tmp_path / "man"
    _frames_dir(m / "f1", n=3)
    (m / "manifest.jsonl").write_text(json.dumps({"id": "a", "frames_dir": "f1", "text": "hi", "split": "train"}) + "\n")
    assert read_manifest(m / "manifest.jsonl", "train")[0]["frame_paths"] == m / "f1"
    with pytest.raises(InputError, match="no dev samples"):
        read_split({"source": "manifest", "root": str(m)}, "dev")  # empty dataset
    (m / "manifest.jsonl").write_text('{"id": "a", "text": "hi"\n')
    with pytest.raises(InputError, match="line 1"):
        read_manifest(m / "manifest.jsonl", "train")
    with pytest.raises(VislabError, match="data.root"):
        read_split({"source": "phoenix14t", "root": None}, "train")


def test_video_decoding_and_unreadable_files(tmp_path):
    frames = make_split(1, seed=5)[0]["frames"][:8]
    gif = tmp_path / "clip.gif"
    Image.fromarray(frames[0]).save(gif, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]], duration=40, loop=0)
    v = read_video(gif)
    assert v.shape == (8, 32, 32, 3)
    np.save(tmp_path / "clip.npy", frames)
    assert np.array_equal(read_video(tmp_path / "clip.npy"), frames)
    import cv2

    w = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (32, 32))
    for f in frames:
        w.write(np.ascontiguousarray(f[..., ::-1]))
    w.release()
    assert read_video(tmp_path / "clip.mp4").shape[1:] == (32, 32, 3)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01not a video at all")
    with pytest.raises(InputError, match="broken.mp4"):
        read_video(tmp_path / "broken.mp4")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a-truncated")
    with pytest.raises(InputError, match="broken.gif"):
        read_video(tmp_path / "broken.gif")
    np.save(tmp_path / "bad.npy", np.zeros((4, 4)))
    with pytest.raises(InputError, match="expected frames of shape"):
        read_video(tmp_path / "bad.npy")
    with pytest.raises(InputError, match="not found"):
        load_input(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_input(tmp_path / "empty")
