"""bench/harness.py: runs every comparison of the benchmarks issue and writes BENCHMARKS.md.

Started by bench/run, which owns the throwaway cluster (scripts/cluster.sh). The harness
itself is the package beside this file, bench/autodoctor_bench/ (its __init__ lists the
modules: one per section, each measuring and rendering its part of the report).

Re-render a report from stored results with ``harness.py --report-only DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # autodoctor_bench, workloads

from autodoctor_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
