"""diffspeaker bench: our DDIM sampler (``DiffSpeaker.sample``) against the official sampling loop, same weights,
same audio, same starting noise, interleaved in one process.

    python packages/diffspeaker/bench/bench.py [--reps 5] [--device cuda] [--json out.json] [--quick]

Work: the paper VOCASET config (wav2vec2-base sizes, D = 512, 3V = 15069, random weights with a non-zero output
head), one 4 s clip (120 frames), 50 DDIM steps of the released ("official", diffusers 0.11) variant, 3-tap
smoothing. The bench asserts that both sides give the same offsets (float tolerance; bf16 tolerance on CUDA).

The peer is the loop of the official ``DIFFUSION_BIAS._diffusion_reverse`` + ``predict`` (theEricMa/DiffSpeaker),
written on this package's modules: the audio encoder and ``audio_feature_map`` run once per clip, then at every
step the target/memory masks and key-padding masks are rebuilt, the full denoiser runs (``vertice_map`` on the
3V-wide sample, the positional code, the time embedding of that step, the decoder layers, ``motion_decoder``
back to 3V) and the scheduler steps; at the end ``avg_pool1d`` smoothing replaces the inner frames.

Ours builds the masks, positional code, style tokens and all 50 time embeddings once, and folds the two 3V-wide
maps out of the loop (see ``DiffSpeaker.sample``). Target: ours <= 0.8x the official loop (min over min).
Also prints the torch-profiler top 5 ops of both sides. On CUDA the same row runs under bf16 autocast (TF32, SDPA).
``--quick`` (the CI guard): the embedded default's tiny model, a 1 s clip, 5 steps.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from vislab.bench import autocast, cli, compare, profile_top, profiling, quick  # noqa: E402

SECONDS = 4.0
FPS = 30.0
STEPS = 50
VARIANT = "official"
TARGET = 0.8


def build(dev: torch.device, seconds: float = SECONDS, preset: str = "paper", n_feats: int = 15069):
    """The paper VOCASET model (random weights, non-zero output head), eval mode, and one clip."""
    from diffspeaker.model import DiffSpeaker
    from vislab.run import load_preset

    cfg = load_preset("diffspeaker", preset)
    model_cfg = {**cfg["model"], "n_feats": n_feats, "n_styles": 8}
    torch.manual_seed(0)
    m = DiffSpeaker(model_cfg, cfg["audio"]["config"]).to(dev).eval()
    with torch.no_grad():  # the released head is zero-initialised; a trained one is not, and a zero head hides errors
        torch.nn.init.normal_(m.denoiser.motion_decoder.weight, std=0.02)
        torch.nn.init.normal_(m.denoiser.motion_decoder.bias, std=0.02)
    g = torch.Generator().manual_seed(0)
    N, T = int(seconds * 16000), int(seconds * FPS)
    audio = torch.randn(1, N, generator=g).to(dev)
    audio_len = torch.tensor([N])
    style = torch.eye(8)[[3]].to(dev)
    noise = torch.randn(1, T, n_feats, generator=g)
    return m, audio, audio_len, [T], style, noise


def official_loop(m, audio, audio_len, n_frames, style, noise, steps: int = STEPS, variant: str = VARIANT):
    """The official sampling loop (``_diffusion_forward`` phase 'val' -> ``_diffusion_reverse``, then ``smooth``)."""
    from diffspeaker.model import ddim_step, make_ddim

    den = m.denoiser
    dev = audio.device
    B, T = audio.shape[0], max(n_frames)
    with torch.no_grad():
        hidden = den.audio_feature_map(m.audio_encoder(audio, audio_len, n_frames))  # _audio_2_hidden, once
        vertice_attention = torch.ones(B, T, dtype=torch.long, device=dev)
        object_emb = den.style(style)  # obj_vector(argmax(id))
        sched = make_ddim(m.train_steps, steps)  # set_timesteps at every call
        x = noise.to(dev) * sched.init_noise_sigma
        for t in sched.timesteps.to(dev):
            # _tgt_mask / _memory_mask / key-padding masks, rebuilt every step
            frame_mask = vertice_attention.bool()
            self_m, cross_m = den.masks(B, T, frame_mask, dev)
            # the denoiser's forward: vertice_map, PPE, time projection + embedding, layers, motion_decoder
            h = den.ppe(den.vertice_map(x))
            temb = den.time(t.expand(B))
            for layer, s_l, e_l in zip(den.layers, object_emb.split(den.dim, -1), temb.split(den.dim, -1)):
                h = layer(h, hidden, torch.stack([s_l, e_l], dim=1), self_m, cross_m)
            x0 = den.motion_decoder(h)
            x = ddim_step(sched, x0, int(t), x, variant)
        smooth = F.avg_pool1d(x.permute(0, 2, 1), kernel_size=3, stride=1, padding=1).permute(0, 2, 1)
        x = x.clone()
        x[:, 1:-1] = smooth[:, 1:-1]
        return x / m.offset_scale


def sampling_row(dev: torch.device, reps: int) -> dict:
    if quick():
        seconds, steps, what = 1.0, 5, "embedded default's tiny model"
        m, audio, audio_len, n_frames, style, noise = build(dev, seconds, "default", 900)
    else:
        seconds, steps, what = SECONDS, STEPS, "paper VOCASET config"
        m, audio, audio_len, n_frames, style, noise = build(dev)

    def ours():
        def step():
            with autocast(dev):
                return m.sample(audio, audio_len, n_frames, style, steps=steps, guidance=0.0, smooth=True,
                                variant=VARIANT, noise=noise)
        return step

    def peer():
        def step():
            with autocast(dev):
                return official_loop(m, audio, audio_len, n_frames, style, noise, steps)
        return step

    a, b = ours()().float(), peer()().float()
    scale = b.abs().max().item()
    tol = 5e-2 if dev.type == "cuda" else 1e-4  # bf16 autocast on CUDA (a sanity check), fp32 on CPU (exact)
    err = (a - b).abs().max().item()
    assert scale > 1e-2, "degenerate sample (zero output head?)"
    assert err <= tol * scale, f"samplers disagree: max |ours - official| = {err:.3g} (scale {scale:.3g})"
    row = compare(f"DDIM sampling, {what}, {seconds:g} s clip ({n_frames[0]} frames), {steps} steps, "
                  f"{VARIANT} variant + smoothing", "official DiffSpeaker sampling loop (_diffusion_reverse)",
                  ours, peer, reps=reps, dev=dev, package="diffspeaker", target=TARGET,
                  note=f"outputs agree: max abs diff {err:.2e} of max {scale:.3g}")
    row["max_abs_diff"] = err
    if profiling():
        row["profile_top5_ours"] = profile_top(ours(), 5, dev, reps=1)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev, reps=1)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    return [sampling_row(dev, reps)]


if __name__ == "__main__":
    cli("diffspeaker", rows)
