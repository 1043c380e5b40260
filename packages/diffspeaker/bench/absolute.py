"""DiffSpeaker benchmark: training step time, throughput, peak memory, inference latency (JSON on stdout).

Configs: ``tiny`` (the embedded default) and ``paper`` (VOCASET: wav2vec2-base sizes, D=512, V=5023,
random weights). Inference: a 10 s clip, all frames generated in parallel, 50 DDIM steps.

    python packages/diffspeaker/bench/absolute.py [--configs tiny paper] [--paper-batch 4] [--steps 3]

The ratio against the official sampling loop: ``bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build(name: str):
    from diffspeaker.module import DiffSpeakerModule
    from vislab.run import load_preset

    cfg = load_preset("diffspeaker", "default" if name == "tiny" else "paper")
    n_feats, n_styles, fps = (900, 3, 30.0) if name == "tiny" else (15069, 8, 30.0)
    m = DiffSpeakerModule(
        {**cfg["model"], "n_feats": n_feats, "n_styles": n_styles},
        cfg["audio"]["config"],
        cfg["optim"],
        cfg["loss"],
        cfg["sampling"],
    )
    return m, n_feats, n_styles, fps, cfg


def batch_for(B: int, seconds: float, n_feats: int, n_styles: int, fps: float, device):
    import torch

    N, T = int(seconds * 16000), int(seconds * fps)
    return {
        "audio": torch.randn(B, N, device=device),
        "audio_len": torch.full((B,), N),
        "vertices": torch.randn(B, T, n_feats, device=device) * 0.01,
        "n_frames": torch.full((B,), T),
        "frame_mask": torch.ones(B, T, dtype=torch.bool, device=device),
        "template": torch.zeros(B, n_feats, device=device),
        "style": torch.eye(n_styles, device=device)[torch.arange(B) % n_styles],
    }


def bench(name: str, batch: int, seconds: float, steps: int, infer_seconds: float, ddim_steps: int) -> dict:
    import torch
    from diffspeaker.losses import diffspeaker_loss
    from vislab import runtime

    dev = runtime.device()
    runtime.reset_peak_memory()
    m, n_feats, n_styles, fps, _ = build(name)
    m = m.to(dev).train()
    opt = m.configure_optimizers()
    b = batch_for(batch, seconds, n_feats, n_styles, fps, dev)
    amp = runtime.autocast_dtype(dev)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            pred, x0 = m.model.training_prediction(b)
            loss = diffspeaker_loss(
                pred + b["template"][:, None], x0 + b["template"][:, None], b["frame_mask"]
            )["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    m.eval()
    ib = batch_for(1, infer_seconds, n_feats, n_styles, fps, dev)
    T = int(infer_seconds * fps)
    with torch.no_grad(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
        t0 = time.perf_counter()
        out = m.model.sample(ib["audio"], ib["audio_len"], [T], ib["style"], steps=ddim_steps)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        lat = time.perf_counter() - t0
    assert out.shape == (1, T, n_feats)
    return {
        "config": name,
        "device": str(dev),
        "params_M": round(sum(p.numel() for p in m.parameters()) / 1e6, 2),
        "train_batch": batch,
        "clip_seconds": seconds,
        "train_step_s": round(step, 4),
        "train_clips_per_s": round(batch / step, 2),
        "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1),
        "inference_audio_s": infer_seconds,
        "inference_ddim_steps": ddim_steps,
        "inference_latency_s": round(lat, 3),
        "inference_frames_per_s": round(T / lat, 1),
        "inference_realtime_factor": round(infer_seconds / lat, 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    p.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    p.add_argument(
        "--paper-batch",
        type=int,
        default=None,
        help="paper-size training batch (default 32 on GPU, 2 on CPU)",
    )
    p.add_argument("--infer-seconds", type=float, default=10.0)
    p.add_argument("--ddim-steps", type=int, default=50)
    a = p.parse_args(argv)
    import torch

    torch.manual_seed(0)
    results = []
    for name in a.configs:
        if name == "tiny":
            results.append(bench("tiny", 8, 2.0, a.steps, a.infer_seconds, a.ddim_steps))
        else:
            pb = a.paper_batch or (32 if torch.cuda.is_available() else 2)
            results.append(bench("paper", pb, 4.0, a.steps, a.infer_seconds, a.ddim_steps))
    json.dump({"package": "diffspeaker", "results": results}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
