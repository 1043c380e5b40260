"""Benchmark of cfpl: training step time, throughput, peak memory and inference latency.

Prints JSON for the tiny config and the paper-size config (CLIP ViT-B/16 shapes, random weights),
on whichever device vislab.runtime picks. ``python bench/absolute.py [--sizes tiny,paper] [--steps N]`` (ours-vs-peer ratios: ``bench.py``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

SIZES = {
    "tiny": dict(clip=dict(image_size=64, patch_size=4, embed_dim=32, text_width=64, vision_width=64, text_layers=2,
                           vision_layers=2, heads=2, context_length=24),
                 head=dict(n_queries=4, qformer_heads=2, pm_reduction=4), batch=16),
    "paper": dict(clip=dict(image_size=224, patch_size=16, embed_dim=512, text_width=512, vision_width=768, text_layers=12,
                            vision_layers=12, heads=8, context_length=77),
                  head=dict(n_queries=16, qformer_heads=8, pm_reduction=16), batch=12),
}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, steps: int, warmup: int) -> dict:
    from cfpl.losses import cls_loss, ptm_loss
    from cfpl.model import CFPL
    from vislab import runtime
    from vislab.clip import tiny_clip

    s = SIZES[name]
    dev = runtime.device()
    runtime.setup(0)
    model = CFPL(tiny_clip(**s["clip"]), s["head"]).to(dev).train()
    opt = torch.optim.Adam(model.head_parameters(), lr=1e-4, weight_decay=0.05)
    B, size = s["batch"], s["clip"]["image_size"]
    x = torch.rand(B, 3, size, size, device=dev)
    y = torch.arange(B, device=dev) % 2
    amp = runtime.autocast_dtype(dev)

    def step():
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            out = model(x)
            logits, target = model.ptm_logits(out["p_c"], y)
            loss = cls_loss(out["logits"].float(), y) + ptm_loss(logits.float(), target)
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
            model.live_score(x)
        sync(dev)
        t = time.perf_counter()
        for _ in range(steps):
            model.live_score(x)
        sync(dev)
    inf_s = (time.perf_counter() - t) / steps
    return {
        "config": name, "device": str(dev), "precision": runtime.precision(dev), "batch": B, "image_size": size,
        "trainable_params": sum(p.numel() for p in model.head_parameters()),
        "train_step_s": round(step_s, 4), "train_images_per_s": round(B / step_s, 2),
        "inference_batch_s": round(inf_s, 4), "inference_images_per_s": round(B / inf_s, 2),
        "inference_latency_ms_per_image": round(1000 * inf_s / B, 3),
        "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="tiny,paper")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 tiny / 3 paper on CPU, 20 on GPU)")
    args = p.parse_args()
    results = []
    for name in args.sizes.split(","):
        gpu = torch.cuda.is_available()
        steps = args.steps or (20 if gpu else (10 if name == "tiny" else 2))
        results.append(bench(name, steps, warmup=3 if gpu else 1))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
