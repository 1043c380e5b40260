"""``vislab toy faces --out DIR``: write grid.png and a small toy dataset in the real layouts, read it
back with the real-dataset readers, and (``--check``) train a small CNN on it as a signal check."""

from __future__ import annotations

import argparse
import json
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vislab toy faces",
        description="Toy face anti-spoofing data: writes DIR/grid.png (one face under every attack and domain) "
        "and a small dataset in the MCIO (CASIA-FAS-Benchmark), OULU-NPU and UniAttackData layouts.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--identities", type=int, default=4, help="identities per MCIO domain (split 50/25/25 train/dev/test)")
    p.add_argument("--uni-identities", type=int, default=8, help="identities of the UniAttackData-like set")
    p.add_argument("--frames", type=int, default=2, help="frames per video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="also train a small CNN on O-C-I and report AUC on the held-out domain M")
    return p


def main(argv: list[str] | None = None) -> int:
    from vislab.errors import VislabError

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except VislabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from pathlib import Path

    from vislab.faces import layouts as readers
    from vislab.faces.export import write_toy_layout

    t0 = time.time()
    out = Path(args.out)
    summary = write_toy_layout(out, size=args.size, identities=args.identities, uni_identities=args.uni_identities, frames=args.frames, seed=args.seed)
    print(f"grid: {summary['grid']}")
    print(f"wrote MCIO, OULU-NPU and UniAttackData layouts under {out} in {time.time() - t0:.1f}s")
    # read everything back with the real readers
    back = {}
    for split in ("train", "dev", "test"):
        back[f"MCIO O-C-I@M {split}"] = len(readers.mcio_dataset(out / "MCIO", "O-C-I@M", split, frames=args.frames, size=args.size))
        back[f"OULU-NPU P1 {split}"] = len(readers.oulu_dataset(out / "OULU-NPU", 1, split, frames=args.frames, size=args.size))
        for p in ("p1", "p2.1", "p2.2"):
            back[f"UniAttackData@{p} {split}"] = len(readers.uniattack_dataset(out / "UniAttackData", p, split, size=args.size))
    for k, v in back.items():
        print(f"  read back {k}: {v} frames")
    summary["read_back"] = back
    if args.check:
        from vislab.faces.check import lodo_signal_check

        res = lodo_signal_check(target="M", size=args.size, seed=args.seed)
        print(f"signal check (small CNN, O-C-I -> M): {json.dumps(res)}")
        summary["check"] = res
    from vislab.io import write_json

    write_json(out / "summary.json", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
