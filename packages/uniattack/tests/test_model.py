"""Shapes, formulas on fixed inputs and gradient flow of TSP, UKM and SLPI."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from uniattack.losses import specific_loss, total_loss, ukm_loss, unified_loss
from uniattack.metrics import evaluate
from uniattack.model import TEACHER_TEMPLATES, UniAttack, encode_image_with_prompts, teacher_features

HEAD = dict(n_ctx=4, n_teacher_groups=3)


def test_teacher_features_fixed_and_normalised(clip):
    t = teacher_features(clip, 3)
    assert t.shape == (3, 2, 32)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3, 2), atol=1e-5)
    ids = clip.tokenize([TEACHER_TEMPLATES[1].format("spoof")])
    want = F.normalize(clip.encode_text(ids).float(), dim=-1)[0]
    assert torch.allclose(t[1, 1], want, atol=1e-5)
    with pytest.raises(ValueError):
        teacher_features(clip, 7)


def test_ukm_cosine_by_hand():
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # G=2, C_u=2, d=2
    u = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # matches group 0 exactly, group 1 orthogonal
    # (1/(G C_u)) sum (1 - cos) = (0 + 0 + 1 + 1) / 4
    assert abs(ukm_loss(u, teacher).item() - 0.5) < 1e-6
    # contrastive: group 0 logits [1/t, 0], group 1 [0, 1/t] with the target on the first / second ...
    t = 0.5
    l0 = -math.log(math.exp(2) / (math.exp(2) + 1))  # correct class scores 1/t = 2
    l1 = -math.log(1 / (1 + math.exp(2)))
    want = (l0 + l0 + l1 + l1) / 4
    assert abs(ukm_loss(u, teacher, "contrastive", t).item() - want) < 1e-5


def test_ce_losses_by_hand():
    z = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    y = torch.tensor([1, 0])
    assert abs(unified_loss(z, y).item() - (math.log(2) + math.log(4 / 3)) / 2) < 1e-6
    zs = torch.zeros(2, 4)
    assert abs(specific_loss(zs, torch.tensor([0, 3])).item() - math.log(4)) < 1e-6
    assert total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), 0.5, 2.0).item() == 8.0


def test_acer_by_hand():
    # live 0.9 0.8 0.3 | attacks 0.6 (physical) 0.2 0.1 (digital); threshold 0.5 given
    s = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0])
    fam = ["live"] * 3 + ["physical", "digital", "digital"]
    r = evaluate(s, y, threshold=0.5, family=fam)
    assert abs(r["apcer"] - 1 / 3) < 1e-9 and abs(r["bpcer"] - 1 / 3) < 1e-9 and abs(r["acer"] - 1 / 3) < 1e-9
    assert abs(r["acc"] - 4 / 6) < 1e-9
    assert r["apcer_per_family"] == {"digital": 0.0, "physical": 1.0}
    # the dev threshold is used for the test set
    r2 = evaluate(s, y, dev_scores=np.array([0.95, 0.05]), dev_live=np.array([1, 0]))
    assert r2["threshold"] == pytest.approx(0.95)


def test_forward_shapes_and_gradients(clip):
    torch.manual_seed(0)
    m = UniAttack(clip, HEAD).train()
    out = m(torch.rand(4, 3, 32, 32))
    assert out["z_u"].shape == (4, 2) and out["z_s"].shape == (4, 4)
    assert out["u_hat"].shape == (4, 2, 32) and out["f_s"].shape == (4, 4, 32)
    assert torch.allclose(out["u_hat"].norm(dim=-1), torch.ones(4, 2), atol=1e-5)
    y = torch.tensor([0, 1, 2, 3])
    loss = unified_loss(out["z_u"], (y != 0).long()) + specific_loss(out["z_s"], y) + ukm_loss(out["u_hat"], m.teacher)
    loss.backward()
    assert all(p.grad is None for p in m.clip.parameters())
    named = dict(m.named_parameters())
    for name in ("student.learner.ctx", "projector.layers.0.weight", "meta.net.0.weight", "mapping.fc.weight"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    assert not m.teacher.requires_grad


def test_visual_prompts_change_the_image_feature(clip):
    x = clip.normalize(torch.rand(2, 3, 32, 32))
    plain = encode_image_with_prompts(clip, x, None)
    p = [torch.randn(4, 64)]
    shallow = encode_image_with_prompts(clip, x, p)
    assert not torch.allclose(plain, shallow)
    assert torch.allclose(shallow, clip.encode_image(x, prompt_tokens=p[0]), atol=1e-5)
    deep = encode_image_with_prompts(clip, x, p + [torch.randn(4, 64)])
    assert deep.shape == (2, 32) and not torch.allclose(deep, shallow)


def test_switches(clip):
    m = UniAttack(clip, {**HEAD, "visual_prompts": False, "meta_net": False, "mapping": False, "slpi_depth": 2})
    assert m.projector is None and m.meta is None and m.mapping is None
    out = m.eval()(torch.rand(2, 3, 32, 32))
    # without phi, the unified 'real' prototype is the student 'real face' feature
    assert torch.allclose(out["u_hat"][:, 0], out["f_s"][:, 0])
    with pytest.raises(ValueError):
        UniAttack(clip, {**HEAD, "ukm_form": "bogus"})


def test_logit_scale_override(clip):
    m = UniAttack(clip, {**HEAD, "logit_scale": 50.0}).eval()
    out = m(torch.rand(2, 3, 32, 32))
    cos = torch.einsum("bd,bcd->bc", F.normalize(out["f_v"], dim=-1), out["u_hat"])
    assert torch.allclose(out["z_u"], 50.0 * cos, atol=1e-4)
    assert UniAttack(clip, HEAD).logit_scale.item() == pytest.approx(clip.logit_scale.item())


def test_image_standardisation_ignores_exposure(clip):
    """input_norm=image: per-image channel standardisation, so a global gain/offset per channel does not
    change any logit (the toy domains' colour casts), while CLIP normalisation does."""
    x = torch.rand(2, 3, 32, 32) * 0.5 + 0.2
    gain, off = torch.tensor([0.7, 1.2, 0.9]).view(1, 3, 1, 1), torch.tensor([0.05, -0.1, 0.02]).view(1, 3, 1, 1)
    m = UniAttack(clip, {**HEAD, "input_norm": "image"}).eval()
    z = m.normalize(x)
    assert torch.allclose(z.mean((2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(z.std((2, 3)), torch.ones(2, 3), atol=1e-2)
    with torch.no_grad():
        a, b = m(x)["z_u"], m(x * gain + off)["z_u"]
    assert torch.allclose(a, b, atol=1e-2)
    mc = UniAttack(clip, HEAD).eval()
    with torch.no_grad():
        assert not torch.allclose(mc(x)["z_u"], mc(x * gain + off)["z_u"], atol=1e-2)
    with pytest.raises(ValueError):
        UniAttack(clip, {**HEAD, "input_norm": "bogus"})


def test_teacher_head_baseline():
    """unified_head=teacher (the plain-CLIP baseline): z_u = s cos(f_v, mean_g T_g), so the student
    prompts receive no gradient from the live/attack loss (only the fine-tuned image tower does)."""
    from vislab.clip import tiny_clip

    torch.manual_seed(0)
    clip = tiny_clip(image_size=32, patch_size=8, embed_dim=32, text_width=64, vision_width=64, text_layers=2, vision_layers=2,
                     heads=2, context_length=24)  # own copy: fine-tuning switches its image tower to trainable
    m = UniAttack(clip, {**HEAD, "unified_head": "teacher", "visual_prompts": False, "meta_net": False, "logit_scale": 10.0},
                  finetune_image_encoder=True).train()
    out = m(torch.rand(3, 3, 32, 32))
    t = F.normalize(m.teacher.mean(0), dim=-1)
    assert torch.allclose(out["z_u"], 10.0 * F.normalize(out["f_v"], dim=-1) @ t.t(), atol=1e-4)
    assert out["f_s"].shape == (3, 4, 32)  # the same C_s prompts for every image (no meta-net)
    assert torch.allclose(out["f_s"][0], out["f_s"][2])
    unified_loss(out["z_u"], torch.tensor([0, 1, 1])).backward()
    assert m.student.ctx.grad is None or m.student.ctx.grad.abs().sum() == 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder_parameters())
    with pytest.raises(ValueError):
        UniAttack(clip, {**HEAD, "unified_head": "bogus"})
