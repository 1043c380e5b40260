"""sags benchmark: prints JSON with rasteriser frame times, 3DGS train-step time / throughput, peak
memory and segmentation latency, for the tiny config and a paper-size config (random Gaussians).

CPU: our PyTorch rasteriser. CUDA (when found): gsplat's kernels, plus a full SA-GS segmentation of a
1M-Gaussian random scene. ``--quick`` shrinks every size (a smoke run). The ours-vs-gsplat-reference ratios: ``bench.py``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _timeit(fn, reps: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def _camera(size: int):
    from sags.cameras import Camera, intrinsics, look_at

    return Camera(
        look_at(torch.tensor([2.0, 1.0, 1.6]), torch.zeros(3)), intrinsics(size * 1.1, size, size), size, size
    )


def bench_frame(n: int, size: int, dev: torch.device, backward: bool, reps: int) -> dict:
    from sags.gaussians import activated, random_splats
    from sags.losses import photometric_loss
    from sags.render import rasterize
    from vislab.runtime import peak_memory_mb, reset_peak_memory

    s = {
        k: torch.nn.Parameter(v.to(dev))
        for k, v in random_splats(n, 3, generator=torch.Generator().manual_seed(0)).items()
    }
    cam = _camera(size)
    vm, K = cam.viewmat[None].to(dev), cam.K[None].to(dev)
    target = torch.rand(1, size, size, 3, device=dev)

    def step():
        a = activated(s)
        out, _, info = rasterize(
            a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], vm, K, size, size, sh_degree=3
        )
        if backward:
            loss, _ = photometric_loss(out[..., :3], target)
            loss.backward()
            for p in s.values():
                p.grad = None

    reset_peak_memory()
    if not backward:
        with torch.no_grad():
            t = _timeit(step, reps)
    else:
        t = _timeit(step, reps)
    return {
        "gaussians": n,
        "size": size,
        "seconds": t,
        "frames_per_s": 1 / t,
        "peak_memory_mb": peak_memory_mb(dev),
    }


def bench_segment(n: int, size: int, views: int, dev: torch.device) -> dict:
    from sags.cameras import Camera, intrinsics, look_at
    from sags.gaussians import random_splats
    from sags.providers import FloodFillProvider
    from sags.segment import SegmentConfig, segment_gaussians

    s = {
        k: v.to(dev)
        for k, v in random_splats(n, 0, extent=0.5, generator=torch.Generator().manual_seed(1)).items()
    }
    s["opacities"][:] = 3.0  # dense enough that a click lands on something
    cams = []
    for i in range(views):
        a = 2 * np.pi * i / views
        eye = torch.tensor([2.5 * np.cos(a), 2.5 * np.sin(a), 1.2], dtype=torch.float32)
        cams.append(Camera(look_at(eye, torch.zeros(3)), intrinsics(size * 1.1, size, size), size, size))
    t = time.perf_counter()
    seg = segment_gaussians(
        s,
        cams,
        0,
        np.array([[size / 2, size / 2]]),
        FloodFillProvider(),
        cfg=SegmentConfig(vote_denominator="valid"),
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return {
        "gaussians": n,
        "size": size,
        "views": views,
        "seconds": time.perf_counter() - t,
        "selected": seg.info["n_object"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    q = a.quick
    res = {
        "device": str(dev),
        "backend": "gsplat" if dev.type == "cuda" else "torch (sags.render)",
        "torch": torch.__version__,
    }
    res["tiny"] = {
        "config": "default.yaml: 64x64, a few thousand Gaussians, SH 0",
        "train_step_64_2k": bench_frame(2000, 64, dev, True, 2 if q else 5),
        "segment_64_16views": bench_segment(2000, 64, 4 if q else 16, dev),
    }
    big_n = 5000 if q else 50_000
    # CPU rasteriser frame times: 64x64 and 256x256, 2k and 50k Gaussians (forward only)
    res["render"] = {
        f"{s}x{s}_{n}": bench_frame(n, s, dev, False, 2 if q else 5)
        for s in (64, 128 if q else 256)
        for n in (2000, big_n)
    }
    res["paper"] = {
        "config": "paper.yaml-like: SH 3; CPU 256x256 with 50k Gaussians, GPU 1024x1024 with 1M",
        "train_step_256_50k": bench_frame(big_n, 128 if q else 256, dev, True, 1 if q else 2),
    }
    if dev.type == "cuda":
        res["paper"]["train_step_1024_1M"] = bench_frame(1_000_000, 1024, dev, True, 5)
        res["paper"]["segment_1M_512_30views"] = bench_segment(1_000_000, 512, 30, dev)
    for part in ("tiny", "paper"):
        for k, v in res[part].items():
            if isinstance(v, dict) and k.startswith("train_step"):
                v["throughput_images_per_s"] = v.pop("frames_per_s")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
