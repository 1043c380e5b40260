"""vislab.diffusion: tiny SD, save/load round trip, bad folders, prompt encoding from embeddings,
textual inversion (only the new rows train; the file loads in diffusers' pipeline), cross-attention capture."""

from __future__ import annotations

import json

import pytest
import torch
from vislab.diffusion import (
    AttentionStore,
    TokenRowsGuard,
    add_placeholder_tokens,
    capture_cross_attention,
    cross_attention_layers,
    expand_placeholder,
    load_learned_embeds,
    load_sd,
    save_learned_embeds,
    tiny_sd,
)
from vislab.errors import InputError, VislabError


@pytest.fixture(scope="module")
def sd():
    return tiny_sd(seed=0)


@pytest.fixture(scope="module")
def saved(sd, tmp_path_factory):
    return sd.save(tmp_path_factory.mktemp("tiny_sd") / "model")


def _unet_out(sd, seed=0):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(2, 4, sd.latent_size, sd.latent_size, generator=g)
    cond = sd.encode_prompt(["a red circle", "a blue star on the left"])
    with torch.no_grad():
        return sd.unet(lat, torch.tensor([1, 700]), encoder_hidden_states=cond).sample


def test_tiny_sd_is_real_sd_architecture(sd):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    assert isinstance(sd.tokenizer, CLIPTokenizer) and isinstance(sd.text_encoder, CLIPTextModel)
    assert isinstance(sd.vae, AutoencoderKL) and isinstance(sd.unet, UNet2DConditionModel)
    assert isinstance(sd.scheduler, DDPMScheduler)
    cfg = sd.scheduler.config
    assert cfg.beta_schedule == "scaled_linear" and cfg.steps_offset == 1 and cfg.clip_sample is False
    assert (sd.image_size, sd.latent_size, sd.vae_scale_factor) == (32, 8, 4)
    assert sd.encode_prompt(["a red circle"]).shape == (1, 32, sd.unet.config.cross_attention_dim)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = sd.encode_images(x)
        assert z.shape == (2, 4, 8, 8)
        assert sd.decode_latents(z).shape == (2, 3, 32, 32)
    # different seeds give different weights; the same seed the same
    assert not torch.equal(tiny_sd(seed=1).unet.conv_in.weight, sd.unet.conv_in.weight)


def test_save_and_load_reproduce_unet_output(sd, saved):
    again = load_sd(saved)
    assert type(again.scheduler).__name__ == "DDPMScheduler"
    assert torch.equal(again.tokenize(["a red circle"]), sd.tokenize(["a red circle"]))
    torch.testing.assert_close(_unet_out(again), _unet_out(sd), atol=0, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(again.vae.decode(torch.ones(1, 4, 8, 8)).sample, sd.vae.decode(torch.ones(1, 4, 8, 8)).sample)


def test_saved_folder_runs_in_diffusers_pipeline(saved):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(saved, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    out = pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_load_sd_fp16_variant_folder(sd, saved, tmp_path):
    """A folder whose weights exist only as ``*.fp16.safetensors`` loads, upcast to float32."""
    import shutil

    from safetensors.torch import load_file, save_file

    half = tmp_path / "half"
    shutil.copytree(saved, half)
    for sub, name in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")]:
        f = half / sub / f"{name}.safetensors"
        save_file({k: v.half() for k, v in load_file(f).items()}, half / sub / f"{name}.fp16.safetensors")
        f.unlink()
    again = load_sd(half)
    assert again.dtype == torch.float32
    torch.testing.assert_close(_unet_out(again), _unet_out(sd), atol=2e-2, rtol=2e-2)


def test_load_sd_bad_input(saved, tmp_path):
    import shutil

    with pytest.raises(InputError, match="not found"):
        load_sd(tmp_path / "missing")
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="got a file"):
        load_sd(f)
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(InputError, match="missing subfolder"):
        load_sd(tmp_path / "half")
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot load"):
        load_sd(broken)


def test_encode_prompt_embeddings_matches_ids(sd):
    ids = sd.tokenize(["a red circle", "two stars"])
    emb = sd.token_embedding(ids).detach().requires_grad_(True)
    cond = sd.encode_prompt_embeddings(emb)
    torch.testing.assert_close(cond, sd.encode_prompt(ids), atol=1e-5, rtol=1e-5)
    (cond[:, 3] * torch.randn(cond.shape[-1], generator=torch.Generator().manual_seed(0))).sum().backward()
    assert emb.grad[:, :4].abs().sum() > 0 and emb.grad[:, 4:].abs().sum() == 0  # causal


# ------------------------------------------------------------------------------ textual inversion
def _train_placeholder(sd, prompt, ids, steps=3):
    """A few AdamW steps (with weight decay) on a loss that depends on the placeholder."""
    guard = TokenRowsGuard(sd.text_encoder, ids)
    opt = torch.optim.AdamW(guard.parameters(), lr=5e-2, weight_decay=1e-2)
    tok = sd.tokenize([prompt])
    target = torch.randn(1, tok.shape[1], sd.text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(steps):
        loss = (sd.text_encoder(tok)[0] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        guard.restore()
        losses.append(loss.item())
    guard.remove()
    return guard, losses


def test_textual_inversion_trains_only_new_rows_and_loads_in_diffusers(tmp_path):
    sd = tiny_sd(seed=0)
    w0 = sd.text_encoder.get_input_embeddings().weight.detach().clone()
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<concept>", init_word="star")
    star = sd.tokenizer.encode("star", add_special_tokens=False)[0]
    w = sd.text_encoder.get_input_embeddings().weight
    assert ids == [49408] and w.shape[0] == 49409
    torch.testing.assert_close(w[ids[0]], w[star])
    assert sd.tokenize(["a <concept>"])[0, :4].tolist() == [49406, 320, 49408, 49407]

    guard, losses = _train_placeholder(sd, "a <concept> on the left", ids)
    assert losses[-1] < losses[0]
    w1 = sd.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(w1[:49408], w0)  # every old row exactly as before, despite weight decay
    assert not torch.allclose(w1[ids[0]], w0[star])
    assert all(not p.requires_grad for n, p in sd.text_encoder.named_parameters() if "token_embedding" not in n)

    path = save_learned_embeds(tmp_path / "learned_embeds.safetensors", sd.tokenizer, sd.text_encoder, ids)
    want = sd.encode_prompt(["a <concept> on the left"]).detach()

    pipe = tiny_sd(seed=0).pipeline()
    pipe.load_textual_inversion(str(path))
    assert pipe.tokenizer.convert_tokens_to_ids("<concept>") == 49408
    torch.testing.assert_close(pipe.text_encoder.get_input_embeddings().weight[49408], w1[ids[0]])
    got = pipe.encode_prompt("a <concept> on the left", "cpu", 1, False)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

    fresh = tiny_sd(seed=0)
    assert load_learned_embeds(path, fresh.tokenizer, fresh.text_encoder) == ["<concept>"]
    torch.testing.assert_close(fresh.encode_prompt(["a <concept> on the left"]), want, atol=1e-5, rtol=1e-5)


def test_multi_vector_placeholder_round_trip(tmp_path):
    sd = tiny_sd(seed=0)
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<cat-toy>", num_vectors=3, init_word="cat")
    assert sd.tokenizer.convert_ids_to_tokens(ids) == ["<cat-toy>", "<cat-toy>_1", "<cat-toy>_2"]
    prompt = expand_placeholder("a photo of <cat-toy>", "<cat-toy>", 3)
    assert prompt == "a photo of <cat-toy> <cat-toy>_1 <cat-toy>_2"
    with torch.no_grad():
        w = sd.text_encoder.get_input_embeddings().weight
        w[ids] += torch.randn(3, w.shape[1], generator=torch.Generator().manual_seed(1))
    path = save_learned_embeds(tmp_path / "learned_embeds.bin", sd.tokenizer, sd.text_encoder, ids)
    pipe = tiny_sd(seed=0).pipeline()
    pipe.load_textual_inversion(str(path))
    # the pipeline expands the single placeholder into its three tokens itself
    got = pipe.encode_prompt("a photo of <cat-toy>", "cpu", 1, False)[0]
    torch.testing.assert_close(got, sd.encode_prompt([prompt]), atol=1e-5, rtol=1e-5)


def test_textual_inversion_bad_input(tmp_path):
    sd = tiny_sd(seed=0)
    with pytest.raises(VislabError, match="single token"):
        add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<x>", init_word="checkered pink")
    with pytest.raises(VislabError, match="already contains"):
        add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "star")
    bad = tmp_path / "learned_embeds.safetensors"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError):
        load_learned_embeds(bad, sd.tokenizer, sd.text_encoder)
    with pytest.raises(InputError, match="not found"):
        load_learned_embeds(tmp_path / "missing.bin", sd.tokenizer, sd.text_encoder)
    torch.save({"<w>": torch.zeros(1, 7)}, tmp_path / "wide.bin")
    with pytest.raises(InputError, match="width"):
        load_learned_embeds(tmp_path / "wide.bin", sd.tokenizer, sd.text_encoder)


# ------------------------------------------------------------------------------ attention capture
def test_capture_every_cross_attention_layer(sd):
    layers = cross_attention_layers(sd.unet)
    assert len(layers) == 4  # down 0, mid, two in the last up block
    heads = sd.unet.config.attention_head_dim
    before = _unet_out(sd)
    original = dict(sd.unet.attn_processors)
    store = AttentionStore()
    with capture_cross_attention(sd.unet, store):
        during = _unet_out(sd)
    torch.testing.assert_close(during, before, atol=1e-5, rtol=1e-5)  # capturing does not change the output
    assert {type(p) for p in sd.unet.attn_processors.values()} == {type(p) for p in original.values()}  # restored
    assert set(store.maps) == set(layers)
    L = sd.tokenizer.model_max_length
    for name, m in store.maps.items():
        hw = 16 if name.startswith("mid") else 64
        assert m.shape == (2, heads, hw, L), name
        torch.testing.assert_close(m.sum(-1), torch.ones(2, heads, hw))
        assert not m.requires_grad
    agg = store.aggregate(8)
    assert agg.shape == (2, L, 8, 8)
    torch.testing.assert_close(store.aggregate(8, tokens=[2]), agg[:, 2:3])
    assert store.aggregate(4).shape == (2, L, 4, 4)
    with pytest.raises(ValueError):
        store.aggregate(5)


def test_attention_loss_gradients_reach_latents(sd):
    """A layout loss on the maps (token 2 into the left half) moves the latents and works."""
    store = AttentionStore(keep_grad=True)
    cond = sd.encode_prompt(["a red circle"]).detach()
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)

    def inside():
        store.reset()
        sd.unet(lat, torch.tensor([500]), encoder_hidden_states=cond)
        a = store.aggregate(8, tokens=[2])[0, 0]
        return a[:, :4].sum() / a.sum()

    with capture_cross_attention(sd.unet, store):
        start = inside()
        (-start).backward()
        assert lat.grad is not None and lat.grad.abs().sum() > 0
        for _ in range(5):
            with torch.no_grad():
                lat -= 1.0 * lat.grad / lat.grad.norm()  # descend on -frac
            lat.grad = None
            frac = inside()
            (-frac).backward()
    assert frac.item() > start.item() + 0.01


def test_accumulate_over_a_pipeline_run_and_edit(sd):
    store = AttentionStore(accumulate=True, layers=["up_blocks"])
    pipe = sd.pipeline()
    with capture_cross_attention(sd.unet, store):
        pipe("a red circle", num_inference_steps=2, height=32, width=32, guidance_scale=3.0, output_type="latent",
             generator=torch.Generator().manual_seed(0))
    assert set(store.maps) == {n for n in cross_attention_layers(sd.unet) if n.startswith("up_blocks")}
    assert all(c == 2 for c in store.counts.values())
    assert all(m.shape[0] == 2 for m in store.average().values())  # unconditional + conditional rows
    # an edit hook changes what the UNet computes
    flat = AttentionStore(edit=lambda name, p: torch.full_like(p, 1.0 / p.shape[-1]))
    with capture_cross_attention(sd.unet, flat):
        edited = _unet_out(sd)
    assert (edited - _unet_out(sd)).abs().max() > 1e-6
    json.dumps(sorted(store.maps))  # names are plain strings
