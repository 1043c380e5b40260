"""Audio/mesh readers, the synthetic world and the VOCASET/BIWI layouts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf
from diffspeaker.data import (
    SyntheticTalkingFaces,
    TalkingFaceDataModule,
    TalkingFaceFolder,
    collate,
    read_audio,
    read_index_file,
    read_mesh,
)
from vislab.errors import InputError, VislabError


def test_synthetic_world():
    ds = SyntheticTalkingFaces(6, seed=3)
    g = ds.geometry
    assert (
        len(ds) == 6 and g.template.shape == (300, 3) and 28 <= len(g.lip_idx) <= 40 and len(g.upper_idx) > 0
    )
    it = ds[0]
    assert (
        it["audio"].shape == (32000,) and it["vertices"].shape == (60, 900) and it["template"].shape == (900,)
    )
    # mouth opening follows k_style = 0.6 + 0.2 id for the same audio envelope scale
    amp = [
        np.abs(ds[i]["vertices"].reshape(60, 300, 3) - g.template)[:, g.lip_idx, 1].max() for i in range(3)
    ]
    assert amp[0] > 0.05 and len(set(np.argmax(x["style"]) for x in ds.items)) == 3
    b = collate([ds[0], ds[1]])
    assert b["audio"].shape == (2, 32000) and b["vertices"].shape == (2, 60, 900) and b["frame_mask"].all()


def _wav(path, data, sr):
    sf.write(str(path), data, sr)
    return path


def test_read_audio_resample_stereo_and_errors(tmp_path):
    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    notes = []
    w = read_audio(_wav(tmp_path / "st8k.wav", np.stack([tone, tone], 1), 8000), log=notes.append)
    assert w.shape == (16000,) and w.dtype == np.float32
    assert any("mono" in n for n in notes) and any("resampled from 8000" in n for n in notes)
    with pytest.raises(InputError, match="sample rate is 8000"):
        read_audio(tmp_path / "st8k.wav", resample=False)
    with pytest.raises(InputError, match="silent"):
        read_audio(_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000))
    with pytest.raises(InputError, match="zero length|too short"):
        read_audio(_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000))
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(InputError, match="cannot read audio"):
        read_audio(tmp_path / "bad.wav")
    with pytest.raises(InputError, match="not found"):
        read_audio(tmp_path / "missing.wav")


def test_read_mesh_formats(tmp_path):
    v = np.random.rand(4, 3).astype(np.float32)
    np.save(tmp_path / "m.npy", v)
    assert np.allclose(read_mesh(tmp_path / "m.npy")[0], v) and read_mesh(tmp_path / "m.npy")[1] is None
    (tmp_path / "m.obj").write_text("".join(f"v {a} {b} {c}\n" for a, b, c in v) + "f 1 2 3 4\n")
    vo, fo = read_mesh(tmp_path / "m.obj")
    assert np.allclose(vo, v, atol=1e-6) and fo.tolist() == [[0, 1, 2], [0, 2, 3]]
    header = (
        "ply\nformat {} 1.0\ncomment test\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    (tmp_path / "a.ply").write_text(
        header.format("ascii") + "".join(f"{a} {b} {c}\n" for a, b, c in v) + "4 0 1 2 3\n"
    )
    va, fa = read_mesh(tmp_path / "a.ply")
    assert np.allclose(va, v, atol=1e-6) and fa.tolist() == [[0, 1, 2], [0, 2, 3]]
    binary = (
        header.format("binary_little_endian").encode()
        + v.astype("<f4").tobytes()
        + bytes([3])
        + np.array([0, 1, 2], "<i4").tobytes()
    )
    (tmp_path / "b.ply").write_bytes(binary)
    vb, fb = read_mesh(tmp_path / "b.ply")
    assert np.allclose(vb, v) and fb.tolist() == [[0, 1, 2]]
    (tmp_path / "c.ply").write_text("not a ply")
    with pytest.raises(InputError, match="cannot read mesh"):
        read_mesh(tmp_path / "c.ply")
    np.save(tmp_path / "bad.npy", np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"\(V,3\)"):
        read_mesh(tmp_path / "bad.npy")
    (tmp_path / "m.stl").write_text("x")
    with pytest.raises(InputError, match="unsupported"):
        read_mesh(tmp_path / "m.stl")


def _make_vocaset(root, V=10, sr=16000):
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    subjects = ["FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170809_00138_TA"]
    rng = np.random.default_rng(0)
    tpl = {s: rng.random((V, 3)).astype(np.float32) for s in subjects}
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(tpl, f)
    with open(root / "FLAME_masks.pkl", "wb") as f:
        pickle.dump(
            {"lips": np.array([0, 1]), "forehead": np.array([5, 6]), "eye_region": np.array([6, 7])}, f
        )
    for s in subjects:
        for sent in (1, 25):
            _wav(
                root / "wav" / f"{s}_sentence{sent:02d}.wav",
                (0.1 * rng.standard_normal(sr // 2)).astype(np.float32),
                sr,
            )
            np.save(
                root / "vertices_npy" / f"{s}_sentence{sent:02d}.npy",
                rng.random((30, V * 3)).astype(np.float32),
            )
    (root / "vertices_npy" / f"{subjects[0]}_sentence01.npy").unlink()  # missing npy is skipped
    return subjects


def test_vocaset_layout(tmp_path):
    subjects = _make_vocaset(tmp_path)
    train = TalkingFaceFolder(tmp_path, "vocaset", "train")
    assert len(train) == 3  # subject0: sentence25 only; subject1: 1 and 25
    it = train[0]
    assert it["vertices"].shape == (15, 30)  # 60 fps -> every 2nd frame
    assert it["seen"] and it["style"].shape == (8,) and it["style"][VOC_INDEX(subjects[0])] == 1
    test = TalkingFaceFolder(tmp_path, "vocaset", "test")
    assert len(test) == 1 and not test[0]["seen"]  # unseen subject, sentences 21-40
    g = train.geometry()
    assert g.lip_idx.tolist() == [0, 1] and g.upper_idx.tolist() == [5, 6, 7] and g.fps == 30.0
    with pytest.raises(InputError, match="no vocaset val samples"):
        TalkingFaceFolder(tmp_path, "vocaset", "val")


def VOC_INDEX(s):
    from diffspeaker.data import VOCASET_SPLITS

    return VOCASET_SPLITS["train"].index(s)


def test_dataset_wrong_rate_and_missing_parts(tmp_path):
    _make_vocaset(tmp_path / "v", sr=22050)
    ds = TalkingFaceFolder(tmp_path / "v", "vocaset", "train", resample_audio=False)
    with pytest.raises(InputError, match="sample rate is 22050 Hz"):
        ds[0]
    assert TalkingFaceFolder(tmp_path / "v", "vocaset", "train")[0]["audio"].shape[0] == 8000  # resampled
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(InputError, match="templates pickle"):
        TalkingFaceFolder(tmp_path / "nothing_here", "vocaset", "train")
    with pytest.raises(InputError, match="not found"):
        TalkingFaceFolder(tmp_path / "absent", "biwi", "train")
    with pytest.raises(VislabError, match="needs data.root"):
        TalkingFaceDataModule(source="biwi")
    with pytest.raises(VislabError, match="synthetic, vocaset or biwi"):
        TalkingFaceDataModule(source="mead")


def test_biwi_layout_and_region_files(tmp_path):
    root = tmp_path
    (root / "wav").mkdir()
    (root / "vertices_npy").mkdir()
    (root / "regions").mkdir()
    rng = np.random.default_rng(1)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump({"F2": rng.random((6, 3)), "M3": rng.random((6, 3))}, f)
    (root / "regions" / "lve.txt").write_text("0, 1, 2")
    (root / "regions" / "fdd.txt").write_text("3, 4")
    for s, n in (("F2", 1), ("F2", 37), ("M3", 33)):
        _wav(root / "wav" / f"{s}_{n:02d}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
        np.save(root / "vertices_npy" / f"{s}_{n:02d}.npy", rng.random((12, 18)).astype(np.float32))
    tr = TalkingFaceFolder(root, "biwi", "train")
    assert len(tr) == 1 and tr[0]["vertices"].shape == (12, 18)  # 25 fps kept
    assert tr[0]["style"].tolist() == [1, 0, 0, 0, 0, 0]
    assert (
        len(TalkingFaceFolder(root, "biwi", "val")) == 1 and len(TalkingFaceFolder(root, "biwi", "test")) == 1
    )
    g = tr.geometry()
    assert g.lip_idx.tolist() == [0, 1, 2] and g.upper_idx.tolist() == [3, 4] and g.fps == 25.0
    assert read_index_file(root / "regions" / "lve.txt").tolist() == [0, 1, 2]
    (root / "regions" / "fdd.txt").write_text("3, x")
    with pytest.raises(InputError, match="comma-separated"):
        tr.geometry()
    np.save(root / "vertices_npy" / "F2_01.npy", rng.random((12, 7)).astype(np.float32))
    with pytest.raises(InputError, match=r"\(frames, 18\)"):
        tr[0]


def test_evaluate_command_on_vocaset_layout(tmp_path, capsys):
    import json

    import torch
    from diffspeaker.cli import main
    from diffspeaker.model import tiny_audio_config
    from diffspeaker.module import DiffSpeakerModule, evaluate, save_checkpoint, test_seeds

    _make_vocaset(tmp_path / "voca")
    cfg = {
        "n_feats": 30,
        "dim": 16,
        "ff": 32,
        "heads": 4,
        "layers": 1,
        "period": 30,
        "n_styles": 8,
        "time_sin_dim": 32,
    }
    torch.manual_seed(0)
    module = DiffSpeakerModule(cfg, tiny_audio_config(), sampling={"steps": 3})
    torch.nn.init.normal_(module.model.denoiser.motion_decoder.weight, std=0.1)
    test = TalkingFaceFolder(tmp_path / "voca", "vocaset", "test")
    module.geometry = test.geometry()
    calls = []
    orig = module.generate
    module.generate = lambda *a, **k: calls.append(1) or orig(*a, **k)
    res = evaluate(module, test)
    assert len(calls) == 8  # the unseen test subject is generated with each of the 8 training styles
    assert res["LVE"] > 0 and np.isfinite(res["FDD"])
    del module.generate
    save_checkpoint(module, tmp_path / "m.ckpt")
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "m.ckpt"),
            "--data-root",
            str(tmp_path / "voca"),
            "--dataset",
            "vocaset",
            "--runs",
            "2",
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 0
    out = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in out["runs"]] == test_seeds(2) == [1234, 0]
    assert out["summary"]["LVE"]["mean"] == pytest.approx(np.mean([r["LVE"] for r in out["runs"]]))
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "m.ckpt"),
                "--data-root",
                str(tmp_path / "voca"),
                "--dataset",
                "biwi",
            ]
        )
        == 2
    )


def test_vowel_speech_and_openness():
    from diffspeaker.data import VOWELS, synthetic_speech

    wave, op = synthetic_speech(np.random.default_rng(0), 2.0, vowels=True)
    assert wave.shape == op.shape == (32000,)
    assert set(np.unique(op)) <= {0.0} | {np.float32(v[3]) for v in VOWELS.values()} and (op > 0).mean() > 0.3
    # a vowel's spectrum peaks near its first formants, not at f0 multiples of 1/k
    seg = wave[op == np.float32(VOWELS["a"][3])]
    if len(seg) > 2048:
        spec = np.abs(np.fft.rfft(seg[:2048] * np.hanning(2048)))
        peak_hz = np.argmax(spec) * 16000 / 2048
        assert 400 < peak_hz < 1400
    _, op1 = synthetic_speech(np.random.default_rng(0), 2.0, vowels=False)
    assert set(np.unique(op1)) <= {0.0, 1.0}
