"""Section ``dispatch`` (item 7): auto_assign_orphaned_sessions on orphans and located
mechanics, alone and as two runs in parallel."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg

from .config import BENCH, GOAL_DISPATCH_ROWS_S
from .stats import block, fmt, fspread, log, med, verdict

if TYPE_CHECKING:
    from .runner import Harness


def measure(h: Harness) -> dict[str, Any]:
    """Item 7: auto_assign_orphaned_sessions on 10k orphans and 1k located mechanics,
    alone and as two runs in parallel (no double assignment)."""
    p = h.prof
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "parallel": []}
    for rep in range(p.reps):
        for variant in ("single", "parallel"):
            db = f"bench_dispatch_{rep}_{variant}"
            h.sql(f"CREATE DATABASE {db} TEMPLATE bench_template", db="postgres")
            try:
                h.psql_file(db, BENCH / "sql" / "helpers.sql")
                h.psql_file(
                    db,
                    BENCH / "sql" / "dispatch.sql",
                    orphans=p.dispatch_orphans,
                    mechanics=p.dispatch_mechanics,
                    capacity=p.dispatch_capacity,
                )
                h.sql("CHECKPOINT", db=db)
                workers = 1 if variant == "single" else 2
                returned: list[int] = [0] * workers
                failures: list[str] = []

                def work(
                    i: int,
                    db: str = db,
                    returned: list[int] = returned,
                    failures: list[str] = failures,
                ) -> None:
                    try:
                        with psycopg.connect(h.dsn(db, "authenticator"), autocommit=True) as conn:
                            conn.execute("SET ROLE service_role")
                            conn.execute("SET statement_timeout = '120s'")
                            returned[i] = conn.execute(
                                "SELECT autodoctor.auto_assign_orphaned_sessions(batch_size => %s)",
                                (p.dispatch_orphans,),
                            ).fetchone()[0]
                    except Exception as exc:  # reported with the run
                        failures.append(repr(exc))

                threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
                t0 = time.perf_counter()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join(timeout=600)
                elapsed = time.perf_counter() - t0
                check = h.sql(
                    """
                    SELECT (SELECT count(*) FROM autodoctor.sessions WHERE mechanic_id IS NOT NULL),
                           (SELECT count(*) FROM (SELECT session_id FROM autodoctor.session_events
                                                   WHERE event = 'session_assigned'
                                                   GROUP BY session_id HAVING count(*) > 1) d),
                           (SELECT count(*) FROM autodoctor.mechanics
                             WHERE active_sessions > max_concurrent_sessions),
                           (SELECT count(*) FROM autodoctor.check_invariants()),
                           (SELECT count(*) FROM autodoctor.sessions
                             WHERE mechanic_id IS NULL AND status IN ('pending', 'live'))""",
                    db=db,
                )[0]
                res = {
                    "workers": workers,
                    "returned": returned,
                    "elapsed_s": elapsed,
                    "assigned": int(check[0]),
                    "double_assigned": int(check[1]),
                    "over_capacity": int(check[2]),
                    "invariant_violations": int(check[3]),
                    "left_orphans": int(check[4]),
                    "failures": failures,
                    "rows_per_s": int(check[0]) / elapsed if elapsed else None,
                }
                res["consistent"] = (
                    sum(returned) == res["assigned"]
                    and res["double_assigned"] == 0
                    and res["over_capacity"] == 0
                    and not failures
                )
                runs[variant].append(res)
                log(
                    f"  dispatch rep {rep + 1} {variant}: {res['assigned']} assigned in "
                    f"{elapsed:.2f} s = {res['rows_per_s']:.0f} rows/s, returned {returned}, "
                    f"doubles {res['double_assigned']}, invariants {res['invariant_violations']}"
                )
            finally:
                h.sql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
    return {"runs": runs}


def render(rep: Harness) -> str:
    if (msg := rep.missing("dispatch")) is not None:
        return msg
    runs = rep.s["dispatch"]["runs"]
    single = [r["rows_per_s"] for r in runs["single"]]
    ok = med(single) >= GOAL_DISPATCH_ROWS_S if single else None
    v = rep.goal(
        "7. auto_assign_orphaned_sessions",
        f">= {GOAL_DISPATCH_ROWS_S:,.0f} rows/s",
        f"{fmt(med(single))} rows/s",
        ok,
    )
    failed = any(r["failures"] for r in runs["single"] + runs["parallel"])
    consistent = None if failed else all(r["consistent"] for r in runs["single"] + runs["parallel"])
    rep.goal(
        "7. two parallel runs: no double assignment",
        "0 doubles, capacity held",
        "runs failed (see item 7)"
        if failed
        else f"{sum(r['double_assigned'] for r in runs['parallel'])} doubles, "
        f"{sum(r['over_capacity'] for r in runs['parallel'])} over capacity",
        consistent,
    )
    p = rep.r["profile"]
    lines = [
        f"{p['dispatch_orphans']:,} orphans (90% located) onto {p['dispatch_mechanics']:,} located "
        "online "
        f"mechanics (capacity {p['dispatch_capacity']}), `auto_assign_orphaned_sessions(batch_size "
        "=> "
        f"{p['dispatch_orphans']})` as service_role; a fresh database per run.",
        "",
        "| variant | rows/s median | spread | assigned (median) | left orphans | doubles | over "
        "capacity | invariant violations |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rs in (
        ("one run", runs["single"]),
        ("two runs in parallel (combined)", runs["parallel"]),
    ):
        lines.append(
            f"| {name} | {fmt(med([r['rows_per_s'] for r in rs]))} | "
            f"{fspread([r['rows_per_s'] for r in rs])} | "
            f"{fmt(med([r['assigned'] for r in rs]))} | "
            f"{fmt(med([r['left_orphans'] for r in rs]))} | "
            f"{sum(r['double_assigned'] for r in rs)} | {sum(r['over_capacity'] for r in rs)} | "
            f"{sum(r['invariant_violations'] for r in rs)} |"
        )
    lines.append("")
    failures = sorted({f for r in runs["single"] + runs["parallel"] for f in r["failures"]})
    if failures:
        lines += ["", "Runs failed with:", "", block("\n".join(f[:600] for f in failures)), ""]
    lines.append(
        f"Goal >= {GOAL_DISPATCH_ROWS_S:,.0f} rows/s: {v}. Parallel runs consistent "
        f"(returned counts add up, no session assigned twice, no mechanic over capacity): "
        f"{verdict(consistent)}. Per-run split of the parallel runs: "
        + ", ".join(str(r["returned"]) for r in runs["parallel"])
        + "."
    )
    return "\n".join(lines)
