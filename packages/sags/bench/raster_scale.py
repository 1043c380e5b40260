"""CPU rasteriser at real Gaussian counts: one 256×256 view of up to 1M random Gaussians (SH 3).

Each size runs in its own process, so its peak memory is clean: the printed peak is the growth of
the resident set (ru_maxrss) over the process's RSS after the imports, so it includes the scene
itself. Gaussian–pixel pairs are the pixel centres inside the Gaussians' 3.33σ boxes (the work of a
compositor without early stopping). The growth exponent is the least-squares slope of
log(time) against log(pairs) over the sizes. Targets: 1M Gaussians under 6 GB and 40 s on a
2-core CPU, growth exponent ≤ 1.

    uv run --package sags python packages/sags/bench/raster_scale.py [--sizes 62500,...,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(n: int, size: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sags.cameras import Camera, intrinsics, look_at
    from sags.gaussians import activated, random_splats
    from sags.render import _boxes, covariance3d, project, rasterize_torch

    base = _rss_mb()
    s = random_splats(n, 3, generator=torch.Generator().manual_seed(0))  # the scene of absolute.py
    cam = Camera(
        look_at(torch.tensor([2.0, 1.0, 1.6]), torch.zeros(3)), intrinsics(size * 1.1, size, size), size, size
    )
    a = activated(s)
    vm, K = cam.viewmat[None], cam.K[None]
    t = time.perf_counter()
    with torch.no_grad():
        _, alpha, _ = rasterize_torch(
            a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], vm, K, size, size, sh_degree=3
        )
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    with torch.no_grad():
        p = project(a["means"], covariance3d(a["quats"], a["scales"]), vm[0], K[0], size, size)
        v = (p["radii"] > 0).all(-1)
        x0, x1, y0, y1 = _boxes(p["means2d"][v], p["radii"][v], size, size)
        pairs = int(((x1 - x0 + 1).clamp(min=0).long() * (y1 - y0 + 1).clamp(min=0).long()).sum())
    return {
        "gaussians": n,
        "size": size,
        "seconds": round(seconds, 2),
        "pairs": pairs,
        "peak_rss_delta_mb": round(peak - base, 1),
        "mean_alpha": round(float(alpha.mean()), 4),
        "threads": threads,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="62500,125000,250000,500000,1000000")
    p.add_argument("--image", type=int, default=256)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one is not None:
        print(json.dumps(one(a.one, a.image, a.threads)))
        return
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--image",
            str(a.image),
            "--threads",
            str(a.threads),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    res = {"rows": rows, "load_average_1min": os.getloadavg()[0]}
    if len(rows) >= 2:
        x = np.log([r["pairs"] for r in rows])
        y = np.log([r["seconds"] for r in rows])
        res["growth_exponent_time_vs_pairs"] = round(float(np.polyfit(x, y, 1)[0]), 3)
    big = max(rows, key=lambda r: r["gaussians"])
    res["largest"] = {
        "gaussians": big["gaussians"],
        "seconds": big["seconds"],
        "peak_rss_delta_gb": round(big["peak_rss_delta_mb"] / 1024, 2),
        "within_targets_40s_6gb": big["seconds"] < 40 and big["peak_rss_delta_mb"] < 6 * 1024,
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
