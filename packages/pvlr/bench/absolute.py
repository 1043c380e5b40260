"""pvlr benchmark: training step time, images/s, peak memory and inference latency, as JSON.

Configs: ``tiny`` (the embedded default's model, 32 px) and ``paper`` (ResNet-101 at 448 px, a random-init
CLIP ViT-B/16-sized text tower, 80 classes, CAP with 16 context vectors). Random weights; any device.
Usage: python packages/pvlr/bench/absolute.py [--configs tiny paper] [--steps N] [--batch B]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from pvlr.losses import asymmetric_loss
from pvlr.model import PVLR, PVLRConfig
from vislab import runtime


def make(config: str, dev: torch.device):
    from vislab.clip import tiny_clip

    if config == "tiny":
        clip = tiny_clip()
        cfg = PVLRConfig(visual="cnn", image_size=32, n_ctx=4, label_heads=2, label_ffn=256, ifm_heads=2)
        names, size = [f"class {i}" for i in range(14)], 32
    else:
        clip = tiny_clip(embed_dim=512, text_width=512, text_layers=12, heads=8, context_length=77, vision_layers=1,
                         vision_width=64, image_size=32)
        cfg = PVLRConfig(visual="resnet101", image_size=448, n_ctx=16)
        names, size = [f"class {i}" for i in range(80)], 448
    return PVLR(clip, names, cfg).to(dev), size, len(names)


def bench(config: str, steps: int, batch: int, dev: torch.device) -> dict:
    model, size, c = make(config, dev)
    x = torch.rand(batch, 3, size, size, device=dev)
    y = (torch.rand(batch, c, device=dev) < 0.1).float()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = runtime.autocast_dtype(dev)
    runtime.reset_peak_memory()

    def step():
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = asymmetric_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - t0) / steps
    model.eval()
    with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        model(x[:1])
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x[:1])
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return {"config": config, "device": str(dev), "batch": batch, "image_size": size,
            "train_step_s": round(train_s, 4), "train_images_per_s": round(batch / train_s, 2),
            "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1),
            "inference_latency_ms": round(1000 * (time.perf_counter() - t0) / steps, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="default: 32 tiny, 2 paper on CPU / 32 on GPU")
    args = p.parse_args()
    runtime.setup(0)
    dev = runtime.device()
    for c in args.configs:
        b = args.batch or (32 if c == "tiny" or dev.type == "cuda" else 2)
        print(json.dumps(bench(c, args.steps, b, dev)), flush=True)


if __name__ == "__main__":
    main()
