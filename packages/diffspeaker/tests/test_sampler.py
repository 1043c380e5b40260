"""The hoisted/folded DDIM sampler against a plain per-step loop (denoiser forward + scheduler step)."""

from __future__ import annotations

import pytest
import torch
from diffspeaker.model import (
    DiffSpeaker,
    ddim_coefficients,
    ddim_step,
    make_ddim,
    smooth_frames,
    tiny_audio_config,
)


def _reference_sample(m, audio, audio_len, n_frames, style, steps, guidance, smooth, noise, variant):
    """Per step: the full denoiser (masks, PPE, 3V maps rebuilt) and the diffusers/explicit DDIM step."""
    T = max(n_frames)
    fm = torch.arange(T)[None] < torch.tensor(n_frames)[:, None]
    cond = m.audio_encoder(audio, audio_len, n_frames)
    uncond = m.audio_encoder(torch.zeros_like(audio), audio_len, n_frames)
    sched = make_ddim(m.train_steps, steps)
    x = noise.clone()
    for t in sched.timesteps:
        tt = torch.full((audio.shape[0],), int(t), dtype=torch.long)
        y = m.denoiser(x, cond, tt, style, fm)
        if guidance > 0:
            y = y + guidance * (y - m.denoiser(x, uncond, tt, style, fm))
        x = ddim_step(sched, y, int(t), x, variant)
    if smooth:
        x = smooth_frames(x, n_frames)
    return x * fm[..., None]


@pytest.mark.parametrize(
    "variant,guidance", [("official", 0.0), ("standard", 0.0), ("standard", 1.5), ("official", 2.0)]
)
def test_sample_equals_per_step_loop(variant, guidance):
    torch.manual_seed(0)
    m = DiffSpeaker(
        {"n_feats": 30, "dim": 16, "ff": 32, "heads": 4, "layers": 2, "period": 4, "n_styles": 3},
        tiny_audio_config(),
    ).eval()
    torch.nn.init.normal_(m.denoiser.motion_decoder.weight, std=0.2)
    torch.nn.init.normal_(m.denoiser.motion_decoder.bias, std=0.2)
    n_frames = [12, 7]
    audio = torch.randn(2, 6400)
    audio_len = torch.tensor([6400, 3800])
    style = torch.eye(3)[[2, 0]]
    noise = torch.randn(2, 12, 30)
    kw = {"steps": 8, "guidance": guidance, "smooth": True, "variant": variant}
    ref = _reference_sample(m, audio, audio_len, n_frames, style, noise=noise, **kw)
    out = m.sample(audio, audio_len, n_frames, style, noise=noise, **kw)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["standard", "official"])
def test_ddim_coefficients_match_the_step(variant):
    sched = make_ddim(1000, 50)
    x0, xt = torch.randn(5), torch.randn(5)
    for (a, b), t in zip(ddim_coefficients(sched, variant), sched.timesteps.tolist()):
        torch.testing.assert_close(
            a * x0 + b * xt, ddim_step(sched, x0, t, xt, variant), atol=1e-6, rtol=1e-6
        )
    with pytest.raises(ValueError):
        ddim_coefficients(sched, "other")
