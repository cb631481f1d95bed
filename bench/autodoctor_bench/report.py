"""BENCHMARKS.md: bench/BENCHMARKS.md.in filled in by the sections' render functions, the
goals table and the analysis (bench/ANALYSIS.md.in, ``analysis``)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from . import analysis, sections
from .config import BENCH
from .stats import block, fmt, verdict


class Report:
    """results.json, and the goals met or missed as the sections render them."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.r = results
        self.s = results.get("sections", {})
        self.goals: list[tuple[str, str, str, str]] = []  # (item, goal, measured, verdict)

    def goal(self, item: str, goal: str, measured: str, ok: bool | None) -> str:
        self.goals.append((item, goal, measured, verdict(ok)))
        return verdict(ok)

    def missing(self, name: str) -> str | None:
        if name in self.r.get("errors", {}):
            return "This section failed in this run:\n\n" + block(self.r["errors"][name][-2500:])
        if name not in self.s:
            return "Not run in this run (`--only`)."
        return None

    def matrix_runs(self, key: str) -> list[dict[str, Any]]:
        return self.s.get("matrix", {}).get("runs", {}).get(key, [])

    def tps(self, key: str) -> list[float]:
        return [r.get("tps") for r in self.matrix_runs(key)]

    def ratio_per_rep(self, a: str, b: str) -> list[float]:
        ta, tb = self.tps(a), self.tps(b)
        return [x / y for x, y in zip(ta, tb, strict=False) if x and y]

    def summary(self) -> str:
        rows = ["| item | goal | measured (median) | verdict |", "|---|---|---|---|"]
        rows += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.goals]
        return "\n".join(rows)


def environment(rep: Report) -> str:
    e = rep.r.get("environment", {})
    d = rep.r.get("dataset", {})
    lines = [
        f"- Date (UTC): {rep.r.get('started')}; run profile: **{rep.r['profile']['name']}**, "
        f"{rep.r['profile']['reps']} repetitions; total {fmt(rep.r.get('total_seconds'))} s"
        + (f"; sections run: {rep.r['only']}" if rep.r.get("only") else ""),
        f"- Machine: {e.get('nproc')} cores ({e.get('cpu')}), {e.get('memory')} memory, Linux "
        f"{e.get('kernel')}",
        f"- {e.get('postgresql')}; PostGIS {e.get('postgis')}; {e.get('pgbench')}",
        f"- Python {e.get('python')}, psycopg {e.get('psycopg')}, psycopg_pool "
        f"{e.get('psycopg_pool')}; "
        f"{e.get('sqitch')}; package at git {e.get('git')}",
        "- Server settings: " + ", ".join(f"{k}={v}" for k, v in e.get("settings", {}).items()),
    ]
    if d:
        lines.append(
            "- Data loaded: "
            + ", ".join(f"{v:,} {k}" for k, v in d["counts"].items())
            + f" ({d['size']}, loaded in {d['load_s']:.0f} s); pgbench scale {d['pgbench_scale']}; "
            f"`check_invariants()` at this volume: {d['check_invariants_s']:.1f} s, "
            f"violations: {d['violations'] or 'none'}"
        )
    for name, note in rep.r.get("merged", {}).items():
        lines.append(
            f"- Section `{name}` is from a later run ({note}), merged in with `harness.py --merge`"
        )
    return "\n".join(lines)


def write_report(results: dict[str, Any], path: Path) -> None:
    rep = Report(results)
    parts = {"environment": environment(rep)}
    # Rendered in this order: the goals table lists the goals in the order they are met.
    for placeholder, render in sections.RENDERERS:
        parts[placeholder] = render(rep)
    parts["summary"] = rep.summary()
    parts["analysis"] = analysis.render(rep)
    template = string.Template((BENCH / "BENCHMARKS.md.in").read_text())
    path.write_text(template.safe_substitute(parts).rstrip() + "\n")
