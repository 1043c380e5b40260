"""Benchmark of uniattack: training step time, throughput, peak memory and inference latency.

Prints JSON for the tiny config and the paper-size config (CLIP ViT-B/16 shapes, random weights, M = 16,
G = 6, batch 18), on whichever device vislab.runtime picks. ``python bench/absolute.py [--sizes tiny,paper]`` (ours-vs-peer ratios: ``bench.py``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

SIZES = {
    "tiny": dict(clip=dict(image_size=64, patch_size=8, embed_dim=32, text_width=64, vision_width=64, text_layers=2,
                           vision_layers=2, heads=2, context_length=24), head=dict(n_ctx=4, n_teacher_groups=3), batch=16),
    "paper": dict(clip=dict(image_size=224, patch_size=16, embed_dim=512, text_width=512, vision_width=768, text_layers=12,
                            vision_layers=12, heads=8, context_length=77), head=dict(n_ctx=16, n_teacher_groups=6), batch=18),
}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, steps: int, warmup: int) -> dict:
    from uniattack.losses import specific_loss, total_loss, ukm_loss, unified_loss
    from uniattack.model import UniAttack
    from vislab import runtime
    from vislab.clip import tiny_clip

    s = SIZES[name]
    dev = runtime.device()
    runtime.setup(0)
    model = UniAttack(tiny_clip(**s["clip"]), s["head"]).to(dev).train()
    model.student.learner.to(dev)
    opt = torch.optim.Adam(model.head_parameters(), lr=2e-3)
    B, size = s["batch"], s["clip"]["image_size"]
    x = torch.rand(B, 3, size, size, device=dev)
    y = torch.arange(B, device=dev) % 4
    amp = runtime.autocast_dtype(dev)

    def step():
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            out = model(x)
            loss = total_loss(unified_loss(out["z_u"].float(), (y != 0).long()), specific_loss(out["z_s"].float(), y),
                              ukm_loss(out["u_hat"].float(), model.teacher))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    runtime.reset_peak_memory()
    sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    step_s = (time.perf_counter() - t) / steps
    model.eval()
    with torch.no_grad(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
        for _ in range(warmup):
            model.scores(x)
        sync(dev)
        t = time.perf_counter()
        for _ in range(steps):
            model.scores(x)
        sync(dev)
    inf_s = (time.perf_counter() - t) / steps
    return {
        "config": name, "device": str(dev), "precision": runtime.precision(dev), "batch": B, "image_size": size,
        "trainable_params": sum(p.numel() for p in model.head_parameters()),
        "train_step_s": round(step_s, 4), "train_images_per_s": round(B / step_s, 2),
        "inference_batch_s": round(inf_s, 4), "inference_images_per_s": round(B / inf_s, 2),
        "inference_latency_ms_per_image": round(1000 * inf_s / B, 3), "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="tiny,paper")
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args()
    gpu = torch.cuda.is_available()
    out = [bench(n, args.steps or (20 if gpu else (10 if n == "tiny" else 2)), 3 if gpu else 1) for n in args.sizes.split(",")]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
