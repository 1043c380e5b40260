"""compinv benchmark (JSON lines): inversion step time, throughput and peak memory, the DreamBooth plug-in's
step (UNet + identifier row + anchor term, prior batch; tiny always, SD 1.x size on CUDA only), and sampling
latency plain vs spatial-inversion guided, for the tiny config and an SD 1.x-size model (random weights, 512 px).

On CUDA the training step runs under bf16 autocast (vislab.runtime) with SDPA in the frozen self-attention;
the guided cross-attention layers compute probabilities explicitly (the loss needs them).
Usage: python packages/compinv/bench/absolute.py [--configs tiny sd1] [--iters N] [--steps S]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
from vislab import runtime


def build(config: str, dev: torch.device):
    from vislab.testing.models import tiny_sd_components

    sd = tiny_sd_components()
    if config == "sd1":
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel
        from vislab.clip import clip_tokenizer

        sd.unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # SD 1.x UNet layout (860 M)
        sd.vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                               up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, sample_size=512, layers_per_block=2)
        sd.text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                       num_attention_heads=12, max_position_embeddings=77,
                                                       eos_token_id=49407, bos_token_id=49406, pad_token_id=49407))
        sd.tokenizer = clip_tokenizer(77)
    return sd.to(dev).freeze()


def dreambooth_step(config: str, dev: torch.device, batch: int, iters: int, ctx) -> dict:
    """Step time and peak memory of :class:`compinv.dreambooth.CompositionalDreamBooth` (batch instance + batch class)."""
    from compinv.dreambooth import CompositionalDreamBooth, prepare_modifier

    sd = build(config, dev)
    ids = prepare_modifier(sd, "<c>", "ktn")
    anc = sd.tokenizer.encode("cat", add_special_tokens=False)
    m = CompositionalDreamBooth(sd, ids, anc, anchor_mode="single", lr=1e-5).to(dev)
    opt = m.configure_optimizers()
    s = sd.image_size
    b = {"pixel_values": torch.rand(batch, 3, s, s, device=dev) * 2 - 1, "prompt": ["a photo of a <c> cat"] * batch,
         "ref": ["a photo of a cat cat"] * batch, "weight": torch.ones(batch, device=dev),
         "class_pixel_values": torch.rand(batch, 3, s, s, device=dev) * 2 - 1, "class_prompt": ["a photo of a cat"] * batch}
    runtime.reset_peak_memory()
    times = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        with ctx():
            loss = m.loss(b)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.trainable_parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        m.guard.restore()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    out = {"dreambooth_step_s": round(sum(times) / len(times), 4), "dreambooth_peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}
    del m, opt, sd
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--configs", nargs="+", default=["tiny", "sd1"])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args()
    runtime.setup(0)
    dev = runtime.device()
    from compinv.semantic import CompositionalTI
    from compinv.spatial import DEFAULT_LAYOUT, sample, token_positions
    from vislab.diffusion import add_placeholder_tokens

    for c in args.configs:
        sd = build(c, dev)
        ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<c>", 1, init_word="cat")
        anc = sd.tokenizer.encode("cat", add_special_tokens=False)
        inv = {"placeholder_expansion": "all", "anchor_mode": "multi", "anchor_tau": 0.05, "alpha_rec": 0.05, "alpha_anc": 0.95,
               "lr": 5e-3, "weight_decay": 0.01}
        m = CompositionalTI(sd, ids, anc, inv).to(dev)
        opt = m.configure_optimizers()
        s = sd.image_size
        batch = {"pixels": torch.rand(args.batch, 3, s, s, device=dev) * 2 - 1,
                 "prompt": ["a photo of a <c> cat"] * args.batch, "ref": ["a photo of a cat cat"] * args.batch}
        ac = runtime.autocast_dtype(dev)
        def ctx(ac=ac):
            return torch.autocast(dev.type, dtype=ac) if ac is not None else contextlib.nullcontext()
        runtime.reset_peak_memory()
        times = []
        for i in range(args.iters + 1):
            t0 = time.perf_counter()
            with ctx():
                loss = m.losses(batch)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad()
            m.on_train_batch_end(None, batch, 0)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
        step = sum(times) / len(times)
        train_mem = runtime.peak_memory_mb(dev)
        prompt = "a <c> cat on the left and a red car on the right"
        groups = [token_positions(sd.tokenizer, prompt, "<c>"), token_positions(sd.tokenizer, prompt, "red car")]
        t0 = time.perf_counter()
        sample(sd, prompt, steps=args.steps, cfg_scale=7.5)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = sample(sd, prompt, steps=args.steps, cfg_scale=7.5, boxes=DEFAULT_LAYOUT, token_groups=groups,
                   guide={"steps": min(2, args.steps), "threshold": 0.0})
        t_guided = time.perf_counter() - t0
        db = dreambooth_step(c, dev, args.batch, args.iters, ctx) if (c == "tiny" or dev.type == "cuda") else {}
        print(json.dumps({"config": c, "device": str(dev), "image_size": s, "batch": args.batch, **db,
                          "train_step_s": round(step, 4), "images_per_s": round(args.batch / step, 2),
                          "train_peak_memory_mb": round(train_mem, 1),
                          "sample_plain_s_per_step": round(t_plain / args.steps, 4),
                          "sample_guided_s": round(t_guided, 3), "sample_plain_s": round(t_plain, 3),
                          "guided_updates": r.updates,
                          "guidance_overhead_s_per_update": round((t_guided - t_plain) / max(r.updates, 1), 4),
                          "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}), flush=True)


if __name__ == "__main__":
    main()
