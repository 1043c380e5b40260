"""Shapes and formulas of the networks and the DDIM bridge (random tensors, tiny configs)."""

from __future__ import annotations

import pytest
import torch
from despoofdiff.model import (
    ADM_CELEBAHQ_256,
    CDConv2d,
    DDIMBridge,
    NoiseStandardizer,
    TwoStreamDepthNet,
    build_unet,
    ddim_move,
    ddim_timesteps,
    liveness_score,
    make_scheduler,
    rgb_to_hsv,
    spoof_noise,
    unet_config,
)


@pytest.fixture(scope="module")
def unets():
    torch.manual_seed(0)
    return build_unet(unet_config("tiny", 16)).eval(), build_unet(unet_config("tiny", 16)).eval()


@pytest.fixture(scope="module")
def alphas():
    return make_scheduler().alphas_cumprod


def test_tiny_unet_shape_and_size(unets):
    g, _ = unets
    x = torch.randn(2, 3, 16, 16)
    assert g(x, torch.tensor([0, 999])).sample.shape == x.shape
    assert 100_000 < sum(p.numel() for p in g.parameters()) < 250_000  # spec: ~160 k


def test_adm_config_is_celebahq():
    assert ADM_CELEBAHQ_256["block_out_channels"] == [128, 128, 256, 256, 512, 512]
    assert ADM_CELEBAHQ_256["down_block_types"][4] == "AttnDownBlock2D"  # attention at 256 / 2**4 = 16 px


def test_schedule_is_linear_1e4_to_002():
    s = make_scheduler()
    assert torch.isclose(s.betas[0], torch.tensor(1e-4)) and torch.isclose(s.betas[-1], torch.tensor(0.02))
    assert torch.allclose(s.alphas_cumprod, torch.cumprod(1 - s.betas, 0))


def test_ddim_timesteps():
    assert ddim_timesteps(300, 3) == [0, 100, 200, 300]
    ts = ddim_timesteps(5, 50)  # more steps than timesteps: strictly increasing, deduplicated
    assert ts == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        ddim_timesteps(100, 0)


def test_ddim_move_formula_by_hand():
    x, eps = torch.tensor([0.5]), torch.tensor([0.2])
    a0, a1 = torch.tensor(0.64), torch.tensor(0.36)
    x0 = (0.5 - 0.6 * 0.2) / 0.8  # (x - sqrt(1-a0) eps) / sqrt(a0) = 0.475
    assert torch.allclose(ddim_move(x, eps, a0, a1, clamp=False), torch.tensor([0.6 * x0 + 0.8 * 0.2]))
    big = ddim_move(torch.tensor([3.0]), torch.tensor([0.0]), a0, a1, clamp=True)  # x0 = 3.75 -> clamped to 1
    assert torch.allclose(big, torch.tensor([0.6]))


def test_bridge_shapes_deterministic_and_uses_both_models(unets, alphas):
    g, s = unets
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    b = DDIMBridge(g, s, alphas, t_star=0.3, steps=2, clamp_encode=True, clamp_decode=True)
    xg1, xg2 = b(x), b(x)
    assert xg1.shape == x.shape and torch.equal(xg1, xg2)  # deterministic: identical bits
    sd = DDIMBridge(g, s, alphas, t_star=0.3, steps=2, translator="sdedit", clamp_encode=True, clamp_decode=True)
    assert not torch.allclose(sd(x), xg1)  # sdedit encodes with eps_G instead of eps_S
    assert torch.allclose(b.encode(x), sd.encode(x, s))


def test_identity_bridge_noise_shrinks_with_steps(unets, alphas):
    """Same model both ways, t* = 0.1 T: DDIM inversion error (= N) shrinks towards 0 as K grows."""
    g, _ = unets
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    errs = []
    for k in (1, 4, 16):
        b = DDIMBridge(g, g, alphas, t_star=0.1, steps=k)
        errs.append(spoof_noise(x, b(x)).abs().mean().item())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.35 * errs[0]


def test_decode_matches_diffusers_ddim_scheduler(unets, alphas):
    """Our explicit DDIM decoding == diffusers' DDIMScheduler (eta=0, no clipping) on the same timesteps."""
    from diffusers import DDIMScheduler

    g, _ = unets
    sch = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=False, set_alpha_to_one=False)
    sch.set_timesteps(10)  # 900, 800, ..., 0
    z = torch.randn(2, 3, 16, 16)
    ref = z.clone()
    with torch.no_grad():
        for t in sch.timesteps:
            ref = sch.step(g(ref, t).sample, t, ref, eta=0.0).prev_sample
    b = DDIMBridge(g, None, alphas, t_star=0.9, steps=9, translator="sdedit")
    assert b.taus() == list(range(0, 901, 100))
    assert torch.allclose(b.decode(z), ref, atol=1e-4)


def test_bridge_rejects_bad_settings(unets, alphas):
    g, _ = unets
    with pytest.raises(ValueError):
        DDIMBridge(g, None, alphas, translator="ddib")
    with pytest.raises(ValueError):
        DDIMBridge(g, g, alphas, t_star=1.5)
    with pytest.raises(ValueError):
        DDIMBridge(g, g, alphas, translator="gan")


def test_fingerprint_covers_settings_and_weights(unets, alphas):
    g, s = unets
    b = DDIMBridge(g, s, alphas, t_star=0.3, steps=2)
    f = b.fingerprint(16)
    assert f == DDIMBridge(g, s, alphas, t_star=0.3, steps=2).fingerprint(16)
    assert f != DDIMBridge(g, s, alphas, t_star=0.5, steps=2).fingerprint(16)
    assert f != DDIMBridge(g, s, alphas, t_star=0.3, steps=3).fingerprint(16)
    assert f != b.fingerprint(32)
    s2 = build_unet(unet_config("tiny", 16))
    assert f != DDIMBridge(g, s2, alphas, t_star=0.3, steps=2).fingerprint(16)


def test_noise_standardizer():
    n = torch.randn(64, 3, 8, 8) * torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1) + torch.tensor([0.5, 0.0, -0.5]).view(1, 3, 1, 1)
    st = NoiseStandardizer().fit(n)
    z = st(n)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    assert torch.equal(NoiseStandardizer(mode="raw")(n), n)
    assert (NoiseStandardizer(mode="abs").fit(n)(n) >= -10).all()


@pytest.mark.parametrize("streams", ["both", "rgb", "noise"])
def test_depthnet_shapes_and_streams(streams):
    net = TwoStreamDepthNet(width=8, blocks=2, streams=streams, head_width=16)
    x, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    d = net(x, n)
    assert d.shape == (2, 1, 8, 8)
    # an ablation ignores the other input
    if streams == "rgb":
        assert torch.equal(net.eval()(x, n), net(x, torch.zeros_like(n)))
    if streams == "noise":
        assert torch.equal(net.eval()(x, n), net(torch.zeros_like(x), n))


def test_depthnet_paper_size_layout():
    net = TwoStreamDepthNet()  # width 64, 3 blocks: 128-196-128, 384 ch per stream, 768 fused
    assert net.image_stream.out_channels == 384 and net.noise_stream.out_channels == 384
    assert net.head[0][0].conv.in_channels == 768
    assert net.image_stream.blocks[0][1][0].conv.out_channels == 196


def test_rgb_hsv_input_and_cdc():
    net = TwoStreamDepthNet(width=8, blocks=2, image_input="rgb_hsv", theta=0.7, head_width=16)
    assert net.image_stream.stem[0].conv.in_channels == 6
    assert net(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)).shape == (1, 1, 4, 4)
    hsv = rgb_to_hsv(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
    assert torch.allclose(hsv.flatten(), torch.tensor([0.0, 1.0, 1.0]))


def test_cdc_is_vanilla_minus_theta_center_term():
    torch.manual_seed(0)
    c = CDConv2d(2, 3, theta=0.7)
    x = torch.randn(1, 2, 5, 5)
    w = c.conv.weight
    ref = torch.nn.functional.conv2d(x, w, padding=1) - 0.7 * torch.nn.functional.conv2d(x, w.sum((2, 3), keepdim=True))
    assert torch.allclose(c(x), ref, atol=1e-6)
    # on a constant input, interior outputs of CDC with theta=1 vanish (the central difference of a flat patch)
    c1 = CDConv2d(2, 3, theta=1.0)
    c1.conv.weight.data = w.data
    assert torch.allclose(c1(torch.ones(1, 2, 5, 5))[..., 1:-1, 1:-1], torch.zeros(1, 3, 3, 3), atol=1e-5)


def test_score_is_mean_depth_and_monotone():
    d = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    assert torch.allclose(liveness_score(d), torch.tensor([0.5]))
    m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert torch.allclose(liveness_score(d, m), torch.tensor([0.5]))
    more = d.clone()
    more[..., 1, 1] += 0.3
    assert liveness_score(more) > liveness_score(d)
