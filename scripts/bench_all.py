"""Run every package's ``bench/bench.py`` (ours vs its peer, interleaved) and write ``bench/results.md``.

    python scripts/bench_all.py [PKG ...] [--reps 5] [--quick] [--device cuda] [--out bench/results.md]

The per-bench contract (options, JSON rows) is in the docstring of :mod:`vislab.bench`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vislab.bench import main  # noqa: E402

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    raise SystemExit(main(["--root", str(root), *sys.argv[1:]]))
