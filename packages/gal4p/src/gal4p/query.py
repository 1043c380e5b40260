"""Querying the round's model: sample images for prompts (the active learner's "unlabelled pool")."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from vislab import runtime


def make_scheduler(sd, name: str):
    """``dpm`` (DPMSolverMultistep from the base config, the official query scheduler), ``ddim``, or ``default``
    (the model's own scheduler, the official evaluation choice: PNDM for SD 1.4)."""
    import diffusers

    if name == "default":
        return type(sd.scheduler).from_config(sd.scheduler.config)
    cls = {"dpm": diffusers.DPMSolverMultistepScheduler, "ddim": diffusers.DDIMScheduler,
           "ddpm": diffusers.DDPMScheduler, "pndm": diffusers.PNDMScheduler}.get(name)
    if cls is None:
        from vislab.errors import VislabError

        raise VislabError(f"unknown scheduler {name!r} (dpm, ddim, ddpm, pndm, default)")
    return cls.from_config(sd.scheduler.config)


@torch.no_grad()
def generate(sd, prompts: list[str], n_per_prompt: int = 1, steps: int = 50, guidance: float = 7.5,
             generator: torch.Generator | None = None, scheduler: str = "dpm", resolution: int | None = None,
             max_batch: int = 4) -> torch.Tensor:
    """Images (len(prompts) * n_per_prompt, 3, H, W) in [0, 1], prompt-major (``n`` consecutive images per prompt).

    One pipeline call per prompt with at most ``max_batch`` images (so memory does not grow with the number of
    prompts or samples), VAE slicing on (the decoder sees one image at a time: at SD 1.x size a batched decode
    needs about 1 GB per image). ``generator`` is consumed sequentially over the prompts (the official query
    phase uses one generator per phase). On GPU the UNet runs under autocast in
    :func:`vislab.runtime.autocast_dtype` (official: fp16)."""
    if max_batch < 1:
        from vislab.errors import ConfigError

        raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
    pipe = sd.pipeline(scheduler=make_scheduler(sd, scheduler))
    pipe.vae.enable_slicing()
    res = int(resolution or sd.image_size)
    dev = sd.device
    dtype = runtime.autocast_dtype(dev)
    ctx = torch.autocast(dev.type, dtype=dtype) if dtype is not None else nullcontext()
    outs = []
    with ctx:
        for prompt in prompts:
            left = n_per_prompt
            while left > 0:
                b = min(left, max_batch)
                o = pipe([prompt], num_images_per_prompt=b, height=res, width=res, num_inference_steps=steps,
                         guidance_scale=guidance, generator=generator, output_type="pt")
                outs.append(o.images.float().cpu())
                left -= b
    return torch.cat(outs).clamp(0, 1)
