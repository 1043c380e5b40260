"""Check every vislab package on a device: a shortened embedded default and one inference command each.

    uv run --no-sync python scripts/gpu_check.py                 # on the GPU (bf16), about 8 minutes
    uv run --no-sync python scripts/gpu_check.py --device cpu --quick   # the same code path on the CPU (CI)

For each package it runs a shortened embedded default in this process (Lightning picks ``bf16-mixed`` on
GPUs that support it), then the package's inference command on the run's checkpoint. With
``VISLAB_CHECK_DEVICES=1`` (set here) every fit asserts, when training starts, that every parameter and
buffer reachable from the LightningModule is on its device, and after fit that frozen components follow it
(``vislab.devices``). The metrics must be finite. Extra rows: 2-GPU DDP (when two GPUs are present), sags'
gsplat CUDA rasteriser against our CPU rasteriser, diffspeaker on a 10 s clip, and the bf16 step time of the
DreamBooth and textual-inversion learners at SD-1.5 size (random weights). One table is printed (and written
as Markdown with ``--table FILE``): package, seconds, peak GPU memory, metric before -> after, OK/FAIL.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["VISLAB_CHECK_DEVICES"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

PACKAGES = ("gal4p", "compinv", "cfpl", "uniattack", "flallm", "diffspeaker", "sags", "pvlr", "despoofdiff", "incantations")


# ------------------------------------------------------------------------------------------ inputs
def random_pngs(folder: Path, n: int, size: int, name: str = "face{i}.png", seed: int = 0) -> Path:
    """``n`` random RGB PNGs of ``size`` x ``size`` named ``name.format(i=...)`` (inference inputs)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / name.format(i=i))
    return folder


def face_pngs(folder: Path, n: int = 3, size: int = 64) -> Path:
    """A few random face-sized PNGs (inputs of the anti-spoofing packages and pvlr)."""
    return random_pngs(folder, n, size)


def sine_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of a 220 Hz tone with a slow envelope (speech-like energy)."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype(np.int16).tobytes())
    return path


def video_frames(folder: Path, n: int = 12, size: int = 32) -> Path:
    """A clip as a folder of numbered frames (flallm translate's input)."""
    return random_pngs(folder, n, size, name="{i:04d}.png", seed=1)


def toy_dirs(quick: bool) -> dict[str, str]:
    from vislab.toy import toy_clip, toy_sd

    preset = "fast" if quick else "default"
    return {"preset": preset, "clip": str(toy_clip(preset)), "sd": str(toy_sd(preset))}


# ------------------------------------------------------------------------------------------ the ten packages
def plan(pkg: str, out: Path, quick: bool, toys: Callable[[], dict[str, str]]) -> tuple[list[str], Callable[[Path], list[str]]]:
    """(train argv, run folder -> inference argv) for one package; ``quick`` shrinks the budget further."""
    n = 2 if quick else 20  # optimisation steps of the shortened defaults
    if pkg == "gal4p":
        t = toys()
        return ([f"--model.toy_preset={t['preset']}", f"--al.steps_per_round={n}", "--al.samples_per_direction=2",
                 "--al.query_steps=2", "--al.compare_random=false", "--eval.images_per_prompt=1", "--eval.steps=2",
                 "--data.num_class_images=2", "--al.topk=1", "--al.num_directions=2", f"--checkpoint_every_n_steps={n}"],
                lambda run: ["generate", "--model", str(run / "model"), "--prompt", "a sks star", "-n", "1", "--steps", "2",
                             "--output", str(out / "gal4p_generate.png")])
    if pkg == "compinv":
        t = toys()
        return ([f"--model.toy_preset={t['preset']}", f"--trainer.max_steps={n}", "--eval.seeds=[1000]", "--sampling.steps=2",
                 "--spatial.steps=1", "--spatial.max_iters=1", "--eval.limit=2"],
                lambda run: ["generate", "--model", t["sd"], "--embeds", str(run / "learned_embeds.safetensors"), "--prompt",
                             "a <pink-star> star and a red circle", "--steps", "2", "--out", str(out / "compinv_generate")])
    if pkg == "incantations":
        t = toys()
        return ([f"--model.toy_preset={t['preset']}", "--prompts.limit=1", "--sampling.steps=4", "--sampling.k_c=1",
                 "--sampling.k_f=2", f"--learn.iters={n}", "--eval.seeds=[1000,1001]"],
                lambda run: ["learn", "--model", t["sd"], "--guidance-clip", t["clip"], "--judge-clip", str(judge_clip(out)),
                             "--prompt", "a red circle and a blue square", "--out", str(out / "incantations_learn"), "--seeds", "1000",
                             "--learn.iters", "2", "--sampling.steps", "4", "--sampling.k_c", "1", "--sampling.k_f", "2"])
    if pkg in ("cfpl", "uniattack"):
        faces = face_pngs(out / "faces")
        extra = ["--baseline.steps=2"] if pkg == "cfpl" else ["--baseline.enabled=false"]
        return ([f"--data.steps_per_epoch={n}", "--trainer.max_epochs=1", *extra],
                lambda run: ["predict", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), str(faces),
                             "--out", str(out / f"{pkg}_predict.csv")])
    if pkg == "despoofdiff":
        faces = face_pngs(out / "faces_dd", size=32)
        return ([f"--diffusion.steps={n}", f"--classifier.steps={n}", "--bridge.steps=2", "--ablations=[]"],
                lambda run: ["predict", "--checkpoint", str(run), str(faces), "--output-dir", str(out / "despoofdiff_predict")])
    if pkg == "pvlr":
        t = toys()
        img = face_pngs(out / "pvlr_images", n=2, size=32)
        return ([f"--clip.toy_preset={t['preset']}", "--data.n_train=64", "--data.n_val=32", "--trainer.max_epochs=1", "--ablations=[]"],
                lambda run: ["predict", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), str(img / "face0.png")])
    if pkg == "flallm":
        clip = video_frames(out / "flallm_clip")
        return (["--stage1.epochs=1", "--stage2.epochs=1", "--data.synthetic.n_train=32", "--data.synthetic.n_dev=16",
                 "--data.synthetic.n_test=16", "--stage1.val_every=1", "--stage2.val_every=1", "--baseline_stage2_only=false"],
                lambda run: ["translate", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), str(clip),
                             "--output", str(out / "flallm_translate.json")])
    if pkg == "diffspeaker":
        wav = sine_wav(out / "speech.wav", 2.0)
        return ([f"--trainer.max_steps={n}", "--data.train_clips=8", "--data.test_clips=2", "--sampling.steps=2",
                 "--sampling.val_steps=2", "--eval.video=false"],
                lambda run: ["animate", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--audio", str(wav),
                             "--output-dir", str(out / "diffspeaker_animate"), "--video", "none", "--steps", "2"])
    if pkg == "sags":
        return ([f"--trainer.max_steps={5 * n}", "--synthetic.n_train=4", "--synthetic.n_test=2", "--synthetic.size=32"],
                lambda run: ["segment", "--ply", str(run / "point_cloud.ply"), "--cameras", str(run / "cameras.json"),
                             "--provider", "floodfill", "--points", "16,16", "--out", str(out / "sags_segment")])
    raise ValueError(pkg)


def judge_clip(out: Path) -> Path:
    """A second CLIP folder (random tiny weights): incantations' judge must differ from its guidance CLIP."""
    from vislab.testing.models import save_tiny_clip

    p = out / "judge_clip"
    if not (p / "config.json").is_file():
        save_tiny_clip(p, seed=1)
    return p


# ------------------------------------------------------------------------------------------ running
def peak_mb(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")


def run_package(pkg: str, out: Path, dev: torch.device, quick: bool, toys) -> dict[str, Any]:
    row: dict[str, Any] = {"package": pkg, "ok": False, "note": ""}
    t0 = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        main = importlib.import_module(f"{pkg}.cli").main
        train_argv, infer = plan(pkg, out, quick, toys)
        run = out / pkg
        rc = main(["--output-dir", str(run), "--overwrite", *train_argv]) if _knows_overwrite() else main(["--output-dir", str(run), *train_argv])
        if rc != 0:
            row["note"] = f"train exit {rc}"
            return row
        m = json.loads((run / "metrics.json").read_text())
        row.update(metric=m.get("metric"), before=m.get("before"), after=m.get("after"))
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (m.get("before"), m.get("after")))
        rc = main(infer(run))
        if rc != 0:
            row["note"] = f"inference exit {rc}"
            return row
        row["ok"] = finite
        row["note"] = "" if finite else "metric not finite"
    except BaseException as e:  # noqa: BLE001 - one package's failure must not hide the others
        if isinstance(e, KeyboardInterrupt):
            raise
        row["note"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        traceback.print_exc()
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["peak_mb"] = peak_mb(dev)
    return row


def _knows_overwrite() -> bool:
    """Whether the run contract has ``--overwrite`` (refusing to reuse a finished run folder otherwise)."""
    from vislab.run import train_parser

    return any("--overwrite" in a.option_strings for a in train_parser("x")._actions)


def extra_rows(dev: torch.device, quick: bool, out: Path) -> list[dict[str, Any]]:
    """The device-only checks: DDP on two GPUs, gsplat vs our rasteriser, a 10 s diffspeaker clip, SD-1.5-size
    learner steps. On the CPU they are reported as not run."""
    rows: list[dict[str, Any]] = []
    if dev.type != "cuda":
        for name in ("ddp 2 GPUs", "sags gsplat vs cpu", "diffspeaker 10 s clip", "dreambooth step SD-1.5 bf16",
                     "textual inversion step SD-1.5 bf16"):
            rows.append({"package": name, "ok": None, "note": "needs a GPU", "seconds": 0.0, "peak_mb": float("nan")})
        return rows
    rows.append(_ddp_row(out))
    rows.append(_timed("sags gsplat vs cpu", dev, _sags_gsplat_vs_cpu))
    rows.append(_timed("diffspeaker 10 s clip", dev, lambda: _diffspeaker_clip(out)))
    rows.append(_timed("dreambooth step SD-1.5 bf16", dev, lambda: _learner_step("dreambooth", dev)))
    rows.append(_timed("textual inversion step SD-1.5 bf16", dev, lambda: _learner_step("textual_inversion", dev)))
    return rows


def _timed(name: str, dev: torch.device, fn: Callable[[], tuple[bool, str]]) -> dict[str, Any]:
    torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    try:
        ok, note = fn()
    except Exception as e:  # noqa: BLE001
        ok, note = False, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        traceback.print_exc()
    return {"package": name, "ok": ok, "note": note, "seconds": round(time.perf_counter() - t0, 1), "peak_mb": peak_mb(dev)}


def _ddp_row(out: Path) -> dict[str, Any]:
    if torch.cuda.device_count() < 2:
        return {"package": "ddp 2 GPUs", "ok": None, "note": "one GPU here", "seconds": 0.0, "peak_mb": float("nan")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cfpl", "--output-dir", str(out / "ddp_cfpl"), "--trainer.strategy=ddp",
                        "--trainer.devices=2", "--data.steps_per_epoch=4", "--trainer.max_epochs=1", "--baseline.steps=2"],
                       capture_output=True, text=True, timeout=600)
    ok = r.returncode == 0 and (out / "ddp_cfpl" / "metrics.json").is_file()
    return {"package": "ddp 2 GPUs (cfpl)", "ok": ok, "note": "" if ok else r.stderr.strip().splitlines()[-1][:160],
            "seconds": round(time.perf_counter() - t0, 1), "peak_mb": float("nan")}


def _sags_gsplat_vs_cpu() -> tuple[bool, str]:
    """One random scene, one view: gsplat's CUDA rasteriser against our CPU rasteriser."""
    from sags.render import rasterize

    g = torch.Generator().manual_seed(0)
    n, size = 2000, 64
    means = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 4.0])
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scales = torch.full((n, 3), 0.03)
    opac = torch.rand(n, generator=g) * 0.9
    colors = torch.rand(n, 3, generator=g)
    view = torch.eye(4)[None]
    K = torch.tensor([[[60.0, 0, size / 2], [0, 60.0, size / 2], [0, 0, 1]]])
    args = (means, quats, scales, opac, colors, view, K, size, size)
    rgb_cpu, a_cpu, _ = rasterize(*args, backend="torch")
    rgb_gpu, a_gpu, _ = rasterize(*[x.cuda() if isinstance(x, torch.Tensor) else x for x in args], backend="gsplat")
    d_rgb = float((rgb_cpu[..., :3] - rgb_gpu[..., :3].cpu()).abs().max())
    d_a = float((a_cpu - a_gpu.cpu()).abs().max())
    return d_rgb < 1e-3 and d_a < 1e-3, f"max |diff| colour {d_rgb:.2e}, alpha {d_a:.2e}"


def _diffspeaker_clip(out: Path) -> tuple[bool, str]:
    main = importlib.import_module("diffspeaker.cli").main
    wav = sine_wav(out / "speech10.wav", 10.0)
    ck = out / "diffspeaker" / "checkpoints" / "last.ckpt"
    t0 = time.perf_counter()
    rc = main(["animate", "--checkpoint", str(ck), "--audio", str(wav), "--output-dir", str(out / "ds10"), "--video", "none"])
    dt = time.perf_counter() - t0
    return rc == 0 and dt < 1.0, f"{dt:.2f} s for 10 s of audio (whole command)"


def _learner_step(kind: str, dev: torch.device) -> tuple[bool, str]:
    from vislab.diffusion.learners import DreamBoothLearner, TextualInversionLearner
    from vislab.testing.models import tiny_sd_components

    # SD-1.5 sizes: UNet (320, 640, 1280, 1280) with cross-attention at three levels, 768-wide 12-layer text
    # encoder, 77 tokens, 512 px images (64 x 64 latents)
    sd = tiny_sd_components(image_size=512, context_length=77, text_width=768, text_layers=12, text_heads=12,
                            vae_channels=(128, 256, 512, 512), unet_channels=(320, 640, 1280, 1280), unet_heads=8,
                            cross_attn_levels=3, layers_per_block=2).to(dev)
    learner = DreamBoothLearner(sd) if kind == "dreambooth" else TextualInversionLearner(sd, placeholder="<c>", init_word="dog")
    learner.to(dev)
    opt = learner.configure_optimizers()
    opt = opt[0] if isinstance(opt, (list, tuple)) else opt
    batch = {"pixel_values": torch.rand(1, 3, 512, 512, device=dev) * 2 - 1, "prompt": ["a photo of a <c> dog"],
             "weight": torch.ones(1, device=dev)}
    times = []
    for _ in range(4):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = learner.training_step(batch, 0)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return math.isfinite(float(loss)), f"step {min(times[1:]) * 1000:.0f} ms (min of 3 after warm-up)"


# ------------------------------------------------------------------------------------------ main
def table(rows: list[dict[str, Any]], device_name: str) -> str:
    lines = [f"device: {device_name}", "", "| package | seconds | peak GPU MiB | metric before -> after | result |",
             "|---|---|---|---|---|"]
    for r in rows:
        ba = ""
        if r.get("metric") is not None:
            ba = f"{r['metric']}: {r['before']:.4g} -> {r['after']:.4g}"
        res = "OK" if r["ok"] else ("not run" if r["ok"] is None else "FAIL")
        note = f" ({r['note']})" if r.get("note") else ""
        peak = "" if math.isnan(r["peak_mb"]) else f"{r['peak_mb']:.0f}"
        lines.append(f"| {r['package']} | {r['seconds']} | {peak} | {ba} | {res}{note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda (default when present) or cpu")
    ap.add_argument("--quick", action="store_true", help="the smallest budgets and the fast toy models (CI on the CPU)")
    ap.add_argument("--packages", nargs="*", default=list(PACKAGES), help="subset of packages")
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--table", type=Path, default=None, help="also write the table as Markdown here")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: --device cuda but no GPU is visible (use --device cpu --quick)", file=sys.stderr)
        return 2
    if dev.type == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the packages pick their device through vislab.runtime.device()
    unknown = sorted(set(a.packages) - set(PACKAGES))
    if unknown:
        print(f"gpu_check: error: unknown packages {unknown} (known: {', '.join(PACKAGES)})", file=sys.stderr)
        return 2
    out = a.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    cache: dict[str, dict[str, str]] = {}

    def toys() -> dict[str, str]:
        if "t" not in cache:
            cache["t"] = toy_dirs(a.quick)
        return cache["t"]

    from vislab import runtime

    runtime.setup(0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    rows = [run_package(p, out, dev, a.quick, toys) for p in a.packages]
    if set(a.packages) == set(PACKAGES) or dev.type == "cuda":
        rows += extra_rows(dev, a.quick, out)
    text = table(rows, name + (", --quick" if a.quick else ""))
    print(text)
    if a.table:
        a.table.write_text(text + "\n")
    failed = [r["package"] for r in rows if r["ok"] is False]
    if failed:
        print(f"gpu_check: FAIL: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
