"""The bench guard: every package's ``bench/bench.py`` runs (one repetition, smallest sizes: ``--quick``) and prints an
ours / peer ratio; ``make bench``'s collector turns bench JSON into the results table and reports a failing bench.

Each bench runs in this process (``runpy``), so torch and the models' libraries are imported once."""

from __future__ import annotations

import json
import math
import runpy
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.parent.parent.name for p in ROOT.glob("packages/*/bench/bench.py"))


def test_every_package_has_a_bench():
    assert len(BENCHES) == 10, BENCHES


@pytest.mark.parametrize("pkg", BENCHES)
def test_bench_quick_prints_a_ratio(pkg, tmp_path, capsys, monkeypatch):
    from vislab import bench, runtime

    out = tmp_path / "rows.json"
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick", "--device", "cpu", "--json", str(out)])
    try:
        runpy.run_path(str(ROOT / "packages" / pkg / "bench" / "bench.py"), run_name="__main__")
    finally:
        bench._QUICK = False
        runtime.use_device(None)
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["environment"]["load_average"] and data["rows"], data
    for r in data["rows"]:
        assert r["package"] == pkg and r["reps"] == 1
        assert math.isfinite(r["ratio_min"]) and r["ratio_min"] > 0
        assert r["ratio_min"] == pytest.approx(r["ours_min_ms"] / r["peer_min_ms"], rel=1e-2)
        assert f"**{r['ratio_min']:g}**" in printed  # the Markdown table row


def _fake_root(tmp_path: Path) -> Path:
    good = tmp_path / "packages" / "good" / "bench"
    bad = tmp_path / "packages" / "bad" / "bench"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    (good / "bench.py").write_text(textwrap.dedent('''
        import time
        from vislab.bench import cli, compare, profile_top

        def rows(dev, reps):
            slow, fast = (lambda: time.sleep(0.004)), (lambda: time.sleep(0.001))
            row = compare("sleep", "a faster sleep", lambda: slow, lambda: fast, reps=reps, dev=dev, target=1.0)
            row["profile_top5_ours"] = profile_top(lambda: sum(range(10)), 5, dev)
            return [row]

        if __name__ == "__main__":
            cli("good", rows)
    '''))
    (bad / "bench.py").write_text("raise RuntimeError('no peer here')\n")
    return tmp_path


def test_collector_writes_the_table_and_reports_failures(tmp_path):
    from vislab.bench import main

    root = _fake_root(tmp_path)
    rc = main(["--root", str(root), "--reps", "2", "--device", "cpu"])
    text = (root / "bench" / "results.md").read_text()
    assert rc == 1  # one bench failed
    assert "| bad | bench |" in text and "RuntimeError: no peer here" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| good |"))
    ratio = float(row.split("**")[1])
    assert ratio > 1.5 and "**no**" in row  # ours sleeps 4x longer: slower than its target
    assert "Load average" in text and "torch threads" in text
    assert main(["--root", str(root), "good", "--quick", "--device", "cpu"]) == 0
    assert (root / "bench" / "results-good.md").is_file()
