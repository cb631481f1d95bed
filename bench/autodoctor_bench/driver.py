"""Section ``python`` (items 3 and 9): the driver's accept (every delivery mode) against the
original client-side flow, 8 processes; the driver's per-call overhead against raw psycopg."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MODE, DELIVERY_MODES, GOAL_DRIVER_OVERHEAD, GOAL_VS_CLIENT_FLOW
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness


def measure(h: Harness) -> dict[str, Any]:
    """Items 3 and 9: the driver against the original client-side flow (8 clients), and
    the driver's per-call overhead against raw psycopg (1 client)."""
    p = h.prof
    variants = [("driver_accept", m.name) for m in DELIVERY_MODES] + [("client_flow", None)]
    runs: dict[str, list[dict[str, Any]]] = {}
    for rep in range(p.reps):
        for workload, mode in variants:
            key = workload + (f"[{mode}]" if mode else "")
            if mode:
                h.set_mode(mode)
            try:
                with h.relay(mode or DEFAULT_MODE):
                    res = h.py_accept_run(workload, 8, p.py_seconds)
            finally:
                h.set_mode(DEFAULT_MODE)
            runs.setdefault(key, []).append(res)
            log(
                f"  python rep {rep + 1} {key}@8: {res['ops_per_s']:.0f}/s, "
                f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']}"
            )
    calls = p.overhead_calls * p.overhead_rounds * 2 + 200
    base = h.ensure_pool(calls)
    since = h.now()
    over = h.loadgen(
        {
            "workload": "overhead",
            "base": base,
            "calls": p.overhead_calls,
            "rounds": max(p.overhead_rounds, p.reps),
            "warmup": 50,
        }
    )
    h.consumed(over["next_base"])
    h.cleanup_sessions(since)
    ratios = [r["ratio_median"] for r in over["rounds"]]
    log(f"  driver overhead: median ratio {med(ratios):.3f} over {len(ratios)} rounds")
    return {"runs": runs, "overhead": over}


def render_vs_client_flow(rep: Harness) -> str:
    if (msg := rep.missing("python")) is not None:
        return msg
    runs = rep.s["python"]["runs"]
    default = f"driver_accept[{DEFAULT_MODE}]"
    ours = [r["ops_per_s"] for r in runs[default]]
    theirs = [r["ops_per_s"] for r in runs["client_flow"]]
    ratios = [a / b for a, b in zip(ours, theirs, strict=False) if a and b]
    ok = med(ratios) >= GOAL_VS_CLIENT_FLOW if ratios else None
    v = rep.goal(
        "3. driver accept vs client-side flow @8",
        f">= {GOAL_VS_CLIENT_FLOW}x",
        f"{fmt(med(ratios), 2)}x",
        ok,
    )
    lines = [
        "| flow (8 Python processes, one connection each) | accepts/s median | spread | vs "
        "client-side flow | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, rs in runs.items():
        if key == "client_flow":
            title = "original client-side flow: UPDATE then INSERT, two autocommit round trips"
        else:
            mode = key[key.index("[") + 1 : -1]
            title = f"autodoctor_db driver `accept_session_request`, delivery mode {mode}"
            if mode == DEFAULT_MODE:
                title += " (atomic, checked, logged, broadcast)"
        errs: dict[str, int] = {}
        for r in rs:
            for k2, v2 in r["errors"].items():
                errs[k2] = errs.get(k2, 0) + v2
        rr = [a["ops_per_s"] / b for a, b in zip(rs, theirs, strict=False) if b and a["ops_per_s"]]
        lines.append(
            f"| {title} | {fmt(med([r['ops_per_s'] for r in rs]))} | "
            f"{fspread([r['ops_per_s'] for r in rs])} | {fmt(med(rr), 2)}x | "
            f"{fmt(med([r['p50_ms'] for r in rs]), 2)} | "
            f"{fmt(med([r['p99_ms'] for r in rs]), 2)} | {errs or 'none'} |"
        )
    lines.append("")
    lines.append(
        f"Ratio driver (default delivery) / client-side flow: median **{fmt(med(ratios), 2)}x** "
        f"(spread {fspread(ratios, 2)}), goal >= {GOAL_VS_CLIENT_FLOW}x: {v}."
    )
    return "\n".join(lines)


def render_overhead(rep: Harness) -> str:
    if (msg := rep.missing("python")) is not None:
        return msg
    o = rep.s["python"]["overhead"]
    ratios = [r["ratio_median"] for r in o["rounds"]]
    ok = med(ratios) <= GOAL_DRIVER_OVERHEAD if ratios else None
    v = rep.goal(
        "9. driver vs raw psycopg (per call)",
        f"<= {GOAL_DRIVER_OVERHEAD}x",
        f"{fmt(med(ratios), 3)}x",
        ok,
    )
    lines = [
        "One client, `accept_session_request` on fresh requests: the driver "
        "(`db.as_user(uid)` + `accept_session_request`, typed row) against raw psycopg "
        "(same transaction, `set_config` and `SELECT * FROM "
        "autodoctor.accept_session_request(...)`), "
        f"alternating blocks of {rep.r['profile']['overhead_calls']} calls.",
        "",
        "| round | driver median ms | raw median ms | ratio (medians) | ratio (means) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(o["rounds"]):
        lines.append(
            f"| {i + 1} | {r['driver']['median_ms']:.3f} | {r['raw']['median_ms']:.3f} | "
            f"{r['ratio_median']:.3f}x | {r['ratio_mean']:.3f}x |"
        )
    lines.append("")
    lines.append(
        f"Median ratio **{fmt(med(ratios), 3)}x** (spread {fspread(ratios, 3)}); goal <= "
        f"{GOAL_DRIVER_OVERHEAD}x: {v}."
    )
    return "\n".join(lines)
