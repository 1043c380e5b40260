"""The CPU rasteriser against gsplat's own pure-PyTorch reference functions and a naive compositor."""

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics
from sags.render import composite, covariance3d, eval_sh, project, rasterize_torch


def _random(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.6
    means[:3] = torch.tensor(
        [[0, 0, -3.5], [5, 0, 0], [0, 0, -2.995]]
    )  # behind, off-image, at the near plane
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.01
    opa = torch.rand(n, generator=g)
    vm = torch.eye(4)
    vm[2, 3] = 3.0
    K = torch.tensor([[40.0, 0, 17], [0, 38.0, 15], [0, 0, 1]])
    return means, quats, scales, opa, vm, K


def test_covariance_matches_gsplat():
    m, q, s, *_ = _random()
    ref, _ = _quat_scale_to_covar_preci(q, s)
    assert torch.allclose(covariance3d(q, s), ref, atol=1e-7)


def test_projection_matches_gsplat():
    m, q, s, _, vm, K = _random()
    cov = covariance3d(q, s)
    p = project(m, cov, vm, K, 34, 30)
    radii, m2d, depths, conics, comp = _fully_fused_projection(
        m, cov, vm[None], K[None], 34, 30, calc_compensations=True
    )
    assert torch.equal(p["radii"], radii[0])
    assert (p["radii"][:3] == 0).all()  # the three culled cases really are culled
    v = (radii[0] > 0).all(-1)
    assert v.sum() > 30
    assert torch.allclose(p["means2d"][v], m2d[0][v], atol=1e-4)
    assert torch.allclose(p["conics"][v], conics[0][v], rtol=1e-4, atol=1e-5)
    assert torch.allclose(p["depths"], depths[0])
    ours = torch.sqrt(torch.clamp(p["det0"] / p["det"], min=0))
    assert torch.allclose(ours[v], comp[0][v], atol=1e-5)


@pytest.mark.parametrize("deg", [0, 1, 2, 3])
def test_sh_matches_gsplat(deg):
    g = torch.Generator().manual_seed(deg)
    d = torch.randn(40, 3, generator=g)
    c = torch.randn(40, 16, 3, generator=g)
    assert torch.allclose(eval_sh(deg, d, c), _spherical_harmonics(deg, d, c), atol=1e-5)


def _naive(p, opa, cols, W, H, bg):
    img = torch.zeros(H, W, 3)
    alp = torch.zeros(H, W)
    order = torch.argsort(p["depths"]).tolist()
    for y in range(H):
        for x in range(W):
            T, c = 1.0, torch.zeros(3)
            for g in order:
                if (p["radii"][g] <= 0).any():
                    continue
                dx, dy = x + 0.5 - p["means2d"][g, 0], y + 0.5 - p["means2d"][g, 1]
                a, b, cc = p["conics"][g]
                s = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                if s < 0:
                    continue
                al = min(0.999, float(opa[g] * torch.exp(-s)))
                if al < 1 / 255:
                    continue
                if T * (1 - al) <= 1e-4:
                    break
                c = c + cols[g] * al * T
                T = T * (1 - al)
            img[y, x] = c + T * bg
            alp[y, x] = 1 - T
    return img, alp


def test_compositing_matches_naive_loop():
    m, q, s, o, vm, K = _random(40, seed=3)
    o = o * 0.5 + 0.5  # dense enough to hit the 1e-4 transmittance stop somewhere
    cols = torch.rand(40, 3, generator=torch.Generator().manual_seed(1))
    p = project(m, covariance3d(q, s), vm, K, 20, 18)
    bg = torch.tensor([0.2, 0.3, 0.4])
    img, a, ed = composite(p["means2d"], p["conics"], o, cols, p["depths"], p["radii"], 20, 18, bg)
    ref, refa = _naive(p, o, cols, 20, 18, bg)
    assert torch.allclose(img, ref, atol=1e-5)
    assert torch.allclose(a[..., 0], refa, atol=1e-5)
    assert ((ed[..., 0] > 2) | (a[..., 0] < 1e-3)).all()  # expected depth lies among the Gaussians' depths


def test_gradients_and_default_strategy_state():
    from gsplat.strategy import DefaultStrategy

    m, q, s, o, vm, K = _random(30, seed=5)
    params = {
        k: torch.nn.Parameter(v.clone())
        for k, v in {
            "means": m,
            "quats": q,
            "scales": s.log(),
            "opacities": torch.logit(o.clamp(0.05, 0.95)),
        }.items()
    }
    colors = torch.rand(30, 1, 3)
    out, alpha, info = rasterize_torch(
        params["means"],
        params["quats"],
        params["scales"].exp(),
        torch.sigmoid(params["opacities"]),
        colors,
        vm[None],
        K[None],
        24,
        24,
        sh_degree=0,
    )
    assert out.shape == (1, 24, 24, 4) and alpha.shape == (1, 24, 24, 1)
    strat = DefaultStrategy()
    state = strat.initialize_state()
    strat.step_pre_backward(params, {}, state, 0, info)
    out[..., :3].sum().backward()
    assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0
    for k in ("means", "quats", "scales", "opacities"):
        assert (
            params[k].grad is not None
            and torch.isfinite(params[k].grad).all()
            and params[k].grad.abs().sum() > 0
        )
    strat._update_state(params, state, info)
    assert state["count"].sum() == (info["radii"] > 0).all(-1).sum()


def test_antialiased_lowers_alpha_of_tiny_gaussians():
    m = torch.tensor([[0.0, 0.0, 0.0]])
    q = torch.tensor([[1.0, 0, 0, 0]])
    s = torch.full((1, 3), 1e-3)
    vm = torch.eye(4)
    vm[2, 3] = 3.0
    K = torch.tensor([[40.0, 0, 8], [0, 40.0, 8], [0, 0, 1]])
    args = (m, q, s, torch.tensor([0.9]), torch.ones(1, 3), vm[None], K[None], 16, 16)
    _, a_c, _ = rasterize_torch(*args)
    _, a_a, _ = rasterize_torch(*args, rasterize_mode="antialiased")
    assert a_a.max() < 0.1 * a_c.max()
