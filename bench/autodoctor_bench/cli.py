"""The command line of bench/harness.py (started by bench/run, or by hand to re-render)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path

from .config import BENCH, FULL, QUICK
from .report import write_report
from .runner import Harness
from .sections import SECTIONS

USAGE = """bench/harness.py: runs every comparison of the benchmarks issue and writes BENCHMARKS.md.
Started by bench/run, which owns the throwaway cluster. Re-render a report from stored
results with ``harness.py --report-only DIR``."""


def main() -> int:
    parser = argparse.ArgumentParser(description=USAGE)
    parser.add_argument("--port", type=int)
    parser.add_argument("--out")
    parser.add_argument("--pgbin", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--root", default=str(BENCH.parent))
    parser.add_argument(
        "--base", help="a folder the cluster's OS user can write (pgbouncer, standby)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--report-only", metavar="DIR")
    parser.add_argument(
        "--merge",
        nargs=2,
        metavar=("FULL_DIR", "LATER_DIR"),
        help="replace FULL_DIR's sections by LATER_DIR's and re-render BENCHMARKS.md",
    )
    args = parser.parse_args()
    if args.merge:
        # Replace sections of a full run with those of a later --only run (same cluster
        # settings and volumes), keeping a note of it in the report; then re-render.
        base_dir, later_dir = Path(args.merge[0]), Path(args.merge[1])
        results = json.loads((base_dir / "results.json").read_text())
        later = json.loads((later_dir / "results.json").read_text())
        for name, section in later.get("sections", {}).items():
            results["sections"][name] = section
            results["errors"].pop(name, None)
            results.setdefault("merged", {})[name] = (
                f"{later.get('started')}, package at git {later.get('environment', {}).get('git')}"
            )
        (base_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
        write_report(results, Path(args.root) / "BENCHMARKS.md")
        return 0
    if args.report_only:
        results = json.loads((Path(args.report_only) / "results.json").read_text())
        write_report(results, Path(args.root) / "BENCHMARKS.md")
        return 0
    prof = QUICK if args.quick else FULL
    if args.reps:
        prof = replace(prof, reps=args.reps)
    if args.seconds:
        prof = replace(
            prof,
            seconds=args.seconds,
            py_seconds=min(prof.py_seconds, args.seconds),
            notify_seconds=args.seconds,
        )
    if args.only:
        unknown = set(args.only.split(",")) - set(SECTIONS)
        if unknown:
            parser.error(f"unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Harness(args, prof).run()
