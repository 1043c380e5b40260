"""Module shapes, padding, freezing, LoRA, tokenizer conventions and mBART trimming."""

from __future__ import annotations

import pytest
import torch
from flallm.model import Backbone, LLMAdapter, LocalTemporalModule, VisualEncoder, VLAdapter, build_llm
from flallm.tokenizer import SignTokenizer
from vislab.errors import InputError, VislabError


def _batch(B=2, N=5, S=32, lengths=(5, 3)):
    x = torch.rand(B, N, 3, S, S)
    return x, torch.tensor(lengths)


def test_backbone_and_temporal_shapes_and_padding():
    torch.manual_seed(0)
    enc = VisualEncoder("tiny_cnn", temporal_dim=24, temporal_kernel=3).eval()
    x, L = _batch()
    f = enc(x, L)
    assert f.shape == (2, 5, 24)
    assert torch.all(f[1, 3:] == 0)  # padding steps are zero
    # a clip alone and inside a padded batch give the same features
    alone = enc(x[1:, :3], L[1:])
    assert torch.allclose(alone[0], f[1, :3], atol=1e-5)
    assert VLAdapter(24, 16)(f).shape == (2, 5, 16)
    assert LLMAdapter(24, 48)(f).shape == (2, 5, 48)
    t = LocalTemporalModule(8, 12, 5)
    assert t(torch.rand(3, 7, 8), torch.tensor([7, 2, 1])).shape == (3, 7, 12)


def test_resnet18_backbone_random_and_from_local_file(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    p = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), p)
    b = Backbone("resnet18", str(p)).eval()
    assert torch.equal(b.net.conv1.weight, net.conv1.weight)
    x, L = _batch(S=64, lengths=(2, 1), N=2)
    assert b(x, L).shape == (2, 2, 512)
    with pytest.raises(InputError, match="not found"):
        Backbone("resnet18", str(tmp_path / "missing.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="not a torchvision ResNet18"):
        Backbone("resnet18", str(tmp_path / "wrong.pth"))


def test_tokenizer_mbart_target_convention(tok):
    labels = tok.encode_targets(["the man sees the ball", "the dog wants"])
    assert labels[0, -2:].tolist() == [tok.eos_id, tok.lang_id]
    assert labels[1].tolist()[:5] == tok.ids("the dog wants") + [tok.eos_id, tok.lang_id]
    assert labels[1, -1] == tok.pad_id
    dec = tok.shift_right(labels)
    assert dec[:, 0].tolist() == [tok.lang_id, tok.lang_id]
    assert dec[0, 1:].tolist() == labels[0, :-1].tolist()
    assert tok.decode(labels) == ["the man sees the ball", "the dog wants"]
    tok2 = SignTokenizer.from_state(tok.state())
    assert tok2.encode_targets(["the man sees"]).tolist() == tok.encode_targets(["the man sees"]).tolist()
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)


def test_stage2_encoder_frozen_with_bn_stats(cfg, tok, splits):
    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage2Module

    m = Stage2Module(cfg, tok)
    m.train()
    assert not m.visual.training and not any(p.requires_grad for p in m.visual.parameters())
    before = {k: v.clone() for k, v in m.visual.state_dict().items()}
    ds = SignVideoDataset(splits["train"][:4], cfg["data"], train=True)
    batch = VideoCollator(tok)([ds[i] for i in range(4)])
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    loss = m.loss(batch)
    loss.backward()
    opt.step()
    for k, v in m.visual.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN running stats untouched
    assert m.llm_adapter.net[0].weight.grad is not None


def test_lora_leaves_only_lora_and_adapter_trainable(cfg, tok):
    from flallm.module import Stage2Module

    c = {**cfg, "model": {**cfg["model"], "llm": {**cfg["model"]["llm"], "finetune": "lora", "lora": {**cfg["model"]["llm"]["lora"], "r": 4}}}}
    m = Stage2Module(c, tok)
    names = [n for n, p in m.head.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert all(p.requires_grad for p in m.llm_adapter.parameters())
    with pytest.raises(ValueError, match="finetune"):
        build_llm({**cfg["model"]["llm"], "finetune": "half"}, tok.vocab_size, 1, 2)


def _pretrained_tiny(tmp_path, cfg):
    """A local 'pretrained' mBART folder: tiny random MBart + a word-level tokenizer.json with extra words."""
    from flallm.model import mbart_config
    from transformers import MBartForConditionalGeneration

    words = "the man woman child dog sees likes takes wants ball apple book car zebra yacht quartz".split()
    tk = SignTokenizer.build_word_level([" ".join(words)], "en_XX")
    tk.backend.add_special_tokens(["de_DE", "zh_CN"])
    d = tmp_path / "mbart"
    d.mkdir()
    tk.backend.save(str(d / "tokenizer.json"))
    V = tk.backend.get_vocab_size(with_added_tokens=True)
    torch.manual_seed(0)
    model = MBartForConditionalGeneration(mbart_config(V, 16, 1, 1, 2, 32, max_positions=32))
    model.save_pretrained(str(d))
    return d, model, tk


def test_trim_keeps_used_rows_and_round_trips(tmp_path, cfg):
    from flallm.commands import trim_mbart
    from transformers import MBartForConditionalGeneration

    d, model, tk = _pretrained_tiny(tmp_path, cfg)
    out = tmp_path / "trimmed"
    r = trim_mbart(d, out, "de_DE", ["the man sees the ball", "the dog wants"])
    assert r["kept"] == 4 + 1 + 6  # specials, de_DE, 6 distinct words
    t = SignTokenizer.from_dir(out, "de_DE")
    assert t.vocab_size == r["kept"]
    trimmed = MBartForConditionalGeneration.from_pretrained(str(out), local_files_only=True).eval()
    assert trimmed.config.vocab_size == r["kept"]
    model.eval()
    full_ids = torch.tensor([tk.backend.encode("the man sees", add_special_tokens=False).ids + [2]])
    new_ids = torch.tensor([t.ids("the man sees") + [t.eos_id]])
    dec_full = torch.tensor([[tk.backend.token_to_id("de_DE")]])
    dec_new = torch.tensor([[t.lang_id]])
    lf = model(input_ids=full_ids, decoder_input_ids=dec_full).logits[0, -1]
    lt = trimmed(input_ids=new_ids, decoder_input_ids=dec_new).logits[0, -1]
    assert torch.allclose(lf[torch.tensor(t.kept_ids)], lt, atol=1e-5)
    assert t.decode([[t.lang_id] + t.ids("the dog wants the ball") + [t.eos_id]]) == ["the dog wants the ball"]
    assert t.ids("zebra") == [t.unk_id]  # trimmed away
    with pytest.raises(InputError, match="exists"):
        trim_mbart(d, out, "de_DE", ["the man"])
    from flallm.cli import main

    (tmp_path / "sent.txt").write_text("the man sees\nthe car\n")
    assert main(["trim", "--model", str(d), "--out", str(tmp_path / "t2"), "--lang", "de_DE", "--sentences", str(tmp_path / "sent.txt")]) == 0
    assert SignTokenizer.from_dir(tmp_path / "t2", "de_DE").vocab_size == 4 + 1 + 4
    assert main(["trim", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "t3"), "--lang", "de_DE",
                 "--sentences", str(tmp_path / "sent.txt")]) == 2
    assert not (tmp_path / "t3").exists()
    with pytest.raises(VislabError, match="mBART-cc25"):
        trim_mbart(d, tmp_path / "x", "xx_YY", ["the man"])
    with pytest.raises(InputError, match="already trimmed"):
        trim_mbart(out, tmp_path / "y", "de_DE", ["the man"])


def test_stage2_loads_local_mbart_folder(tmp_path, cfg):
    from flallm.commands import trim_mbart
    from flallm.module import Stage2Module

    d, _, _ = _pretrained_tiny(tmp_path, cfg)
    out = tmp_path / "trimmed"
    trim_mbart(d, out, "de_DE", ["the man sees the ball"])
    t = SignTokenizer.from_dir(out, "de_DE")
    c = {**cfg, "model": {**cfg["model"], "llm": {**cfg["model"]["llm"], "path": str(out), "dropout": 0.3}}}
    m = Stage2Module(c, t)
    assert m.head.model.config.dropout == 0.3 and m.head.model.model.encoder.dropout == 0.3
    assert m.head.model.config.vocab_size == t.vocab_size and m.llm_adapter.net[-1].out_features == 16
    with pytest.raises(InputError, match="mBART folder not found"):
        Stage2Module({**c, "model": {**c["model"], "llm": {**c["model"]["llm"], "path": str(tmp_path / "nope")}}}, t)


def test_cached_features_equal_on_the_fly_features(cfg, tok, splits):
    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage2Module
    from flallm.train import extract_features

    torch.manual_seed(0)
    m = Stage2Module(cfg, tok).eval()
    items = extract_features(m, splits["dev"][:3], cfg, "cache")
    ds = SignVideoDataset(splits["dev"][:3], cfg["data"], train=False)
    vb = VideoCollator(tok)([ds[i] for i in range(3)])
    fb = VideoCollator(tok)(items)
    e1, m1 = m.encode(vb)
    e2, m2 = m.encode(fb)
    assert torch.equal(m1, m2) and torch.allclose(e1 * m1[..., None], e2 * m2[..., None], atol=1e-5)


def test_stage1_with_resnet18_backbone_smoke(cfg, tok, splits):
    """The paper's backbone (random init, no weights file) inside Stage 1: loss and gradients flow."""
    import copy

    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage1Module

    c = copy.deepcopy(cfg)
    c["model"]["visual"].update(backbone="resnet18", weights=None, temporal_dim=32)
    c["data"].update(image_size=64, resize=None)
    m = Stage1Module(c, tok)
    ds = SignVideoDataset(splits["train"][:2], c["data"], train=True)
    batch = VideoCollator(tok)([ds[i] for i in range(2)])
    assert batch["frames"].shape[-2:] == (64, 64)
    loss = m.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and m.visual.backbone.net.conv1.weight.grad.abs().sum() > 0
