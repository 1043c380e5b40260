"""Shapes, formulas on fixed inputs and gradient flow of the CFPL components."""

import torch
from cfpl.model import (
    CFPL,
    DiversifiedStylePrompt,
    PromptModulation,
    PromptTextEncoder,
    QFormer,
    content_feature,
    sample_hard_negatives,
    style_feature,
    token_stats,
)

HEAD = dict(n_queries=4, qformer_heads=2, pm_reduction=4)


def test_token_stats_by_hand():
    v = torch.tensor([[[100.0, 0.0], [1.0, 2.0], [3.0, 6.0]]])  # token 0 = CLS (excluded)
    mu, sigma = token_stats(v, exclude_cls=True, eps=0.0)
    assert torch.allclose(mu, torch.tensor([[2.0, 4.0]]))
    assert torch.allclose(sigma, torch.tensor([[1.0, 2.0]]))  # biased std
    mu_all, _ = token_stats(v, exclude_cls=False, eps=0.0)
    assert torch.allclose(mu_all, torch.tensor([[104 / 3, 8 / 3]]))


def test_content_and_style_features():
    torch.manual_seed(0)
    blocks = [torch.randn(3, 5, 4) * (l + 1) + l for l in range(3)]
    vc = content_feature(blocks[-1], eps=0.0)
    assert vc.shape == (3, 5, 4)
    assert torch.allclose(vc[:, 0], blocks[-1][:, 0])  # CLS untouched
    assert torch.allclose(vc[:, 1:].mean(1), torch.zeros(3, 4), atol=1e-5)
    assert torch.allclose(vc[:, 1:].var(1, unbiased=False), torch.ones(3, 4), atol=1e-4)
    vs = style_feature(blocks, eps=0.0)
    assert vs.shape == (3, 1, 8)
    want = torch.stack([torch.cat(token_stats(b, eps=0.0), -1) for b in blocks]).mean(0)
    assert torch.allclose(vs[:, 0], want)


def test_dsp_mixes_only_in_training():
    dsp = DiversifiedStylePrompt(p=1.0, alpha=0.1)
    v = torch.arange(8.0).view(4, 1, 2)
    dsp.eval()
    assert torch.equal(dsp(v), v)
    dsp.train()
    torch.manual_seed(0)
    out = dsp(v)
    assert out.shape == v.shape and not torch.equal(out, v)
    # every mixed row is a convex combination of two rows: its two channels keep the row's structure
    assert torch.allclose(out[..., 1] - out[..., 0], torch.ones(4, 1))
    dsp0 = DiversifiedStylePrompt(p=0.0).train()
    assert torch.equal(dsp0(v), v)


def test_prompt_modulation_formula():
    pm = PromptModulation(embed_dim=4, reduction=2)
    with torch.no_grad():
        pm.fc1.weight.fill_(0.1)
        pm.fc1.bias.zero_()
        pm.fc2.weight.fill_(1.0)
        pm.fc2.bias.fill_(-0.5)
    t_c, t_s, v = torch.ones(1, 4), torch.ones(1, 4), torch.full((1, 4), 2.0)
    # W1 [t_c||t_s] = 0.8 per hidden unit (2 units) -> W2 relu = 1.6 - 0.5 = 1.1 -> sigmoid
    w = torch.sigmoid(torch.tensor(1.1))
    assert torch.allclose(pm(v, t_c, t_s), torch.full((1, 4), 2 * w.item()))


def test_qformer_shapes_and_init():
    q = QFormer(n_queries=5, dim=16, ctx_dim=24, depth=2, heads=2)
    assert abs(q.queries.std().item() - 0.02) < 0.01
    out = q(torch.randn(3, 7, 24))
    assert out.shape == (3, 5, 16)
    assert q(torch.randn(3, 1, 24)).shape == (3, 5, 16)  # style context of length 1


def test_prompt_text_encoder_matches_clip_text_path(clip):
    """Feeding a real sentence's token embeddings as 'prompts' reproduces encode_text."""
    ids = clip.tokenize(["a photo of a face"])
    n = int((ids[0] != ids[0, -1]).sum()) - 1  # tokens between SOT and EOT
    enc = PromptTextEncoder(clip, n)
    prompts = clip.token_embedding(ids)[:, 1 : n + 1]
    with torch.no_grad():
        assert torch.allclose(enc(prompts), clip.encode_text(ids), atol=1e-5)


def test_hard_negatives_have_other_label():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    sim = torch.randn(6, 6)
    for _ in range(5):
        neg_prompt, neg_text = sample_hard_negatives(sim, labels)
        assert (labels[neg_prompt] != labels).all() and (labels[neg_text] != labels).all()
    # strongly peaked similarity picks the hardest candidate
    sim = torch.full((2, 2), -100.0)
    sim[0, 1] = sim[1, 0] = 100.0
    p, t = sample_hard_negatives(sim, torch.tensor([0, 1]))
    assert p.tolist() == [1, 0] and t.tolist() == [1, 0]
    # one class only: no candidate exists, none is invented from the same class
    p, t = sample_hard_negatives(torch.randn(3, 3), torch.tensor([1, 1, 1]))
    assert p.tolist() == [-1, -1, -1] and t.tolist() == [-1, -1, -1]


def test_single_class_batch_has_no_own_text_negative(clip):
    """A batch of one class: no pair (prompt, its own class's text) may be trained as a negative.

    Same-label texts are identical, so pairing prompt i with another same-label sample's text (or
    text i with another same-label prompt) would label a matched pair 0."""
    torch.manual_seed(0)
    m = CFPL(clip, HEAD).train()
    captured = {}
    head = m.ptm_head.forward
    m.ptm_head.forward = lambda r: (captured.__setitem__("r", r), head(r))[1]
    d_t = m.ptm_text.shape[1]
    for lab in (0, 1):
        y = torch.full((4,), lab)
        p_c = torch.randn(4, 4, d_t)
        logits, target = m.ptm_logits(p_c, y)
        r = captured["r"]
        assert logits.shape[0] == len(target) == len(r)
        own = m.ptm_text[lab]
        for row, t in zip(r, target):
            is_own_text = torch.allclose(row[0, d_t:], own)
            prompt_from_batch = any(torch.equal(row[:, :d_t], p) for p in p_c)
            if t == 0:  # a negative pairs a batch prompt with the other class's text
                assert prompt_from_batch and not is_own_text
            else:
                assert is_own_text
        assert int(target.sum()) == 4 and int((target == 0).sum()) == 4  # no prompt negatives exist; 4 text negatives
    # mixed batch: still 3B rows, every negative text differs from the prompt's own
    y = torch.tensor([0, 1, 0, 1])
    logits, target = m.ptm_logits(torch.randn(4, 4, d_t), y)
    assert logits.shape == (12, 2) and target.tolist() == [1] * 4 + [0] * 8


def test_cfpl_forward_ptm_and_frozen_clip(clip):
    torch.manual_seed(0)
    m = CFPL(clip, HEAD).train()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    out = m(x)
    assert out["logits"].shape == (4, 2)
    assert out["p_c"].shape == (4, 4, 64) and out["p_s"].shape == (4, 4, 64)
    assert out["w"].min() > 0 and out["w"].max() < 1
    logits, target = m.ptm_logits(out["p_c"], y)
    assert logits.shape == (12, 2) and target.tolist() == [1] * 4 + [0] * 8
    (out["logits"].sum() + logits.sum()).backward()
    assert all(p.grad is None for p in m.clip.parameters())
    for name in ("cqf.queries", "sqf.queries", "pm.fc1.weight", "classifier.weight", "ptm_head.fc.weight"):
        assert dict(m.named_parameters())[name].grad is not None, name
    assert not m.clip.training  # frozen CLIP stays in eval mode


def test_finetune_flag_trains_image_tower_only(clip):
    import copy

    m = CFPL(copy.deepcopy(clip), HEAD, finetune_image_encoder=True)
    enc = m.encoder_parameters()
    assert enc and all(p.requires_grad for p in enc)
    names = [n for n, p in m.named_parameters() if n.startswith("clip.") and p.requires_grad]
    assert all("vision" in n or "visual" in n for n in names)


def test_ablation_switches(clip):
    m = CFPL(clip, {**HEAD, "modulation": False, "style_branch": False}).eval()
    out = m(torch.rand(2, 3, 32, 32))
    assert torch.equal(out["w"], torch.ones_like(out["w"]))
    assert torch.equal(out["t_s"], torch.zeros_like(out["t_s"]))
