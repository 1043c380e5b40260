"""flallm benchmark: stage-1 / stage-2 training step time, throughput, peak memory, decoding speed.

Prints one JSON object. Two configs with random weights: ``tiny`` (the embedded default) and
``paper`` (ResNet18 at 224 px, C=1024, Light-T 3+3x512, mBART-large-size 12+12x1024 with a
trimmed 2,454-token vocabulary). The paper-size config runs on a GPU; on a CPU it runs only
with ``--paper-on-cpu`` (mBART-large + Adam needs ~11 GB and minutes per step there).

    python packages/flallm/bench/absolute.py [--steps 3] [--paper-on-cpu] [--only tiny|paper]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import torch


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, steps: int) -> float:
    fn()  # warm-up
    _sync()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync()
    return (time.perf_counter() - t) / steps


def bench(preset: str, steps: int, batch: int, frames: int, sentence_words: int, max_new: int) -> dict:
    from flallm.module import Stage1Module, Stage2Module
    from flallm.tokenizer import SignTokenizer
    from vislab import runtime
    from vislab.run import load_preset

    cfg = load_preset("flallm", preset)
    dev = runtime.device()
    runtime.setup(0)
    amp = runtime.autocast_dtype(dev)
    ctx = (lambda: torch.autocast(dev.type, dtype=amp)) if amp else contextlib.nullcontext
    vocab = [f"w{i}" for i in range(2454 - 5 if preset == "paper" else 13)]
    tok = SignTokenizer.build_word_level([" ".join(vocab)], "de_DE")
    g = torch.Generator().manual_seed(0)
    texts = [" ".join(vocab[j] for j in torch.randint(0, len(vocab), (sentence_words,), generator=g).tolist()) for _ in range(batch)]
    labels = tok.encode_targets(texts)
    S = int(cfg["data"]["image_size"])
    b = {"frames": torch.rand(batch, frames, 3, S, S, generator=g).to(dev), "lengths": torch.full((batch,), frames).to(dev),
         "texts": texts, "labels": labels.masked_fill(labels.eq(tok.pad_id), -100).to(dev), "decoder_input_ids": tok.shift_right(labels).to(dev)}
    out: dict = {"device": str(dev), "precision": runtime.precision(dev), "batch": batch, "frames_per_clip": frames, "image_size": S}

    # stage 1: everything trains
    runtime.reset_peak_memory()
    s1 = Stage1Module(cfg, tok).to(dev).train()
    opt = torch.optim.SGD(s1.parameters(), lr=1e-3, momentum=0.9)

    def step1():
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = s1.loss(b)
        loss.backward()
        opt.step()

    t1 = _timed(step1, steps)
    out["stage1"] = {"params_m": round(sum(p.numel() for p in s1.parameters()) / 1e6, 2), "step_s": round(t1, 4),
                     "clips_per_s": round(batch / t1, 2), "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}
    s1 = opt = step1 = None  # free stage 1 before timing stage 2
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    # stage 2: frozen encoder, cached features -> LLM-adapter -> mBART (full fine-tune)
    runtime.reset_peak_memory()
    s2 = Stage2Module(cfg, tok).to(dev).train()
    with torch.no_grad():
        feats = s2.features(b["frames"], b["lengths"])
    b2 = {**{k: v for k, v in b.items() if k != "frames"}, "feats": feats}
    c2 = cfg["stage2"]
    opt2 = torch.optim.Adam([{"params": [p for p in s2.head.parameters() if p.requires_grad], "lr": float(c2["lr_llm"])},
                             {"params": list(s2.llm_adapter.parameters()), "lr": float(c2["lr_adapter"])}])

    def step2():
        opt2.zero_grad(set_to_none=True)
        with ctx():
            loss = s2.loss(b2)
        loss.backward()
        opt2.step()

    t2 = _timed(step2, steps)
    out["stage2"] = {"llm_params_m": round(sum(p.numel() for p in s2.head.parameters()) / 1e6, 1), "step_s": round(t2, 4),
                     "sentences_per_s": round(batch / t2, 2), "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}
    opt2 = step2 = None
    s2.eval()
    beams = int(c2["decode"]["num_beams"])
    s2.config["stage2"]["decode"]["max_new_tokens"] = max_new

    def infer():
        with ctx():
            s2.translate_batch(b2)

    ti = _timed(infer, max(1, steps // 2))
    out["inference"] = {"num_beams": beams, "max_new_tokens": max_new, "batch_latency_s": round(ti, 4),
                        "sentences_per_s": round(batch / ti, 2), "peak_memory_mb": round(runtime.peak_memory_mb(dev), 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--only", choices=["tiny", "paper"], default=None)
    p.add_argument("--paper-on-cpu", action="store_true")
    args = p.parse_args(argv)
    res: dict = {"package": "flallm", "torch": torch.__version__}
    if args.only in (None, "tiny"):
        res["tiny"] = bench("default", args.steps, batch=16, frames=8, sentence_words=5, max_new=12)
    if args.only in (None, "paper"):
        if torch.cuda.is_available() or args.paper_on_cpu:
            res["paper"] = bench("paper", args.steps, batch=8, frames=75 if torch.cuda.is_available() else 16,
                                 sentence_words=15, max_new=30)
        else:
            res["paper"] = {"skipped": "no GPU; pass --paper-on-cpu to time mBART-large-size on this CPU"}
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
