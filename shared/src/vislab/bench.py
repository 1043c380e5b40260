"""Side-by-side benchmarks: our hot path against a reimplementation of a peer's loop, in one process.

:func:`compare` builds both sides, measures the memory each adds, then times them in interleaved
repetitions (ours, peer, peer, ours, ...) so that machine load hits both alike; it reports min and
median per side and their ratios (ours / peer: below 1 means we are faster or smaller).

Memory is the peak *added* by a side: building it (copies, optimiser) and one step, over the memory
held just before. On CUDA that is the allocator peak; on CPU it is the resident-set high-water mark
(reset through ``/proc/self/clear_refs``) over the RSS after a garbage collection and ``malloc_trim``,
so imports and the shared frozen models are not counted.

:func:`environment` says where a number was taken (machine, threads, load average, date);
:func:`profile_top` lists the ops a step spends its time in; :func:`main` runs every package's
``bench/bench.py`` and writes one Markdown table (``make bench``).

The bench contract (what every ``packages/<pkg>/bench/bench.py`` does so that ``make bench`` can collect it)
---------------------------------------------------------------------------------------------------------------
1. It defines ``rows(dev: torch.device, reps: int) -> list[dict]`` returning one :func:`compare` row per
   benchmarked step (ours vs its peer, same inputs), and ends with ``if __name__ == "__main__": cli("<pkg>", rows)``.
   Imports of the package itself go inside functions or after ``vislab.bench`` (so ``--help`` is cheap).
2. :func:`cli` gives every bench the same options:

   - ``--reps N``: timed repetitions per side (default 5; the issue's minimum);
   - ``--quick``: the CI guard: one repetition, no extra warm-up, no profile, and :func:`quick` returns True so the
     bench picks its smallest sizes (a whole quick bench should take a few seconds);
   - ``--device cpu|cuda|cuda:N``: where to run (default: the GPU when there is one). On CUDA the step runs under
     :func:`autocast` (bf16), with TF32 and flash/memory-efficient SDPA on (:func:`setup`); :func:`compile_step`
     wraps a module in ``torch.compile`` on CUDA only (a no-op on CPU);
   - ``--json PATH``: write ``{"environment": environment(dev), "rows": [row, ...]}`` there.

   It prints the same JSON and the Markdown :func:`table` on stdout, and exits 0; an exception exits non-zero and
   ``make bench`` reports the row as failed with the last line of stderr.
3. A row is what :func:`compare` returns: ``package, work, peer, device, reps, ours_min_ms, ours_median_ms,
   peer_min_ms, peer_median_ms, ours_mem_mb, peer_mem_mb, ratio_min, ratio_median, mem_ratio, target,
   meets_target`` (``target``: the min-over-min ratio to meet, default 1.0) and optionally ``note``. Where the
   issue asks for a profile (or ours is slower than the target), the bench adds ``profile_top5_ours`` /
   ``profile_top5_peer`` from :func:`profile_top` (only when :func:`profiling` is True, i.e. not ``--quick``);
   :func:`main` prints these under the table in ``bench/results.md``.
4. ``make bench`` (``scripts/bench_all.py`` -> :func:`main`) runs each bench in its own process, one after the
   other, with ``--reps N --json <tmp>/<pkg>.json`` (plus ``--quick`` / ``--device`` when given) and writes
   ``bench/results.md``; ``make bench PKG=<pkg>`` runs one. ``tests/test_bench.py`` runs every bench with
   ``--quick`` and checks that it prints a ratio.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

Step = Callable[[], Any]

_QUICK = False


def quick() -> bool:
    """True under ``--quick`` (the CI guard): a bench should use its smallest sizes."""
    return _QUICK


def profiling() -> bool:
    """Whether a bench should add profiler rows (not under ``--quick``)."""
    return not _QUICK


def compile_step(module: torch.nn.Module, dev: torch.device | str) -> torch.nn.Module:
    """``torch.compile(module)`` on CUDA (outside ``--quick``), the module itself elsewhere."""
    if torch.device(dev).type == "cuda" and not _QUICK:
        return torch.compile(module)  # type: ignore[return-value]
    return module


# ------------------------------------------------------------------------------------------ environment
def environment(dev: torch.device | str | None = None) -> dict[str, Any]:
    """Machine, device, threads, load average, date and library versions."""
    dev = torch.device(dev) if dev is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    name = "cpu" if dev.type != "cuda" else (torch.cuda.get_device_name(dev) if torch.cuda.is_available() else "cuda (not available)")
    return {"device": name, "cpu": cpu,
            "cores": os.cpu_count(), "threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in load],
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__,
            "python": platform.python_version()}


# ------------------------------------------------------------------------------------------ memory
def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _proc_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class AddedMemory:
    """Context manager: ``.mb`` is the peak memory (MiB) added inside the block over what was held on entry.

    CUDA: ``max_memory_allocated - memory_allocated`` at entry. CPU (Linux): ``VmHWM`` (reset on entry)
    minus ``VmRSS`` after ``gc.collect()`` + ``malloc_trim(0)``; ``None`` where ``/proc`` is unavailable.
    """

    def __init__(self, dev: torch.device | str):
        self.dev = torch.device(dev)
        self.mb: float | None = None

    def __enter__(self) -> AddedMemory:
        _trim()
        if self.dev.type == "cuda":
            _sync(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            self._base = torch.cuda.memory_allocated(self.dev)
        else:
            self._ok = _reset_hwm()
            self._base = _proc_kb("VmRSS")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.dev.type == "cuda":
            _sync(self.dev)
            self.mb = (torch.cuda.max_memory_allocated(self.dev) - self._base) / 2**20
        elif self._ok and self._base is not None:
            hwm = _proc_kb("VmHWM")
            self.mb = None if hwm is None else max(0.0, (hwm - self._base) / 1024)


# ------------------------------------------------------------------------------------------ comparison
def compare(work: str, peer: str, make_ours: Callable[[], Step], make_peer: Callable[[], Step], *, reps: int = 5,
            warmup: int = 1, dev: torch.device | str = "cpu", package: str = "", note: str = "",
            target: float = 1.0) -> dict[str, Any]:
    """Time ``ours`` against ``peer`` on the same work; return one row of the ratio table.

    ``make_*`` build a side (copies of what it mutates, its optimiser) and return its step function.
    Each side is built and stepped once under :class:`AddedMemory` (that step is also its first warm-up),
    then warmed up ``warmup`` more times; then ``reps`` repetitions alternate the order
    (ours-peer, peer-ours, ...). Ratios are ours / peer of the minima and of the medians; ``target`` is the
    min-over-min ratio to meet (``meets_target``). Under ``--quick`` there is no extra warm-up.
    """
    dev = torch.device(dev)
    if _QUICK:
        warmup = 0
    steps: dict[str, Step] = {}
    mem: dict[str, float | None] = {}
    for side, make in (("ours", make_ours), ("peer", make_peer)):
        with AddedMemory(dev) as m:
            steps[side] = make()
            steps[side]()
        mem[side] = m.mb
    for _ in range(warmup):
        for side in ("ours", "peer"):
            steps[side]()
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for r in range(max(1, reps)):
        for side in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
            _sync(dev)
            t0 = time.perf_counter()
            steps[side]()
            _sync(dev)
            times[side].append(time.perf_counter() - t0)
    row: dict[str, Any] = {"package": package, "work": work, "peer": peer, "device": "cpu" if dev.type == "cpu" else torch.cuda.get_device_name(dev),
                           "reps": len(times["ours"])}
    for side in ("ours", "peer"):
        row[f"{side}_min_ms"] = round(1e3 * min(times[side]), 3)
        row[f"{side}_median_ms"] = round(1e3 * statistics.median(times[side]), 3)
        row[f"{side}_mem_mb"] = None if mem[side] is None else round(mem[side], 2)
    row["ratio_min"] = round(min(times["ours"]) / min(times["peer"]), 3)
    row["ratio_median"] = round(statistics.median(times["ours"]) / statistics.median(times["peer"]), 3)
    if mem["ours"] is not None and mem["peer"]:
        row["mem_ratio"] = round(mem["ours"] / mem["peer"], 3)
    row["target"] = target
    row["meets_target"] = bool(row["ratio_min"] <= target)
    if note:
        row["note"] = note
    return row


def profile_top(step: Step, k: int = 5, dev: torch.device | str = "cpu", reps: int = 2) -> list[dict[str, Any]]:
    """The ``k`` ops with the most self time over ``reps`` calls of ``step`` (torch profiler; CUDA time on GPU).
    Under ``--quick`` it profiles nothing and returns ``[]``."""
    from torch.profiler import ProfilerActivity, profile

    if _QUICK:
        return []

    dev = torch.device(dev)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    step()
    with profile(activities=acts) as prof:
        for _ in range(reps):
            step()
        _sync(dev)
    events = prof.key_averages()
    attr = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr, 0.0) for e in events) or 1.0
    top = sorted(events, key=lambda e: getattr(e, attr, 0.0), reverse=True)[:k]
    return [{"op": e.key, "self_ms_per_step": round(getattr(e, attr, 0.0) / 1e3 / reps, 3),
             "share": round(getattr(e, attr, 0.0) / total, 3), "calls_per_step": e.count // reps} for e in top]


def autocast(dev: torch.device | str):
    """bf16 autocast on CUDA (fp32 on CPU): the GPU rows' precision."""
    dev = torch.device(dev)
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()


def setup(seed: int = 0) -> torch.device:
    """Seed, TF32 / SDPA settings on GPU (``vislab.runtime.setup``); returns the bench device."""
    from vislab import runtime

    runtime.setup(seed)
    return runtime.device()


# ------------------------------------------------------------------------------------------ reporting
def cli(package: str, rows_fn: Callable[[torch.device, int], list[dict[str, Any]]], argv: list[str] | None = None) -> list[dict[str, Any]]:
    """The standard bench entry point (see the module docstring): ``--reps N`` (default 5), ``--quick``,
    ``--device``, ``--json PATH``; prints the rows and the table."""
    global _QUICK
    p = argparse.ArgumentParser(description=f"{package}: our step against its peer's, interleaved in one process")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per side (default 5)")
    p.add_argument("--quick", action="store_true", help="CI guard: 1 repetition, smallest sizes, no profile")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows and the environment here")
    a = p.parse_args(argv)
    _QUICK = a.quick
    from vislab import runtime

    try:
        runtime.use_device(a.device)
    except Exception as e:  # noqa: BLE001 - vislab.errors.VislabError: a device that is not here
        print(f"{package} bench: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    dev = setup(0)
    rows = rows_fn(dev, 1 if a.quick else a.reps)
    for r in rows:
        r["package"] = r.get("package") or package
    env = environment(dev)
    out = {"environment": env, "rows": rows}
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(table(rows))
    return rows


def _fmt(x: Any) -> str:
    return "–" if x is None else (f"{x:g}" if isinstance(x, float) else str(x))


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown ratio table of :func:`compare` rows (ratio = ours / peer of the minima; target met: yes / no)."""
    head = ("| package | work | peer | device | ours min / median (ms) | peer min / median (ms) | ratio min | ratio median "
            "| target | added MiB ours / peer |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('package', '')} | {r.get('work', '')} | | | failed: {r['error']} | | | | | |")
            continue
        target = r.get("target")
        met = "" if target is None else (f"≤ {_fmt(float(target))} " + ("yes" if r.get("meets_target") else "**no**"))
        lines.append(f"| {r['package']} | {r['work']} | {r['peer']} | {r['device']} | {_fmt(r['ours_min_ms'])} / {_fmt(r['ours_median_ms'])} "
                     f"| {_fmt(r['peer_min_ms'])} / {_fmt(r['peer_median_ms'])} | **{_fmt(r['ratio_min'])}** | {_fmt(r['ratio_median'])} "
                     f"| {met} | {_fmt(r['ours_mem_mb'])} / {_fmt(r['peer_mem_mb'])} |")
    return "\n".join(lines)


def profiles(rows: list[dict[str, Any]]) -> str:
    """The profiler top ops that rows carry (``profile_top5_ours`` / ``profile_top5_peer``), as Markdown."""
    out = []
    for r in rows:
        for side in ("ours", "peer"):
            top = r.get(f"profile_top5_{side}")
            if not top:
                continue
            ops = "; ".join(f"`{o['op']}` {_fmt(o['self_ms_per_step'])} ms ({100 * o['share']:.0f} %, {o['calls_per_step']}x)" for o in top)
            out.append(f"- {r['package']}, {r['work']}, {side}: {ops}")
    return ("Profiler, top 5 ops by self time per step:\n\n" + "\n".join(out) + "\n") if out else ""


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()] or \
            [ln for ln in (proc.stdout or "").strip().splitlines() if ln.strip()] or [f"exit {proc.returncode}, no output"]
    return lines[-1][:200].replace("|", "/")


def run_benches(root: Path, packages: list[str] | None = None, reps: int = 5, quick: bool = False, device: str | None = None,
                timeout: float | None = None, log: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Run each ``packages/<pkg>/bench/bench.py`` in its own process (the contract in the module docstring); its rows,
    or one row with ``error`` when it failed."""
    benches = sorted((root / "packages").glob("*/bench/bench.py"))
    if packages:
        unknown = set(packages) - {b.parent.parent.name for b in benches}
        if unknown:
            from vislab.errors import ConfigError

            raise ConfigError(f"no packages/<pkg>/bench/bench.py for: {', '.join(sorted(unknown))}")
        benches = [b for b in benches if b.parent.parent.name in packages]
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="vislab-bench-"))
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    for b in benches:
        pkg = b.parent.parent.name
        out = tmp / f"{pkg}.json"
        cmd = [sys.executable, str(b), "--reps", str(reps), "--json", str(out)] + (["--quick"] if quick else []) + \
              (["--device", device] if device else [])
        log(f"[bench] {pkg}")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            rows.append({"package": pkg, "work": "bench", "error": f"timed out after {timeout:g} s"})
            log(f"[bench] {pkg} timed out")
            continue
        if proc.returncode != 0 or not out.is_file():
            rows.append({"package": pkg, "work": "bench", "error": _last_line(proc)})
            log(f"[bench] {pkg} failed: {_last_line(proc)}")
            continue
        got = json.loads(out.read_text())["rows"]
        for r in got:
            r["package"] = r.get("package") or pkg
            r["seconds"] = round(time.perf_counter() - t0, 1)
        rows += got
        log(f"[bench] {pkg}: {len(got)} rows in {time.perf_counter() - t0:.0f} s " +
            " ".join(f"{r['ratio_min']:g}x" for r in got if "ratio_min" in r))
    return rows


def report(rows: list[dict[str, Any]], env_start: dict[str, Any], env_end: dict[str, Any], reps: int) -> str:
    """``bench/results.md``: conditions, the ratio table, the profiles."""
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (f"# Benchmarks: ours against the peers\n\nWritten by `make bench` ({env_end['date']}). Each row: the same work on the "
            f"same inputs in one process, {reps} interleaved repetitions per side after a warm-up; ratio = ours / peer of the "
            "minima (below 1: we are faster), median ratio beside it; target = the min-over-min ratio to meet; added MiB = peak "
            "memory added by building a side and one step (CUDA allocator peak; CPU resident-set high-water mark over the RSS "
            "before, so imports and the shared frozen models are not counted).\n\n"
            f"Machine: {env_end['cpu']}, {env_end['cores']} cores, {env_end['threads']} torch threads (OMP_NUM_THREADS={threads}), "
            f"device {env_end['device']}, torch {env_end['torch']}, Python {env_end['python']}. Load average (1/5/15 min) "
            f"at the start {env_start['load_average']}, at the end {env_end['load_average']}.\n\n"
            + table(rows) + "\n\n" + profiles(rows))


def main(argv: list[str] | None = None) -> int:
    """Run ``packages/*/bench/bench.py`` one after the other and write the table (``make bench``)."""
    p = argparse.ArgumentParser(prog="python -m vislab.bench", description=main.__doc__)
    p.add_argument("packages", nargs="*", help="package names (default: every packages/*/bench/bench.py)")
    p.add_argument("--root", type=Path, default=Path.cwd())
    p.add_argument("--out", type=Path, default=None,
                   help="Markdown table (default: <root>/bench/results.md; results-<pkg>.md when packages are named)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="1 repetition, smallest sizes (the CI guard)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: each bench's, the GPU when there is one)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per package bench")
    a = p.parse_args(argv)
    env_start = environment(a.device)
    rows = run_benches(a.root, a.packages, a.reps, a.quick, a.device, a.timeout, log=lambda m: print(m, flush=True))
    env_end = environment(a.device)
    text = report(rows, env_start, env_end, 1 if a.quick else a.reps)
    out = a.out or a.root / "bench" / ("results.md" if not a.packages else f"results-{'-'.join(a.packages)}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
