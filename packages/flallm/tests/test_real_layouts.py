"""Replica trees of PHOENIX-2014-T, CSL-Daily and How2Sign and a tiny mBART folder in both tokenizer forms
(conftest.py): Chinese scoring, trimming, sampled-frame video decoding, and the README's commands."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from flallm.tokenizer import SignTokenizer
from vislab.errors import InputError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_both_tokenizer_forms_agree_and_cover_chinese(replicas):
    a = SignTokenizer.from_dir(replicas["mbart"], "zh_CN")
    b = SignTokenizer.from_dir(replicas["mbart_spm"], "zh_CN")
    t = replicas["texts"]
    for text in t["zh"] + t["de"] + t["en"]:
        assert a.ids(text) == b.ids(text), text
        assert a.unk_id not in a.ids(text), text  # full-width "，" and "？" normalised (NFKC), not <unk>
    assert a.normalize(["你好，我叫小明。"]) == ["你好,我叫小明。"]


def test_chinese_references_normalised_like_hypotheses(replicas):
    """A perfect model's output is the reference as the tokenizer writes it; scored against the raw text it
    would lose points on the full-width comma alone."""
    from flallm.metrics import translation_scores

    tok = SignTokenizer.from_dir(replicas["mbart"], "zh_CN")
    refs = ["今天天气很好，我们去公园。", "你好，我叫小明。"]
    hyps = tok.decode([tok.ids(r) + [tok.eos_id] for r in refs])
    assert translation_scores(hyps, tok.normalize(refs), "zh_CN")["bleu4"] == pytest.approx(100.0)
    assert translation_scores(hyps, refs, "zh_CN")["bleu4"] < 100.0


def test_trim_fails_loudly_on_unk(replicas, tmp_path):
    from flallm.commands import trim_mbart

    for form in ("mbart", "mbart_spm"):
        r = trim_mbart(replicas[form], tmp_path / form, "zh_CN", ["你好，我叫小明。", "我想喝水。"])
        assert r["kept"] < r["original"]
    with pytest.raises(InputError, match="1 of 2 training sentences tokenize to <unk>"):
        trim_mbart(replicas["mbart"], tmp_path / "bad", "zh_CN", ["你好。", "龍鳳呈祥"])
    assert not (tmp_path / "bad").exists()


def test_read_video_decodes_only_sampled_frames(tmp_path, monkeypatch, mp4_writer):
    """Only the sampled frames are retrieved (converted and kept), also when the header's count is wrong."""
    import flallm.data as data

    frames = np.stack([np.full((16, 16, 3), 6 * t, np.uint8) for t in range(40)])
    mp4_writer(tmp_path / "c.mp4", frames)
    calls = {"retrieve": 0}
    real_open = data._open_capture

    class Counting:
        def __init__(self, p):
            self.cap = real_open(p)

        def retrieve(self):
            calls["retrieve"] += 1
            return self.cap.retrieve()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(data, "_open_capture", Counting)
    out = data.read_video(tmp_path / "c.mp4", lambda T: data.sample_indices(T, 4, 300))
    assert out.shape == (10, 16, 16, 3) and calls["retrieve"] == 10
    assert np.allclose(out[:, 8, 8, 0].astype(float), 24 * np.arange(10), atol=6)  # frames 0, 4, 8, ...
    np.save(tmp_path / "c.npy", frames)
    assert np.array_equal(data.read_video(tmp_path / "c.npy", lambda T: [1, 5]), frames[[1, 5]])


def readme_commands(prefix: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [ln.split()[1:] for ln in lines if ln.startswith(prefix)]


SHRINK = ["--data.image_size", "32", "--data.resize", "null", "--data.num_workers", "0", "--model.visual.temporal_dim", "16",
          "--model.visual.temporal_kernel", "3", "--model.light_t.d_model", "16", "--model.light_t.encoder_layers", "1",
          "--model.light_t.decoder_layers", "1", "--model.light_t.heads", "2", "--model.light_t.ffn", "32",
          "--model.light_t.max_positions", "64", "--stage1.epochs", "1", "--stage2.epochs", "1", "--stage1.batch_size", "2",
          "--stage2.batch_size", "2", "--eval_batch_size", "4", "--stage1.decode.num_beams", "2", "--stage2.decode.num_beams", "2",
          "--stage1.decode.max_new_tokens", "6", "--stage2.decode.max_new_tokens", "6", "--pictures.n_clips", "1",
          "--trainer.enable_progress_bar", "false"]


@pytest.mark.slow
def test_readme_commands_run_on_replicas(replicas, tmp_path, capsys):
    """trim for each dataset, train with the paper preset (shrunk by appended arguments), translate."""
    import torchvision
    from flallm.cli import main

    models = tmp_path / "models"
    models.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), models / "resnet18.pth")
    paths = {"/models/mbart-large-cc25": str(replicas["mbart"]), "/data/PHOENIX-2014-T": str(replicas["phoenix14t"]),
             "/data/CSL-Daily": str(replicas["csl_daily"]), "/data/How2Sign": str(replicas["how2sign"]),
             "/models/resnet18.pth": str(models / "resnet18.pth")}

    def sub(a: str) -> str:
        if a in paths:
            return paths[a]
        if a.startswith(("/models/", "runs/")):
            return str(tmp_path / a.lstrip("/"))
        return a

    trims = readme_commands("flallm trim")
    assert len(trims) == 3
    for argv in trims:
        assert main([sub(a) for a in argv]) == 0
    trains = readme_commands("flallm --preset paper")
    assert len(trains) == 3
    for argv in trains:
        argv = [sub(a) for a in argv]
        out = tmp_path / "runs" / argv[argv.index("--data.source") + 1] if "--data.source" in argv else None
        extra = [] if "--output-dir" in argv else ["--output-dir", str(out)]
        assert main([*argv, *SHRINK, *extra]) == 0
        m = json.loads(((Path(argv[argv.index("--output-dir") + 1]) if "--output-dir" in argv else out) / "metrics.json").read_text())
        assert "test_after_stage2" in m and m["constant_reference"]["sentence"]
    (translate,) = readme_commands("flallm translate")
    clip = next((replicas["how2sign"] / "test_rgb_front_clips" / "raw_videos").glob("*.mp4"))
    frames = next((replicas["phoenix14t"] / "features" / "fullFrame-210x260px" / "test").iterdir())
    shutil.copy(clip, tmp_path / "clip1.mp4")
    shutil.copytree(frames, tmp_path / "frames_of_clip2")
    args = [sub(a) if not a.endswith((".mp4", "/", ".json")) else str(tmp_path / a) for a in translate]
    capsys.readouterr()
    assert main(args) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert json.loads((tmp_path / "translations.json").read_text())[0]["translation"] is not None
