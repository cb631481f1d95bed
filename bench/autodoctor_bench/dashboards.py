"""Section ``dashboards`` (item 6): incoming_requests and my_sessions at volume, as the driver
queries them, as random users; their EXPLAIN ANALYZE plans."""

from __future__ import annotations

import random
import statistics
import time
from typing import TYPE_CHECKING, Any

import psycopg
import workloads

from .config import DIAG_SETTINGS, DIAG_VIEW, GOAL_DASHBOARD_P99_MS
from .stats import block, fmt, fspread, med

if TYPE_CHECKING:
    from .runner import Harness


def _params(query: str) -> dict[str, Any] | None:
    """The LIMIT, where the query takes it as a parameter (the driver's incoming_requests
    query carries it as a literal)."""
    return {"limit": 100} if "%(limit)s" in query else None


def measure(h: Harness) -> dict[str, Any]:
    """Item 6: incoming_requests and my_sessions at volume, as the driver queries them."""
    try:
        from autodoctor_db import calls, queries

        incoming_sql, my_sql = calls.incoming_requests(100).query, queries.MY_SESSIONS
    except ImportError:  # pragma: no cover - the driver is installed in the venv
        incoming_sql = "SELECT * FROM autodoctor.incoming_requests LIMIT 100"
        my_sql = "SELECT * FROM autodoctor.my_sessions LIMIT %(limit)s"
    p = h.prof

    rng = random.Random(6)
    views = {
        "incoming_requests": (
            incoming_sql,
            lambda: workloads.uid("mech", rng.randrange(p.mechanics)),
        ),
        "my_sessions": (
            my_sql,
            lambda: (
                workloads.uid("mech", rng.randrange(p.mechanics))
                if rng.random() < 0.5
                else workloads.uid("cust", rng.randrange(p.customers))
            ),
        ),
        # Diagnostic, not a goal: the same query with JIT off and the plan pushed onto the
        # pending index in created_at order (what a fix of the estimates would get).
        # (its own query text, so it gets its own prepared statement and plan)
        DIAG_VIEW: (
            DIAG_SETTINGS + "/* diagnostic */ " + incoming_sql,
            lambda: workloads.uid("mech", rng.randrange(p.mechanics)),
        ),
    }
    reps: dict[str, list[dict[str, Any]]] = {name: [] for name in views}
    rows_seen: dict[str, list[int]] = {name: [] for name in views}
    with psycopg.connect(h.dsn(user="authenticator")) as conn:

        def one(query: str, user: Any) -> tuple[float, int]:
            with conn.transaction():
                conn.execute(
                    workloads.SET_CALLER,
                    {"role": "authenticated", "claims": workloads.claims(user)},
                )
                if query.startswith(DIAG_SETTINGS):
                    for setting in DIAG_SETTINGS.split(";")[:-1]:
                        conn.execute(setting.strip())
                    query = query[len(DIAG_SETTINGS) :]
                t0 = time.perf_counter()
                rows = conn.execute(query, _params(query)).fetchall()
                return time.perf_counter() - t0, len(rows)

        for query, pick in views.values():  # warm-up
            stop_at = time.monotonic() + 2
            for _ in range(min(200, p.dashboard_queries)):
                one(query, pick())
                if time.monotonic() > stop_at:
                    break
        for _ in range(p.reps):
            for name, (query, pick) in views.items():
                lat = []
                stop_at = time.monotonic() + p.dashboard_seconds
                for _ in range(p.dashboard_queries):
                    if time.monotonic() > stop_at and len(lat) >= 20:
                        break
                    elapsed, nrows = one(query, pick())
                    lat.append(elapsed)
                    rows_seen[name].append(nrows)
                reps[name].append({**workloads.summary(lat), "queries": len(lat)})
        plans = {}
        for name, (query, _) in views.items():
            who = workloads.uid("mech", 0)
            with conn.transaction():
                conn.execute(
                    workloads.SET_CALLER, {"role": "authenticated", "claims": workloads.claims(who)}
                )
                if query.startswith(DIAG_SETTINGS):
                    for setting in DIAG_SETTINGS.split(";")[:-1]:
                        conn.execute(setting.strip())
                    query = query[len(DIAG_SETTINGS) :]
                rows = conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS) " + query, _params(query)
                ).fetchall()
                plans[name] = "\n".join(r[0] for r in rows)
    return {
        "reps": reps,
        "plans": plans,
        "rows": {k: statistics.fmean(v) for k, v in rows_seen.items()},
        "queries": {"incoming_requests": incoming_sql.strip(), "my_sessions": my_sql.strip()},
    }


def render(rep: Harness) -> str:
    if (msg := rep.missing("dashboards")) is not None:
        return msg
    d = rep.s["dashboards"]
    lines = [
        "Each query runs in its own transaction as a random user (mechanics for "
        "`incoming_requests`; "
        "mechanics and customers for `my_sessions`), role and claims set as PostgREST sets them; "
        "the time is the query's round trip (execute and fetch) from the client.",
        "",
        "| view (as the driver queries it, LIMIT 100) | queries per rep | rows returned (mean) | "
        "p50 ms | p99 ms (median of reps) | p99 spread | goal |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, reps in d["reps"].items():
        p99s = [r["p99_ms"] for r in reps]
        ok = med(p99s) < GOAL_DASHBOARD_P99_MS if p99s else None
        if name == DIAG_VIEW:
            v = "diagnostic, no goal"
        else:
            v = rep.goal(
                f"6. {name} p99", f"< {GOAL_DASHBOARD_P99_MS:.0f} ms", f"{fmt(med(p99s), 2)} ms", ok
            )
        lines.append(
            f"| `{name}` | {fmt(med([r.get('queries') for r in reps]))} | "
            f"{fmt(d['rows'][name], 1)} | {fmt(med([r['p50_ms'] for r in reps]), 2)} | "
            f"{fmt(med(p99s), 2)} | {fspread(p99s, 2)} | < {GOAL_DASHBOARD_P99_MS:.0f} ms: {v} |"
        )
    for name, plan in d["plans"].items():
        lines += [
            "",
            f"Plan of `{name}` for mechanic 0 (EXPLAIN ANALYZE, BUFFERS, as that user):",
            "",
            block(plan),
        ]
    return "\n".join(lines)
