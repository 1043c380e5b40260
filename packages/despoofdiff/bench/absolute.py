"""despoofdiff benchmark: prints JSON with training step time, throughput, peak memory and inference latency.

Configs: ``tiny`` (the embedded default: 32 px, tiny UNets, width-16 DepthNet) and ``paper`` (256 px,
google/ddpm-ema-celebahq-256's ADM UNet, width-64 3-block DepthNet), random weights, on the best device.
Bridge throughput at the paper size is measured with a few DDIM steps and extrapolated linearly to
K = 50 per direction (each step is one UNet pass; the extrapolation is stated in the output).
The ``cache`` entry shows what the spoof-noise cache buys: a classifier epoch's inputs with N computed by
the bridge (first epoch) vs read from the on-disk cache (every later epoch).

    python packages/despoofdiff/bench/absolute.py [--sizes tiny,paper] [--paper-batch 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, dev, repeats=3, warmup=1):
    for _ in range(warmup):
        fn()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(dev)
    return (time.perf_counter() - t) / repeats


def bench_size(name, res, unet_preset, cls_cfg, batch, bridge_steps, t_star, measure_steps, dev, repeats):
    from despoofdiff.losses import depth_loss, diffusion_loss
    from despoofdiff.model import (
        DDIMBridge,
        TwoStreamDepthNet,
        build_unet,
        liveness_score,
        make_scheduler,
        unet_config,
    )
    from vislab import runtime

    runtime.reset_peak_memory()
    torch.manual_seed(0)
    sched = make_scheduler()
    unet = build_unet(unet_config(unet_preset, res)).to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, res, res, device=dev) * 2 - 1
    ac = sched.alphas_cumprod.to(dev)
    ad = runtime.autocast_dtype(dev)

    def dm_step():
        t = torch.randint(0, 1000, (batch,), device=dev)
        eps = torch.randn_like(x)
        a = ac[t].view(-1, 1, 1, 1)
        with torch.autocast(dev.type, dtype=ad, enabled=ad is not None):
            loss = diffusion_loss(unet(a.sqrt() * x + (1 - a).sqrt() * eps, t).sample.float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    dm_t = timeit(dm_step, dev, repeats)
    unet.eval()
    eps_s = build_unet(unet_config(unet_preset, res)).to(dev).eval()
    bridge = DDIMBridge(unet, eps_s, ac, t_star=t_star, steps=measure_steps, clamp_encode=True, clamp_decode=True)
    xb = x[:1]

    def run_bridge():
        with torch.autocast(dev.type, dtype=ad, enabled=ad is not None):
            bridge(xb)

    br_t = timeit(run_bridge, dev, max(1, repeats // 2))
    per_pass = br_t / (2 * len(bridge.taus()[1:]))
    net = TwoStreamDepthNet(**cls_cfg).to(dev)
    copt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=5e-5)
    n = torch.randn_like(x) * 0.1
    dsz = res // 2 ** cls_cfg["blocks"]
    target = torch.rand(batch, 1, dsz, dsz, device=dev)

    def cls_step():
        with torch.autocast(dev.type, dtype=ad, enabled=ad is not None):
            loss = depth_loss(net(x, n).float(), target)
        copt.zero_grad(set_to_none=True)
        loss.backward()
        copt.step()

    cls_t = timeit(cls_step, dev, repeats)
    net.eval()

    def infer():
        with torch.no_grad(), torch.autocast(dev.type, dtype=ad, enabled=ad is not None):
            liveness_score(net(xb, n[:1]))

    inf_cls = timeit(infer, dev, repeats)
    k_bridge = bridge_steps * 2 * per_pass
    return {
        "config": name,
        "resolution": res,
        "unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 3),
        "classifier_params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        "batch": batch,
        "diffusion_train_step_s": round(dm_t, 4),
        "diffusion_train_images_per_s": round(batch / dm_t, 2),
        "classifier_train_step_s": round(cls_t, 4),
        "classifier_train_images_per_s": round(batch / cls_t, 2),
        "unet_pass_latency_s": round(per_pass, 4),
        "bridge_steps_measured": measure_steps,
        "bridge_steps_K": bridge_steps,
        "bridge_latency_s_per_image": round(k_bridge, 4),
        "bridge_images_per_s": round(1 / k_bridge, 4),
        "bridge_note": "measured with bridge_steps_measured DDIM steps per direction, per-pass time x 2K" if measure_steps != bridge_steps else "measured",
        "classifier_inference_latency_s": round(inf_cls, 5),
        "inference_latency_s_per_image": round(k_bridge + inf_cls, 4),
        "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1),
    }


def bench_cache(dev, n_images=64, res=32):
    """First classifier epoch (bridge computes N) vs later epochs (N read from the cache), tiny config."""
    from despoofdiff.cache import NoiseCache, compute_noise, content_key
    from despoofdiff.model import DDIMBridge, build_unet, make_scheduler, unet_config

    torch.manual_seed(0)
    g, s = build_unet(unet_config("tiny", res)).eval(), build_unet(unet_config("tiny", res)).eval()
    b = DDIMBridge(g, s, make_scheduler().alphas_cumprod, t_star=0.3, steps=5, clamp_encode=True, clamp_decode=True)
    xs = [torch.rand(3, res, res) * 2 - 1 for _ in range(n_images)]
    keys = [content_key(x) for x in xs]
    with tempfile.TemporaryDirectory() as d:
        cache = NoiseCache(d, b.fingerprint(res))
        t = time.perf_counter()
        compute_noise(b, xs, keys, cache, batch_size=64)
        first = time.perf_counter() - t
        t = time.perf_counter()
        compute_noise(b, xs, keys, cache, batch_size=64)
        later = time.perf_counter() - t
    return {"images": n_images, "first_epoch_noise_s": round(first, 3), "cached_epoch_noise_s": round(later, 3), "speedup": round(first / max(later, 1e-9), 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="tiny,paper")
    p.add_argument("--paper-batch", type=int, default=None, help="batch for the paper-size training steps (default 16 on GPU, 1 on CPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from vislab import runtime

    runtime.setup(0, threads=args.threads if not torch.cuda.is_available() else None)
    dev = runtime.device()
    out = {"package": "despoofdiff", "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "precision": runtime.precision(dev), "threads": torch.get_num_threads(), "results": []}
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if "tiny" in sizes:
        out["results"].append(bench_size("tiny", 32, "tiny", {"width": 16, "blocks": 2, "head_width": 32}, 32, 5, 0.3, 5, dev, args.repeats))
        out["cache"] = bench_cache(dev)
    if "paper" in sizes:
        pb = args.paper_batch or (16 if dev.type == "cuda" else 1)
        out["results"].append(bench_size("paper", 256, "adm256", {"width": 64, "blocks": 3, "head_width": 128}, pb, 50, 1.0, 50 if dev.type == "cuda" else 1, dev, args.repeats if dev.type == "cuda" else 1))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
