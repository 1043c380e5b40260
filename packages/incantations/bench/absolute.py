"""incantations benchmark: seconds per learned prompt (probe + learning + generation), per learning iteration,
peak memory and sampling latency, as JSON, for the tiny config and an SD 1.x-size model (random weights).

Usage: python packages/incantations/bench/absolute.py [--configs tiny sd1] [--iters N] [--steps S]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from vislab import runtime


def build(config: str, dev: torch.device):
    from incantations.model import Frozen
    from vislab.clip import ClipEncoder, tiny_clip
    from vislab.testing.models import tiny_sd_components

    if config == "tiny":
        sd = tiny_sd_components()
        width = sd.text_encoder.config.hidden_size
        clip = tiny_clip(text_width=width, heads=2)
    else:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPConfig, CLIPModel
        from vislab.clip import clip_tokenizer

        sd = tiny_sd_components()
        sd.unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # SD 1.x UNet layout
        sd.vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                               up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, sample_size=512, layers_per_block=2)
        cfg = CLIPConfig(text_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                          max_position_embeddings=77, eos_token_id=49407, bos_token_id=49406, pad_token_id=49407),
                         vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                            image_size=224, patch_size=14), projection_dim=768)
        from transformers import CLIPTextModel

        model = CLIPModel(cfg)
        if isinstance(model.text_model, CLIPTextModel):  # transformers >= 5
            te = model.text_model
        else:
            te = CLIPTextModel(cfg.text_config)
            te.text_model.load_state_dict(model.text_model.state_dict())
        sd.text_encoder = te
        sd.tokenizer = clip_tokenizer(77)
        clip = ClipEncoder(model, "hf")
    sd = sd.to(dev).freeze()
    return Frozen(sd, clip.freeze().to(dev))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--configs", nargs="+", default=["tiny", "sd1"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    runtime.setup(0)
    dev = runtime.device()
    from incantations.guidance import encode_uncond, probe
    from incantations.learner import LearnConfig, learn
    from incantations.sampling import initial_latents, sample

    for c in args.configs:
        fr = build(c, dev)
        runtime.reset_peak_memory()
        prompt = "a red car and a white sheep"
        t0 = time.perf_counter()
        g = probe(fr, prompt, 0, args.steps, 7.5, 1, min(2, args.steps - 1))
        t_probe = time.perf_counter() - t0
        t0 = time.perf_counter()
        learner = learn(fr, g, LearnConfig(k=8, iters=args.iters, steps=args.steps, k_c=1, k_f=2))
        t_learn = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            sample(fr.sd, learner.prompt_embeds(), encode_uncond(fr), initial_latents(fr.sd, 0), args.steps, 7.5)
        t_gen = time.perf_counter() - t0
        print(json.dumps({"config": c, "device": str(dev), "image_size": fr.sd.image_size, "probe_s": round(t_probe, 3),
                          "learn_iter_s": round(t_learn / args.iters, 4), "sample_s_per_step": round(t_gen / args.steps, 4),
                          "seconds_per_prompt_at_1000_iters_50_steps": round(t_probe / args.steps * 50 + t_learn / args.iters * 1000
                                                                           + t_gen / args.steps * 50, 1),
                          "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}), flush=True)


if __name__ == "__main__":
    main()
