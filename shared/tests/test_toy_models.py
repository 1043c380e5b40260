"""Toy CLIP and toy SD folders: real from_pretrained loaders, vislab loaders, cache reuse and rebuild, CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from vislab.testing import toy as _toy_fixtures
from vislab.toy import cache, clip_model, toy_clip, world

# the shared session fixtures toy_clip_fast / toy_sd_fast, registered under their names
globals().update({name: getattr(_toy_fixtures, name) for name in ("toy_clip_fast", "toy_sd_fast")})

TINY_CLIP = {"steps": 2, "n_images": 48, "eval_images": 12}


# ----------------------------------------------------------------------------- toy CLIP folder


def test_toy_clip_folder_loads_like_a_hf_clip(toy_clip_fast):
    from transformers import CLIPModel, CLIPTokenizer
    from vislab.clip import clip_tokenizer, load_clip

    model = CLIPModel.from_pretrained(toy_clip_fast, local_files_only=True).eval()
    tok = CLIPTokenizer.from_pretrained(toy_clip_fast, local_files_only=True)
    tc = model.config.text_config
    assert tc.vocab_size == len(tok) == 49408 and tc.eos_token_id == 49407
    assert tc.max_position_embeddings >= tok.model_max_length
    texts = ["a small red striped circle on the left and a blue square", "a pink star"]
    ids = clip_model.tokenize(tok, texts, tok.model_max_length)
    assert torch.equal(ids, clip_model.tokenize(clip_tokenizer(tok.model_max_length), texts, tok.model_max_length))
    enc = load_clip(str(toy_clip_fast))
    assert enc.image_size == 32 and enc.context_length == tc.max_position_embeddings
    with torch.no_grad():
        ref = model.get_text_features(input_ids=ids)
        ref = getattr(ref, "pooler_output", ref)
        assert torch.allclose(enc.encode_text(enc.tokenize(texts)), ref, atol=1e-5)
        img = world.ToyDataset(2)[0]["image"][None]
        refi = model.get_image_features(pixel_values=clip_model.normalize(img))
        assert torch.allclose(enc.encode_image(enc.normalize(img)), getattr(refi, "pooler_output", refi), atol=1e-5)


def test_fast_toy_clip_learned_something(toy_clip_fast):
    m = json.loads((toy_clip_fast / "toy_metrics.json").read_text())
    assert m["zero_shot_color_acc"] > 3 * m["chance_color"]  # fast preset: colour is learned first
    assert m["loss_last"] < m["loss_first"]
    judge = clip_model.ZeroShot.from_folder(toy_clip_fast)
    res = clip_model.evaluate(judge, 48)
    assert res["zero_shot_color_acc"] > 0.4
    for png in ("zero_shot_confusion.png", "world_samples.png"):
        assert (toy_clip_fast / png).stat().st_size > 2000


# ----------------------------------------------------------------------------- toy SD folder


def test_toy_sd_folder_loads_like_a_diffusers_sd(toy_sd_fast, toy_clip_fast):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel

    pipe = StableDiffusionPipeline.from_pretrained(toy_sd_fast, local_files_only=True, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.scaling_factor != 0.18215 and pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    out = pipe(["a red circle", "a blue square"], height=32, width=32, num_inference_steps=2, guidance_scale=3.0,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()
    # the text encoder is the toy CLIP's, unchanged
    clip = CLIPModel.from_pretrained(toy_clip_fast, local_files_only=True)
    ids = pipe.tokenizer(["a green ring"], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(pipe.text_encoder(ids)[0], clip.text_model(ids)[0], atol=1e-5)
    for png in ("samples.png", "sd_judged_confusion.png", "vae_reconstructions.png"):
        assert (toy_sd_fast / png).stat().st_size > 2000
    m = json.loads((toy_sd_fast / "toy_metrics.json").read_text())
    assert m["unet_loss_last"] < m["unet_loss_first"]
    assert {"sd_shape_match", "sd_color_match", "chance_shape", "chance_color"} <= set(m)


def test_toy_sd_folder_loads_through_vislab_diffusion(toy_sd_fast):
    diffusion = pytest.importorskip("vislab.diffusion")
    if not hasattr(diffusion, "load_sd"):
        pytest.skip("vislab.diffusion.load_sd not available yet")
    sd = diffusion.load_sd(toy_sd_fast)
    emb = sd.encode_prompt(["a red circle"])
    assert emb.shape[0] == 1 and emb.shape[-1] == sd.unet.config.cross_attention_dim


# ----------------------------------------------------------------------------- cache


def test_cache_reuses_and_rebuilds_a_corrupt_entry(tmp_path, monkeypatch, capsys):
    calls = []
    real = clip_model.pretrain_clip

    def counting(cfg, out):
        calls.append(out)
        return real(cfg, out)

    monkeypatch.setattr(clip_model, "pretrain_clip", counting)
    p1 = toy_clip("fast", root=tmp_path, **TINY_CLIP)
    assert len(calls) == 1 and (p1 / cache.MARKER).is_file() and p1.parent == tmp_path / "toy"
    assert not list((tmp_path / "toy").glob(".tmp-*"))  # built in a temporary folder, then renamed
    p2 = toy_clip("fast", root=tmp_path, **TINY_CLIP)
    assert p2 == p1 and len(calls) == 1  # reused, not retrained
    assert toy_clip("fast", root=tmp_path, **{**TINY_CLIP, "steps": 3}) != p1 and len(calls) == 2  # config -> new key

    # a truncated weight file: detected by the marker, reported, rebuilt
    w = p1 / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    capsys.readouterr()
    p3 = toy_clip("fast", root=tmp_path, **TINY_CLIP)
    assert p3 == p1 and len(calls) == 3
    assert "corrupt" in capsys.readouterr().err and "model.safetensors" in (p1 / cache.MARKER).read_text()

    # same size but garbage bytes: the marker agrees, the loading check does not
    w.write_bytes(b"\0" * w.stat().st_size)
    toy_clip("fast", root=tmp_path, **TINY_CLIP)
    assert len(calls) == 4 and "does not load" in capsys.readouterr().err
    from transformers import CLIPModel

    CLIPModel.from_pretrained(p1, local_files_only=True)

    # an entry without its completion marker (an interrupted copy) is rebuilt too
    (p1 / cache.MARKER).unlink()
    toy_clip("fast", root=tmp_path, **TINY_CLIP)
    assert len(calls) == 5 and "no completion marker" in capsys.readouterr().err


def test_cache_root_and_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    monkeypatch.delenv("VISLAB_CACHE")
    assert cache.cache_root() == Path.home() / ".cache" / "vislab"
    assert cache.config_hash({"a": 1, "b": 2}) == cache.config_hash({"b": 2, "a": 1}) != cache.config_hash({"a": 1, "b": 3})


def test_concurrent_callers_wait_and_never_see_a_half_written_folder(tmp_path):
    builds, seen = [], []

    def build(folder: Path):
        builds.append(folder)
        (folder / "a.txt").write_text("x")
        time.sleep(1.0)
        (folder / "b.txt").write_text("y")

    def caller():
        p = cache.ensure("thing", build, root=tmp_path)
        seen.append(sorted(f.name for f in p.iterdir()))

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert seen == [[cache.MARKER, "a.txt", "b.txt"]] * 3


def test_a_failed_build_leaves_no_entry(tmp_path):
    def build(folder: Path):
        (folder / "a.txt").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.ensure("bad", build, root=tmp_path)
    assert not (tmp_path / "toy" / "bad").exists() and not list((tmp_path / "toy").glob(".tmp-*"))


# ----------------------------------------------------------------------------- command line


def test_cli_pretrain_clip_and_sd_to_a_folder(tmp_path, toy_clip_fast, capsys):
    from vislab.cli import main

    out = tmp_path / "clip"
    assert main(["toy", "pretrain", "clip", "--preset", "fast", "--steps", "2", "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "zero_shot_confusion.png").is_file()
    assert json.loads((out / "toy_metrics.json").read_text())["config"]["steps"] == 2
    sd = tmp_path / "sd"
    rc = main(["toy", "pretrain", "sd", "--preset", "fast", "--steps", "2", "--vae-steps", "2", "--clip", str(toy_clip_fast), "--out", str(sd)])
    assert rc == 0 and (sd / "model_index.json").is_file() and (sd / "samples.png").is_file()
    captured = capsys.readouterr()
    assert "object dropping" in captured.out and "concept overfitting" in captured.out  # the failure modes
    assert "VAE trained" in captured.err and "UNet trained" in captured.err  # one line per stage, no terminal
    fm = json.loads((sd / "failure_modes.json").read_text())
    assert 0 <= fm["object_dropping"]["drop_rate"] <= 1 and 0 <= fm["concept_overfitting"]["overfit_rate"] <= 1
    assert main(["toy", "pretrain", "sd", "--clip", str(tmp_path / "missing"), "--out", str(sd)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["toy", "pretrain", "clip", "--vae-steps", "3"]) == 2
    with pytest.raises(SystemExit):
        main(["toy", "pretrain", "vae"])


def test_min_snr_weights_clip_only_high_snr_timesteps():
    from vislab.toy.sd_model import build_scheduler, min_snr_weights

    sched = build_scheduler()
    t = torch.tensor([0, 50, 500, 999])
    w = min_snr_weights(sched, t, gamma=5.0)
    a = sched.alphas_cumprod[t]
    snr = a / (1 - a)
    expected = torch.where(snr > 5.0, 5.0 / snr, torch.ones_like(snr))
    assert torch.allclose(w, expected.float())
    assert w[0] < 0.01 and w[-1] == 1.0  # the nearly clean step is down-weighted, the noisiest kept


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_blur(toy_clip_fast):
    from transformers import CLIPVisionModel
    from vislab.toy.sd_model import PerceptualLoss

    loss = PerceptualLoss(CLIPVisionModel.from_pretrained(toy_clip_fast))
    x = world.ToyDataset(8, resolution=32, seed=3).tensors()[0] * 2 - 1
    blur1 = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    blur2 = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate"), 5, 1)
    same, small, large = float(loss(x, x)), float(loss(blur1, x)), float(loss(blur2, x))
    assert same < 1e-8 < small < large
    assert not any(p.requires_grad for p in loss.parameters())
