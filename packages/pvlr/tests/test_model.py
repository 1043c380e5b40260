"""Shapes, switches, gradients and equivariance of PVLR's components."""

from __future__ import annotations

import pytest
import torch
from pvlr.model import CAP, DMA, IFM, KAP, PVLR, PVLRConfig, SimilarityHead, sine_position_2d

NAMES = ["red circle", "blue square", "green star"]


@pytest.fixture(scope="module")
def clip():
    from vislab.clip import tiny_clip

    return tiny_clip().freeze()


def cfg(**kw):
    base = dict(visual="cnn", image_size=32, n_ctx=4, label_heads=2, label_ffn=64, ifm_heads=2)
    base.update(kw)
    return PVLRConfig(**base)


def test_forward_shapes_and_every_switch(clip):
    x = torch.rand(2, 3, 32, 32)
    for fusion in IFM.FUSIONS:
        for dma in DMA.MODES:
            m = PVLR(clip, NAMES, cfg(fusion=fusion, dma=dma))
            assert m(x).shape == (2, 3)
    m = PVLR(clip, NAMES, cfg(cap_conditional=True, dma_heads=2))
    assert m(x).shape == (2, 3)


def test_clip_vision_tower_smoke(clip):
    m = PVLR(clip, NAMES, cfg(visual="clip"))
    assert m(torch.rand(1, 3, 48, 48)).shape == (1, 3)


def test_gradients_reach_context_not_text_tower(clip):
    m = PVLR(clip, NAMES, cfg())
    m(torch.rand(2, 3, 32, 32)).sum().backward()
    assert m.cap.ctx.grad is not None and m.cap.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.clip.parameters())
    assert "kap.k0" not in m.state_dict()  # the fixed KAP features are a non-persistent buffer


def test_kap_is_equivariant_to_label_order(clip):
    torch.manual_seed(0)
    k = KAP(clip, NAMES, heads=2, ffn=64).eval()
    perm = [2, 0, 1]
    k2 = KAP(clip, [NAMES[i] for i in perm], heads=2, ffn=64).eval()
    k2.relation.load_state_dict(k.relation.state_dict())
    assert torch.allclose(k()[perm], k2(), atol=1e-5)


def test_cap_prompt_layout(clip):
    c = CAP(clip, NAMES, n_ctx=4, heads=2, ffn=64)
    prompts = c.prompts()
    assert prompts.shape[:2] == c.ids.shape
    assert torch.equal(prompts[:, 1:5], c.ctx[None].expand(3, -1, -1))
    shifted = c.prompts(torch.ones(2, clip.text_width))
    assert shifted.shape[0] == 6 and torch.allclose(shifted[:3, 1:5], c.ctx[None] + 1)


def test_ifm_gate_formula():
    torch.manual_seed(0)
    ifm = IFM(8, heads=2).eval()
    tk, tc = torch.randn(3, 8), torch.randn(3, 8)
    k2 = ifm.ln_k(tk[None] + ifm.k_att(tk[None], tc[None], tc[None])[0])[0]
    c2 = ifm.ln_c(tc[None] + ifm.c_att(tc[None], tk[None], tk[None])[0])[0]
    g = torch.sigmoid(ifm.gate(torch.cat([k2, c2], -1)))
    f = g * k2 + (1 - g) * c2
    assert torch.allclose(ifm(tk, tc), ifm.ln_out(f + ifm.ffn(f)), atol=1e-6)


def test_dma_shared_affinity_and_directions():
    torch.manual_seed(0)
    dma = DMA(8, heads=1).eval()
    t, x = torch.randn(3, 8), torch.randn(2, 5, 8)
    a = dma.affinity(t[None].expand(2, -1, -1), x)
    assert a.shape == (2, 1, 3, 5)
    t_hat = dma.ln_t1(t + (a[:, 0].softmax(-1) @ dma.wv(x)))
    x_hat = dma.ln_x1(x + (a[:, 0].softmax(-2).transpose(1, 2) @ dma.wu(t)))
    to, xo = dma(t, x)
    assert torch.allclose(to, dma.ln_t2(t_hat + dma.ffn_t(t_hat)), atol=1e-5)
    assert torch.allclose(xo, dma.ln_x2(x_hat + dma.ffn_x(x_hat)), atol=1e-5)
    dma.mode = "t2v_only"
    assert torch.equal(dma(t, x)[1], x)


def test_similarity_head_formula():
    head = SimilarityHead(tau=0.5)
    t = torch.tensor([[[1.0, 0.0]]])
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    s = torch.tensor([1.0, 0.0])
    w = (s / 0.5).softmax(0)
    assert head(t, x).item() == pytest.approx(10 * float((w * s).sum()))
    head.scale.data.fill_(1000.0)
    assert head(t, x).item() == pytest.approx(100 * float((w * s).sum()))  # clamped to [1, 100]


def test_sine_positions():
    pe = sine_position_2d(2, 3, 8)
    assert pe.shape == (6, 8)
    assert torch.allclose(pe[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))


def test_text_encoding_stays_fp32_under_autocast(clip):
    """KAP's K0 and CAP's prompt features come out of the frozen text tower in fp32, bit-equal to the
    fp32 run, even inside a bf16 autocast region (AMP training)."""
    torch.manual_seed(0)
    cap = CAP(clip, NAMES, n_ctx=4, heads=2, ffn=64, conditional=True)
    ref = cap.text_features()
    ref_cond = cap.text_features(torch.ones(2, clip.embed_dim))
    k_ref = KAP(clip, NAMES, heads=2, ffn=64).k0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = cap.text_features()
        cond = cap.text_features(torch.ones(2, clip.embed_dim))
        k0 = KAP(clip, NAMES, heads=2, ffn=64).k0
        plain = clip.encode_text(clip.tokenize(["a photo of a red circle."]))
    assert plain.dtype == torch.bfloat16  # autocast is really on for an unguarded call
    assert feats.dtype == cond.dtype == k0.dtype == torch.float32
    assert torch.equal(feats, ref) and torch.equal(k0, k_ref)
    assert torch.allclose(cond, ref_cond, atol=1e-2)  # the meta-net itself runs under autocast


def test_clip_visual_with_open_clip_modified_resnet():
    """``visual: clip`` with an open_clip RN50/RN101-style tower: its layer-4 map as tokens, at any input size."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    from vislab.clip.encoder import ClipEncoder

    torch.manual_seed(0)
    oc = CLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=64, head_width=16),
              text_cfg=CLIPTextCfg(context_length=32, vocab_size=49408, width=32, heads=2, layers=1))
    rn = ClipEncoder(oc.eval(), "open_clip")
    assert type(oc.visual).__name__ == "ModifiedResNet" and rn.vision_width is None  # the TypeError's cause
    m = PVLR(rn, NAMES, cfg(visual="clip", image_size=64))
    assert m(torch.rand(2, 3, 64, 64)).shape == (2, 3) and m(torch.rand(1, 3, 96, 96)).shape == (1, 3)
    assert m.visual(torch.rand(1, 3, 64, 64)).shape == (1, 4, 32)  # 64/32 squared tokens
    assert len(m.trainable_groups()["backbone"]) > 0
