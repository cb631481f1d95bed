"""Section ``peer`` (item 10): Procrastinate's defer + fetch against our create + accept."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MODE, GOAL_VS_PEER
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness


def procrastinate_python(h: Harness) -> tuple[str | None, str]:
    """A separate virtualenv with Procrastinate from PyPI (kept under bench/results)."""
    venv = h.root / "bench" / "results" / "procrastinate-venv"
    py = venv / "bin" / "python"
    check = [
        str(py),
        "-c",
        "import procrastinate, psycopg; from importlib.metadata import version; "
        "print(version('procrastinate'))",
    ]
    with contextlib.suppress(Exception):
        if py.exists():
            return str(py), h.run_cmd(check, timeout=60).stdout.strip()
    try:
        base = os.environ.get("BENCH_VENV_PYTHON", "python3")
        h.run_cmd([base, "-m", "venv", str(venv)], timeout=120)
        h.run_cmd(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "procrastinate"],
            timeout=600,
        )
        return str(py), h.run_cmd(check, timeout=60).stdout.strip()
    except Exception as exc:
        return None, f"could not install procrastinate: {exc}"


def measure(h: Harness) -> dict[str, Any]:
    """Item 10: Procrastinate's defer + fetch against our create + accept, 8 clients each."""
    p = h.prof
    py, version = procrastinate_python(h)
    if py is None:
        return {"available": False, "reason": version}
    h.sql("CREATE DATABASE procrastinate", db="postgres")
    h.run_cmd(
        [
            py,
            "-c",
            "import sys, procrastinate; "
            "c = procrastinate.SyncPsycopgConnector(conninfo=sys.argv[1]); "
            "a = procrastinate.App(connector=c); a.open(); a.schema_manager.apply_schema(); "
            "a.close()",
            h.dsn("procrastinate"),
        ],
        timeout=120,
    )
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "ours_relay": [], "procrastinate": []}
    n = 0
    for rep in range(p.reps):
        # Ours in the default delivery mode (the goal), then in relay mode, its worker's
        # relay running (the writers do not NOTIFY: what the NOTIFY lock costs the pair).
        for key, mode in (("ours", DEFAULT_MODE), ("ours_relay", "relay")):
            since = h.now()
            h.checkpoint()
            h.set_mode(mode)
            try:
                with h.relay(mode):
                    ours = h.loadgen(
                        {
                            "workload": "driver_create_accept",
                            "clients": 8,
                            "seconds": p.py_seconds,
                            "base": 10_000_000 + n,
                        }
                    )
            finally:
                h.set_mode(DEFAULT_MODE)
            n = ours["next_base"] - 10_000_000
            h.cleanup_sessions(since)
            runs[key].append(ours)
        h.sql("CHECKPOINT", db="procrastinate")
        theirs = h.loadgen(
            {
                "workload": "procrastinate",
                "clients": 8,
                "seconds": p.py_seconds,
                "base": 0,
                "dsn": h.dsn("procrastinate"),
            },
            python=py,
        )
        runs["procrastinate"].append(theirs)
        log(
            f"  peer rep {rep + 1}: ours create+accept {runs['ours'][-1]['ops_per_s']:.0f} "
            f"pairs/s ({runs['ours_relay'][-1]['ops_per_s']:.0f} in relay mode), "
            f"procrastinate defer+fetch {theirs['ops_per_s']:.0f} pairs/s"
        )
    return {"available": True, "version": version, "runs": runs}


def render(rep: Harness) -> str:
    if (msg := rep.missing("peer")) is not None:
        return msg
    peer = rep.s["peer"]
    if not peer.get("available"):
        return f"Procrastinate could not be installed in this run: {peer.get('reason')}"
    ours = [r["ops_per_s"] for r in peer["runs"]["ours"]]
    relay_runs = peer["runs"].get("ours_relay", [])
    ours_relay = [r["ops_per_s"] for r in relay_runs]
    theirs = [r["ops_per_s"] for r in peer["runs"]["procrastinate"]]
    ratios = [a / b for a, b in zip(ours, theirs, strict=False) if a and b]
    relay_ratios = [a / b for a, b in zip(ours_relay, theirs, strict=False) if a and b]
    verdict = rep.goal(
        "6. create + accept pairs vs Procrastinate defer + fetch",
        f">= {GOAL_VS_PEER}x",
        f"{fmt(med(ratios), 2)}x",
        None if not ratios else med(ratios) >= GOAL_VS_PEER,
    )
    return "\n".join(
        [
            f"Procrastinate {peer['version']} (from PyPI, its own virtualenv, schema applied with "
            "its "
            "SchemaManager into database `procrastinate` of the same cluster): each of 8 "
            "processes defers a job "
            "(`JobManager.defer_job`, which NOTIFYs too) and fetches one "
            "(`procrastinate_fetch_job_v2`, "
            "as its worker does). Ours: each of 8 processes creates a request as a customer and "
            "accepts it "
            "as a mechanic through the driver, in the default delivery mode (the goal) and, "
            "interleaved, in relay mode with the worker's relay running (the writers do not "
            "NOTIFY). Two transactions per pair on both sides.",
            "",
            "| system (8 clients) | pairs/s median | spread | p50 ms per pair | p99 ms per pair |",
            "|---|---:|---:|---:|---:|",
            f"| autodoctor-db create_session_request + accept_session_request | {fmt(med(ours))} | "
            f"{fspread(ours)} | "
            f"{fmt(med([r['p50_ms'] for r in peer['runs']['ours']]), 2)} | "
            f"{fmt(med([r['p99_ms'] for r in peer['runs']['ours']]), 2)} |",
            *(
                [
                    "| autodoctor-db create_session_request + accept_session_request, relay "
                    f"mode | {fmt(med(ours_relay))} | {fspread(ours_relay)} | "
                    f"{fmt(med([r['p50_ms'] for r in relay_runs]), 2)} | "
                    f"{fmt(med([r['p99_ms'] for r in relay_runs]), 2)} |"
                ]
                if relay_runs
                else []
            ),
            f"| Procrastinate defer + fetch | {fmt(med(theirs))} | {fspread(theirs)} | "
            f"{fmt(med([r['p50_ms'] for r in peer['runs']['procrastinate']]), 2)} | "
            f"{fmt(med([r['p99_ms'] for r in peer['runs']['procrastinate']]), 2)} |",
            "",
            f"Ratio ours / Procrastinate: median {fmt(med(ratios), 2)}x (spread "
            f"{fspread(ratios, 2)}); "
            f"goal >= {GOAL_VS_PEER}x: {verdict}."
            + (
                f" In relay mode: {fmt(med(relay_ratios), 2)}x (spread {fspread(relay_ratios, 2)})."
                if relay_ratios
                else ""
            ),
        ]
    )
