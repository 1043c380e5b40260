"""vislab.clip: the two backends agree with their native forward passes, the token-embedding path,
image tokens and visual prompts, loading (and bad input), and CoOp's prompt learner."""

from __future__ import annotations

import json

import pytest
import torch
from vislab.clip import EOS_ID, ClipEncoder, PromptLearner, load_clip, tiny_clip
from vislab.errors import InputError, VislabError

TEXTS = ["a red circle", "two blue squares at the top left"]


@pytest.fixture(scope="module", params=["hf", "open_clip"])
def clip(request) -> ClipEncoder:
    return tiny_clip(request.param, seed=0)


@pytest.fixture(scope="module")
def hf_clip() -> ClipEncoder:
    return tiny_clip("hf", seed=1)


def test_attributes(clip):
    assert (clip.embed_dim, clip.text_width, clip.vision_width) == (32, 64, 64)
    assert clip.image_size == 32 and clip.context_length == 32
    assert clip.logit_scale.ndim == 0 and float(clip.logit_scale) == pytest.approx(1 / 0.07, rel=1e-3)
    ids = clip.tokenize(TEXTS)
    assert ids.shape == (2, 32) and ids.dtype == torch.long
    assert (ids[:, 0] == 49406).all() and (ids == EOS_ID).any(dim=1).all()


@torch.no_grad()
def test_embedding_path_matches_native_text_encoder(clip):
    ids = clip.tokenize(TEXTS)
    feats = clip.encode_text_embeddings(clip.token_embedding(ids), ids)
    if clip.backend == "hf":
        native = clip.model.get_text_features(input_ids=ids)
        native = native if isinstance(native, torch.Tensor) else native.pooler_output
    else:
        native = clip.model.encode_text(ids)
    assert feats.shape == (2, 32)
    torch.testing.assert_close(feats, native, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip.encode_text(ids), native, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip.encode_text(TEXTS), native, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_embedding_path_is_causal_and_pools_at_eos(clip):
    ids = clip.tokenize(["a red circle"])  # [SOS a red circle EOS pad...]: EOS at 4
    emb = clip.token_embedding(ids)
    base = clip.encode_text_embeddings(emb, ids)
    g = torch.Generator().manual_seed(0)
    after = emb.clone()
    after[:, 6] += torch.randn(emb.shape[-1], generator=g)  # after EOS: invisible to the causal transformer at the EOS slot
    torch.testing.assert_close(clip.encode_text_embeddings(after, ids), base)
    before = emb.clone()
    before[:, 2] += torch.randn(emb.shape[-1], generator=g)
    assert (clip.encode_text_embeddings(before, ids) - base).abs().max() > 1e-3
    # placeholder ids beyond the vocabulary do not move the pooling slot
    ids2 = ids.clone()
    ids2[0, 2] = 60000
    torch.testing.assert_close(clip.encode_text_embeddings(emb, ids2), base)


def test_embedding_path_gradients_reach_embeddings(clip):
    ids = clip.tokenize(TEXTS)
    emb = clip.token_embedding(ids).detach().requires_grad_(True)
    clip.encode_text_embeddings(emb, ids).pow(2).sum().backward()
    g = emb.grad.abs().sum(-1)
    assert (g[:, 1] > 0).all()
    eos = (ids == EOS_ID).int().argmax(-1)
    assert g[0, eos[0] + 1 :].sum() == 0  # positions after EOS get no gradient


@torch.no_grad()
def test_image_tokens_layers_and_visual_prompts(clip):
    torch.manual_seed(0)
    px = clip.normalize(torch.rand(2, 3, 32, 32))
    f = clip.encode_image(px)
    f2, tokens = clip.encode_image(px, return_tokens=True)
    assert f.shape == (2, 32) and tokens.shape == (2, 1 + 16, 64)
    torch.testing.assert_close(f, f2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip.image_projection(tokens[:, 0]), f, atol=1e-5, rtol=1e-5)
    layers = clip.image_layers(px)
    assert len(layers) == 2 and all(h.shape == (2, 17, 64) for h in layers)
    torch.testing.assert_close(clip.pool_image(layers[-1]), f, atol=1e-5, rtol=1e-5)
    fp, tp = clip.encode_image(px, return_tokens=True, prompt_tokens=torch.randn(3, 64))
    assert tp.shape == (2, 20, 64) and (fp - f).abs().max() > 1e-4
    # deep (MaPLe-style) prompts: a list; one set equals the shallow form, a second set changes block 2's input
    v1, v2 = torch.randn(3, 64), torch.randn(3, 64)
    torch.testing.assert_close(clip.encode_image(px, prompt_tokens=[v1]), clip.encode_image(px, prompt_tokens=v1))
    deep = clip.image_layers(px, prompt_tokens=[v1, v2])
    shallow = clip.image_layers(px, prompt_tokens=v1)
    torch.testing.assert_close(deep[0], shallow[0])
    assert (deep[1] - shallow[1]).abs().max() > 1e-4
    ln_pre, blocks, _ = clip.vision_blocks()
    h = blocks[0](ln_pre(clip.image_embeddings(px, v1)))
    manual = blocks[1](torch.cat([h[:, :-3], v2.expand(2, -1, -1)], dim=1))
    torch.testing.assert_close(deep[1], manual)
    logits = clip(px, clip.tokenize(TEXTS))
    assert logits.shape == (2, 2)
    assert torch.allclose(clip.normalize(torch.ones(1, 3, 1, 1)).flatten(), (1 - clip.pixel_mean.flatten()) / clip.pixel_std.flatten())


@torch.no_grad()
def test_hf_folder_round_trip(hf_clip, tmp_path):
    hf_clip.save(tmp_path / "clip")
    again = load_clip(str(tmp_path / "clip"))
    assert again.backend == "hf" and again.context_length == 32
    ids = again.tokenize(TEXTS)
    assert torch.equal(ids, hf_clip.tokenize(TEXTS))
    torch.testing.assert_close(again.encode_text(ids), hf_clip.encode_text(ids))
    px = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(again.encode_image(px), hf_clip.encode_image(px))


def _register_tiny_open_clip(tmp_path, name, width):
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": width, "heads": 2, "layers": 1}}
    d = tmp_path / "oc_cfg"
    d.mkdir(exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d)
    return open_clip.create_model(name, pretrained=None)


@torch.no_grad()
def test_open_clip_name_plus_checkpoint(tmp_path):
    model = _register_tiny_open_clip(tmp_path, "vislab-test-tiny", 32)
    _register_tiny_open_clip(tmp_path, "vislab-test-tiny-wide", 48)
    ckpt = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    enc = load_clip("vislab-test-tiny", ckpt)
    assert enc.backend == "open_clip" and enc.context_length == 16
    ids = enc.tokenize(TEXTS)
    torch.testing.assert_close(enc.encode_text(ids), model.encode_text(ids))
    with pytest.raises(InputError, match="does not match"):
        load_clip("vislab-test-tiny-wide", ckpt)
    with pytest.raises(InputError, match="not found"):
        load_clip("vislab-test-tiny", tmp_path / "missing.pt")
    with pytest.raises(VislabError, match="not an open_clip architecture"):
        load_clip("ViT-Nonexistent-99", ckpt)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        load_clip("vislab-test-tiny", bad)


def test_load_clip_bad_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_clip(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="no config.json"):
        load_clip(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="not a CLIP"):
        load_clip(str(tmp_path))
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(InputError, match="unreadable"):
        load_clip(str(tmp_path))
    with pytest.raises(VislabError, match="nothing is downloaded"):
        load_clip("openai/clip-vit-base-patch32".replace("/", "-"))


# ------------------------------------------------------------------------------ CoOp
@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_prompt_learner_shapes_and_gradients(hf_clip, position):
    pl = PromptLearner(hf_clip, ["red circle", "blue_square", "star"], n_ctx=4, position=position)
    feats = pl()
    assert feats.shape == (3, 32)
    feats.sum().backward()
    assert pl.ctx.grad is not None and pl.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in hf_clip.parameters())
    assert [n for n, _ in pl.named_parameters()] == ["ctx"]
    assert set(pl.state_dict()) == {"ctx"}
    # the class tokens sit where the position says
    emb = pl.prompt_embeddings()
    name = hf_clip.token_embedding(hf_clip.tokenize(["star"])[:, 1:2])[0, 0]
    slot = {"end": 1 + 4, "middle": 1 + 2, "front": 1}[position]
    torch.testing.assert_close(emb[2, slot], name)


def test_prompt_learner_init_csc_and_shift(hf_clip):
    pl = PromptLearner(hf_clip, ["circle", "square"], ctx_init="a photo of a")
    assert pl.n_ctx == 4 and pl.ctx.shape == (4, 64)
    with torch.no_grad():
        # initialised from the words: equals the plain prompt "a photo of a circle."
        torch.testing.assert_close(pl(), hf_clip.encode_text(["a photo of a circle.", "a photo of a square."]), atol=1e-5, rtol=1e-5)
    csc = PromptLearner(hf_clip, ["circle", "square"], n_ctx=2, csc=True)
    assert csc.ctx.shape == (2, 2, 64)
    shifted = pl(ctx_shift=torch.zeros(3, 64))
    assert shifted.shape == (3, 2, 32)
    torch.testing.assert_close(shifted[1], pl(), atol=1e-5, rtol=1e-5)
    with pytest.raises(VislabError):
        PromptLearner(hf_clip, [])


def test_prompt_learner_learns(hf_clip):
    """A few Adam steps on the context alone raise the logit of the right class."""
    torch.manual_seed(0)
    pl = PromptLearner(hf_clip, ["circle", "square", "star"], n_ctx=4)
    img = torch.randn(6, 32)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam(pl.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(pl.logits(img), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
