"""gal4p benchmark: DreamBooth training step (weighted loss, prior preservation) and query/inference latency.

Prints JSON: for the tiny config (tiny random SD, 32 px) and the paper-size config (SD 1.x-size UNet
(320/640/1280/1280 channels, cross-attention 768, CLIP ViT-L/14-size text encoder width), random weights, 512 px in
bf16 with SDPA attention on a GPU). On a CPU the paper-size run is skipped unless ``--paper-on-cpu`` is given (it
needs about 14 GB of RAM for AdamW and minutes per step); it then runs at ``--paper-resolution`` (default 64).

    python packages/gal4p/bench/absolute.py [--steps 5] [--paper-on-cpu] [--paper-resolution 512]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch
from vislab import runtime


def paper_sd(resolution: int):
    """SD 1.x-size components with random weights (UNet as SD 1.4; a 12-layer 768-wide CLIP text encoder)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from vislab.clip import clip_tokenizer
    from vislab.diffusion import SDComponents

    unet = UNet2DConditionModel(sample_size=resolution // 8, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=resolution)
    te = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                      max_position_embeddings=77, vocab_size=49408, eos_token_id=49407, bos_token_id=49406,
                                      pad_token_id=49407))
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          steps_offset=1, clip_sample=False)
    return SDComponents(clip_tokenizer(77), te.eval(), vae.eval(), unet.eval(), sched)


def bench(sd, resolution: int, batch: int, steps: int, dev: torch.device, gradient_checkpointing: bool, query_steps: int) -> dict:
    from gal4p.learner import DreamBoothLearner
    from gal4p.query import generate

    sd.to(dev)
    learner = DreamBoothLearner(sd, lr=5e-6, gradient_checkpointing=gradient_checkpointing).to(dev)
    opt = learner.configure_optimizers()
    b = {"pixel_values": torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1, "prompt": ["a sks cat"] * batch,
         "weight": torch.ones(batch, device=dev), "class_pixel_values": torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1,
         "class_prompt": ["a photo of a cat"] * batch}
    dtype = runtime.autocast_dtype(dev)
    ctx = (lambda: torch.autocast(dev.type, dtype=dtype)) if dtype is not None else nullcontext
    runtime.reset_peak_memory()

    def step():
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = learner.loss(b)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learner.trainable_parameters(), 1.0)
        opt.step()

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    train_mem = runtime.peak_memory_mb(dev)
    learner.unet.eval()
    sd.unet = learner.unet
    g = torch.Generator().manual_seed(0)
    generate(sd, ["a sks cat"], 1, 2, 7.5, g, "dpm", resolution)  # warm-up
    t0 = time.perf_counter()
    generate(sd, ["a sks cat in a museum"], 1, query_steps, 7.5, g, "dpm", resolution)
    lat = time.perf_counter() - t0
    return {"resolution": resolution, "batch": f"{batch} instance + {batch} class", "train_step_s": round(dt, 4),
            "throughput_images_per_s": round(2 * batch / dt, 3), "peak_memory_mb": round(train_mem, 1),
            "inference_latency_s": round(lat, 3), "inference_steps": query_steps, "precision": runtime.precision(dev),
            "unet_params_m": round(sum(p.numel() for p in learner.unet.parameters()) / 1e6, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--paper-on-cpu", action="store_true")
    p.add_argument("--paper-resolution", type=int, default=None)
    args = p.parse_args()
    runtime.setup(0)
    dev = runtime.device()
    from vislab.diffusion import tiny_sd

    out = {"package": "gal4p", "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
           "tiny": bench(tiny_sd(), 32, 2, args.steps, dev, False, 20)}
    if dev.type == "cuda" or args.paper_on_cpu:
        res = args.paper_resolution or (512 if dev.type == "cuda" else 64)
        out["paper"] = bench(paper_sd(res), res, 1, max(1, args.steps if dev.type == "cuda" else 1), dev, True,
                             50 if dev.type == "cuda" else 2)
    else:
        out["paper"] = {"skipped": "CPU: the SD 1.x-size step needs ~14 GB RAM for AdamW; pass --paper-on-cpu or run on a GPU"}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
