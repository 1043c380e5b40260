"""The frozen model's DDIM trajectory with classifier-free guidance, and its clean-image predictions."""

from __future__ import annotations

import torch


def initial_latents(sd, seed: int, batch: int = 1) -> torch.Tensor:
    """z_T ~ N(0, I) (batch, C, h, w) from a seeded CPU generator (same noise on every device)."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    c = sd.unet.config.in_channels
    s = sd.latent_size
    return torch.randn(batch, c, s, s, generator=g).to(sd.device, sd.dtype)


def ddim_scheduler(sd, steps: int):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(sd.scheduler.config)
    sched.set_timesteps(steps)
    return sched


def x0_from_eps(sched, z: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """Tweedie / DDIM clean prediction x0 = (z_t - sqrt(1 - a_t) eps) / sqrt(a_t)."""
    a = sched.alphas_cumprod.to(z.device)[int(t)]
    return (z - (1 - a).sqrt() * eps) / a.sqrt()


def guided_eps(sd, z: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor, cfg: float,
               eps_uncond: torch.Tensor | None = None) -> torch.Tensor:
    """eps~ = eps_u + w (eps_c - eps_u); the unconditional branch never sees the learned prompt.

    ``eps_uncond``: eps_u at (z, t) computed before (it does not depend on the learned prompt, so a learning loop
    that revisits the same latent reuses it); then only the conditional branch runs."""
    if eps_uncond is not None:
        ec = sd.unet(z, t, encoder_hidden_states=cond).sample
        return eps_uncond + cfg * (ec - eps_uncond)
    zz = torch.cat([z, z])
    e = sd.unet(zz, t, encoder_hidden_states=torch.cat([uncond.expand_as(cond), cond])).sample
    eu, ec = e.chunk(2)
    return eu + cfg * (ec - eu)


@torch.no_grad()
def sample(sd, cond: torch.Tensor, uncond: torch.Tensor, z_T: torch.Tensor, steps: int, cfg: float,
           record: tuple[int, ...] = (), keep_latents: tuple[int, ...] = (), stop_after: int | None = None) -> dict:
    """Run DDIM from ``z_T``; returns ``image`` (B,3,H,W) in [0,1], ``x0[k]`` decoded clean predictions at
    step indices ``record`` and ``z[k]`` latents at step indices ``keep_latents`` (before step k).
    ``stop_after=k`` stops once ``z[k]`` is kept (no image)."""
    sched = ddim_scheduler(sd, steps)
    z = z_T.clone()
    out: dict = {"x0": {}, "z": {}, "timesteps": list(sched.timesteps)}
    for k, t in enumerate(sched.timesteps):
        if k in keep_latents:
            out["z"][k] = z.clone()
        if stop_after is not None and k >= stop_after:
            return out
        eps = guided_eps(sd, z, t, cond, uncond, cfg)
        if k in record:
            out["x0"][k] = sd.decode_latents(x0_from_eps(sched, z, eps, t))
        z = sched.step(eps, t, z).prev_sample
    out["image"] = sd.decode_latents(z)
    return out
