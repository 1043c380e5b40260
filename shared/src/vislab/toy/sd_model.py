"""The toy Stable Diffusion: Stable Diffusion v1's classes at toy size, trained on the toy world.

- VAE: ``AutoencoderKL`` downsampling by 4 (32 px -> 4x8x8 latents), trained on the MSE of the
  reconstruction of the posterior mode, a tiny KL term and (``perceptual_weight``) a perceptual
  feature loss in the spirit of SD's LPIPS term: the MSE between the frozen toy CLIP vision tower's
  hidden states of the reconstruction and of the input (SD uses an ImageNet VGG; the toy CLIP's tower
  is the only pretrained vision network here). ``scaling_factor`` = 1 / the latents' standard
  deviation, as in SD.
- Text encoder: the frozen toy CLIP's ``CLIPTextModel`` and its ``CLIPTokenizer``.
- UNet: ``UNet2DConditionModel`` with cross-attention at both levels, epsilon prediction on the
  cached latents and text-encoder states, 10 % empty captions (for classifier-free guidance), optionally the min-SNR-gamma
  loss weighting (Hang et al. 2023; diffusers' ``--snr_gamma``) for faster convergence.
- Scheduler: scaled-linear ``DDPMScheduler`` (SD v1's betas 0.00085-0.012, 1000 steps).

Saved with ``StableDiffusionPipeline.save_pretrained`` (no safety checker), so
``StableDiffusionPipeline.from_pretrained(folder)`` loads it like a real SD folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vislab.toy import world
from vislab.toy.clip_model import ZeroShot, save_confusion, tokenize, warmup_cosine

PRESETS: dict[str, dict[str, Any]] = {
    # measured in the README: caption match shape 86.5 % / colour 94.8 % in 561 s on 2 idle cores
    "default": {
        "resolution": 32, "n_images": 12288, "seed": 0,
        "vae_channels": [16, 32, 64], "vae_groups": 8, "vae_steps": 500, "vae_batch_size": 32, "vae_lr": 1e-3, "kl_weight": 1e-5,
        "perceptual_weight": 0.25,
        "unet_channels": [48, 96], "unet_groups": 16, "unet_heads": 4, "unet_steps": 900, "unet_batch_size": 64,
        "unet_lr": 1.6e-3, "warmup": 50, "uncond_p": 0.1, "snr_gamma": 5.0,
        "eval_seeds": 2, "eval_steps": 50, "guidance": 3.0,
    },
    # well under a minute, lower quality: for tests
    "fast": {
        "resolution": 32, "n_images": 512, "seed": 0,
        "vae_channels": [8, 16, 32], "vae_groups": 8, "vae_steps": 40, "vae_batch_size": 16, "vae_lr": 2e-3, "kl_weight": 1e-5,
        "perceptual_weight": 0.25,
        "unet_channels": [32, 64], "unet_groups": 8, "unet_heads": 2, "unet_steps": 40, "unet_batch_size": 16,
        "unet_lr": 1e-3, "warmup": 5, "uncond_p": 0.1, "snr_gamma": 5.0,
        "eval_seeds": 1, "eval_steps": 5, "guidance": 3.0,
    },
}


def build_vae(cfg: dict[str, Any]):
    from diffusers import AutoencoderKL

    n = len(cfg["vae_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg["vae_channels"]), layers_per_block=1, norm_num_groups=cfg["vae_groups"],
        sample_size=cfg["resolution"], mid_block_add_attention=False,
    )


def build_unet(cfg: dict[str, Any], cross_attention_dim: int, latent_size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=tuple(cfg["unet_channels"]), layers_per_block=1, norm_num_groups=cfg["unet_groups"],
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=cfg["unet_heads"],  # diffusers' SD naming: this is the number of heads
    )


class PerceptualLoss(torch.nn.Module):
    """Mean over layers of the MSE between a frozen CLIP vision tower's hidden states of two image
    batches (B, 3, H, W) in [-1, 1] -> a scalar; an LPIPS-style reconstruction term."""

    def __init__(self, vision_model: torch.nn.Module):
        super().__init__()
        self.vision = vision_model.eval().requires_grad_(False)

    def forward(self, rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from vislab.toy.clip_model import normalize

        def hidden(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.vision(pixel_values=normalize((x.clamp(-1, 1) + 1) / 2), output_hidden_states=True).hidden_states[1:]

        with torch.no_grad():  # the target's features are constants: no graph for them
            want = hidden(target)
        got = hidden(rec)
        return sum(F.mse_loss(a, b) for a, b in zip(got, want)) / len(got)


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights for epsilon prediction: min(SNR(t), gamma) / SNR(t), shape (B,)."""
    alphas = scheduler.alphas_cumprod[timesteps].float()
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=gamma) / snr


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, clip_sample=False, prediction_type="epsilon",
    )


def make_pipeline(vae, text_encoder, tokenizer, unet, scheduler):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


@torch.no_grad()
def generate(pipe, prompts: list[str], seed: int, steps: int, guidance: float, batch: int = 48) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] for ``prompts``, one per prompt, seeded."""
    res = pipe.vae.config.sample_size
    outs = []
    for i in range(0, len(prompts), batch):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        o = pipe(prompts[i : i + batch], height=res, width=res, num_inference_steps=steps, guidance_scale=guidance,
                 generator=g, output_type="pt")
        outs.append(o.images.float().cpu())
    return torch.cat(outs)


def evaluate_sd(pipe, judge: ZeroShot, seeds: int, steps: int, guidance: float) -> dict[str, Any]:
    """Caption match of generated images for every ``"a {colour} {shape}"`` prompt, judged by the toy CLIP."""
    combos = [(c, s) for c in world.COLORS for s in world.SHAPES]
    prompts = [f"a {c} {s}" for c, s in combos]
    colors = np.array([list(world.COLORS).index(c) for c, _ in combos] * seeds)
    shapes = np.array([world.SHAPES.index(s) for _, s in combos] * seeds)
    held = np.array([(c, s) in world.HELD_OUT for c, s in combos] * seeds)
    images = torch.cat([generate(pipe, prompts, seed, steps, guidance) for seed in range(seeds)])
    pc, ps = judge.classify(images)
    ok_s, ok_c = ps == shapes, pc == colors
    res = {
        "sd_shape_match": float(ok_s.mean()), "sd_color_match": float(ok_c.mean()), "sd_both_match": float((ok_s & ok_c).mean()),
        "sd_shape_match_trained_combos": float(ok_s[~held].mean()), "sd_color_match_trained_combos": float(ok_c[~held].mean()),
        "sd_heldout_combo_both_match": float((ok_s & ok_c)[held].mean()),
        "chance_shape": 1 / len(world.SHAPES), "chance_color": 1 / len(world.COLORS),
        "sd_eval_images": len(images), "sd_eval_steps": steps, "guidance": guidance,
    }
    return res, (colors, pc, shapes, ps), images[: len(prompts)], prompts


def pretrain_sd(cfg: dict[str, Any], clip_dir: str | Path | Callable[[], Path], out: str | Path) -> dict[str, Any]:
    """Train the toy SD (VAE, then UNet on cached latents) with text encoder from ``clip_dir``
    (a folder, or a function returning one);
    save the diffusers folder, ``toy_metrics.json`` and pictures into ``out``. Returns the metrics."""
    from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModel
    from transformers.utils import logging as hf_logging

    from vislab.io import write_json
    from vislab.run import console, track

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    torch.manual_seed(cfg["seed"])
    g = torch.Generator().manual_seed(cfg["seed"])
    ds = world.ToyDataset(cfg["n_images"], resolution=cfg["resolution"], seed=cfg["seed"] + 1, split="pretrain")
    images, captions = ds.tensors(progress="rendering the toy world")
    x = images * 2 - 1
    t_render = time.time() - t0
    stage = lambda what: console().print(f"toy SD: {what} ({time.time() - t0:.0f} s elapsed)")  # noqa: E731
    stage(f"rendered {len(images)} world images")

    # ---- the frozen text encoder's CLIP (its vision tower gives the VAE's perceptual loss)
    clip_dir = Path(clip_dir() if callable(clip_dir) else clip_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # loading a CLIPModel checkpoint into CLIPTextModel reports the vision keys
    try:
        text_encoder = CLIPTextModel.from_pretrained(clip_dir, local_files_only=True).eval().requires_grad_(False)
        perceptual = None
        if cfg.get("perceptual_weight", 0.0) > 0:  # optional keys: absent = off
            perceptual = PerceptualLoss(CLIPVisionModel.from_pretrained(clip_dir, local_files_only=True))
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True)
    ctx = text_encoder.config.max_position_embeddings
    stage(f"text encoder ready ({clip_dir.name})")

    # ---- VAE
    t1 = time.time()
    vae = build_vae(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg["vae_lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg["vae_steps"], cfg["warmup"]))
    vae.train()
    for _ in track(range(cfg["vae_steps"]), "toy SD: VAE"):
        xb = x[torch.randint(len(x), (cfg["vae_batch_size"],), generator=g)]
        post = vae.encode(xb).latent_dist
        rec = vae.decode(post.mode()).sample
        loss = F.mse_loss(rec, xb) + cfg["kl_weight"] * post.kl().mean()
        if perceptual is not None:
            loss = loss + cfg["perceptual_weight"] * perceptual(rec, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        lat = torch.cat([vae.encode(x[i : i + 512]).latent_dist.mode() for i in range(0, len(x), 512)])
        std = float(lat.std())
        vae.register_to_config(scaling_factor=1.0 / std)
        lat = lat / std
        rec = torch.cat([vae.decode(lat[i : i + 512] * std).sample for i in range(0, min(len(x), 1024), 512)])
        mse = float(F.mse_loss((rec.clamp(-1, 1) + 1) / 2, images[: len(rec)]))
    psnr = float(10 * np.log10(1.0 / max(mse, 1e-12)))
    t_vae = time.time() - t1
    stage(f"VAE trained, {cfg['vae_steps']} steps, PSNR {psnr:.1f} dB, latents cached")

    # ---- UNet on cached latents
    t2 = time.time()
    ids = tokenize(tokenizer, captions, ctx)
    empty = tokenize(tokenizer, [""], ctx)
    with torch.no_grad():  # the text encoder is frozen: encode every caption once, like the latents
        conds = torch.cat([text_encoder(ids[i : i + 512])[0] for i in range(0, len(ids), 512)])
        empty_cond = text_encoder(empty)[0][0]
    unet = build_unet(cfg, text_encoder.config.hidden_size, lat.shape[-1])
    noise_sched = build_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg["unet_lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg["unet_steps"], cfg["warmup"]))
    unet.train()
    losses = []
    for _ in track(range(cfg["unet_steps"]), "toy SD: UNet"):
        idx = torch.randint(len(lat), (cfg["unet_batch_size"],), generator=g)
        z0, cond = lat[idx], conds[idx]
        drop = torch.rand(len(idx), generator=g) < cfg["uncond_p"]
        cond[drop] = empty_cond
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),), generator=g)
        pred = unet(noise_sched.add_noise(z0, noise, t), t, cond).sample
        if cfg.get("snr_gamma"):
            per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_sample * min_snr_weights(noise_sched, t, cfg["snr_gamma"])).mean()
        else:
            loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    unet.eval().requires_grad_(False)
    t_unet = time.time() - t2
    stage(f"UNet trained, {cfg['unet_steps']} steps")

    # ---- save, evaluate, pictures
    pipe = make_pipeline(vae, text_encoder, tokenizer, unet, noise_sched)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(out, safe_serialization=True)
    t3 = time.time()
    judge = ZeroShot.from_folder(clip_dir)
    res, conf, combo_images, combo_prompts = evaluate_sd(pipe, judge, cfg["eval_seeds"], cfg["eval_steps"], cfg["guidance"])
    save_confusion(out / "sd_judged_confusion.png", *conf, title=f"toy SD samples judged by the toy CLIP (guidance {cfg['guidance']})")
    pick = [(7 * k) % len(combo_prompts) for k in range(18)]  # every shape, mixed colours
    caps = [c for c, _ in zip(world.ToyDataset(12, seed=4242, split="all").tensors()[1], range(12))]
    grid_prompts = [combo_prompts[i] for i in pick] + caps
    grid_images = torch.cat([combo_images[pick], generate(pipe, caps, 99, cfg["eval_steps"], cfg["guidance"])])
    world.save_captioned_grid(out / "samples.png", grid_images, grid_prompts, ncol=6, title="toy SD: caption -> sample")
    world.save_captioned_grid(out / "vae_reconstructions.png", torch.cat([images[:6], ((rec[:6].clamp(-1, 1) + 1) / 2)]),
                              ["original"] * 6 + ["reconstruction"] * 6, ncol=6, title=f"toy SD VAE, PSNR {psnr:.1f} dB")
    t_eval = time.time() - t3
    stage("evaluated (caption match judged by the toy CLIP)")
    k = max(1, len(losses) // 20)
    metrics = {
        "kind": "sd", "config": cfg, "clip": str(clip_dir),
        "vae_parameters": sum(p.numel() for p in vae.parameters()), "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "vae_psnr_db": psnr, "latent_scaling_factor": 1.0 / std,
        "unet_loss_first": float(np.mean(losses[:k])), "unet_loss_last": float(np.mean(losses[-k:])),
        **res,
        "seconds_render": round(t_render, 1), "seconds_vae": round(t_vae, 1), "seconds_unet": round(t_unet, 1),
        "seconds_eval": round(t_eval, 1), "seconds_total": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1), "threads": torch.get_num_threads(),
    }
    write_json(out / "toy_metrics.json", metrics)
    console().print(
        f"toy SD: caption match shape {res['sd_shape_match'] * 100:.1f} % (chance 16.7 %), colour "
        f"{res['sd_color_match'] * 100:.1f} % (chance 12.5 %), VAE {psnr:.1f} dB, {metrics['seconds_total']:.0f} s"
    )
    return metrics
