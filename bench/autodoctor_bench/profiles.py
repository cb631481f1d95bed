"""Section ``profile``: evidence for the report: statement and function profiles of the hot paths
(pg_stat_statements, track = all), the fan-out and pick plans, HOT-update counts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg

from .config import BENCH
from .stats import block, fmt

if TYPE_CHECKING:
    from .runner import Harness


def measure(h: Harness) -> dict[str, Any]:
    """Evidence for the report: statement and function profiles of the hot paths
    (pg_stat_statements with track = all), the fan-out plan and HOT-update counts."""
    p = h.prof
    out: dict[str, Any] = {}
    h.sql("ALTER SYSTEM SET pg_stat_statements.track = 'all'", db="postgres")
    h.sql("ALTER SYSTEM SET track_functions = 'pl'", db="postgres")
    h.sql("SELECT pg_reload_conf()", db="postgres")
    time.sleep(0.5)
    try:
        h.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA extensions")
        for name, runner in (
            ("accept", lambda: h.accept_run("profile-accept", 8, p.profile_seconds)),
            (
                "create",
                lambda: h.pgbench(
                    "profile-create",
                    "bench",
                    8,
                    p.profile_seconds,
                    script="create.sql",
                    user="authenticator",
                    defines={"ncust": p.customers},
                ),
            ),
        ):
            h.sql("SELECT extensions.pg_stat_statements_reset()")
            h.sql("SELECT pg_stat_reset()")
            tables_before = h.sql("""
                SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
                 WHERE schemaname = 'autodoctor' ORDER BY relname""")
            res = runner()
            time.sleep(0.6)  # stats are flushed to shared memory at most every 0.5 s (idle)
            statements = h.sql("""
                SELECT regexp_replace(left(query, 160), '\\s+', ' ', 'g'), calls,
                       round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),
                       round((100 * total_exec_time
                               / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1),
                       toplevel
                  FROM extensions.pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')
                 ORDER BY total_exec_time DESC LIMIT 14""")
            functions = h.sql("""
                SELECT schemaname || '.' || funcname, calls, round(total_time::numeric, 1),
                       round(self_time::numeric, 1)
                  FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 12""")
            tables = h.sql("""
                SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
                 WHERE schemaname = 'autodoctor' AND n_tup_upd > 0 ORDER BY relname""")
            out[name] = {
                "tps": res.get("tps"),
                "statements": statements,
                "functions": functions,
                "tables": tables,
                "tables_before": tables_before,
            }
        try:
            out["dispatch"] = profile_dispatch(h)
        except Exception as exc:  # reported; the other profiles stand
            out["dispatch"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        h.sql("ALTER SYSTEM RESET pg_stat_statements.track", db="postgres")
        h.sql("ALTER SYSTEM RESET track_functions", db="postgres")
        h.sql("SELECT pg_reload_conf()", db="postgres")
    # The fan-out of create_session_request: the plan of its e-mail query for one request.
    rid = h.sql("""SELECT id FROM autodoctor.session_requests
                       WHERE status = 'pending' AND location IS NULL
                       ORDER BY created_at DESC LIMIT 1""")[0][0]
    out["fanout_plan"] = nested_plan(
        h,
        "bench",
        "SELECT autodoctor._queue_new_request_emails(%s)",
        (rid,),
        # The plan node, not the query text: a SQL-standard body logs no source text.
        "Insert on notification_outbox",
    )
    out["outbox_rows"] = h.sql("SELECT count(*) FROM autodoctor.notification_outbox")[0][0]
    out["mechanic_indexes"] = [
        r[0]
        for r in h.sql("""
        SELECT indexdef FROM pg_indexes
         WHERE schemaname = 'autodoctor' AND tablename = 'mechanics'""")
    ]
    # For the analysis: what an accept's writes maintain.
    out["table_indexes"] = dict(
        h.sql("""
        SELECT tablename, count(*)::int FROM pg_indexes WHERE schemaname = 'autodoctor'
         GROUP BY tablename ORDER BY tablename""")
    )
    out["session_foreign_keys"] = h.sql("""
        SELECT count(*)::int FROM pg_constraint
         WHERE contype = 'f' AND conrelid = 'autodoctor.sessions'::regclass""")[0][0]
    out["request_indexes"] = len(
        h.sql("""
        SELECT 1 FROM pg_indexes
         WHERE schemaname = 'autodoctor' AND tablename = 'session_requests'""")
    )
    return out


def nested_plan(h: Harness, db: str, call: str, params: Any, match: str) -> str:
    """EXPLAIN ANALYZE of a statement as it runs inside a function: the function is called
    with auto_explain logging nested statements to this client, then rolled back. The
    first plan whose query text contains ``match`` is returned."""
    plans: list[str] = []
    with psycopg.connect(h.dsn(db)) as conn:
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        for stmt in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_buffers = on",
            "SET auto_explain.log_nested_statements = on",
            "SET client_min_messages = log",
        ):
            conn.execute(stmt)
        conn.execute(call, params)
        conn.rollback()
    for plan in plans:
        if match in plan:
            return plan
    raise RuntimeError(f"no plan of a statement containing {match!r} among {len(plans)} logged")


def profile_dispatch(h: Harness) -> dict[str, Any]:
    """auto_assign_orphaned_sessions under pg_stat_statements (track = all), and the plan
    of its mechanic pick for one located orphan."""
    p = h.prof
    db = "bench_dispatch_profile"
    orphans = min(2000, p.dispatch_orphans)
    h.sql(f"CREATE DATABASE {db} TEMPLATE bench_template", db="postgres")
    try:
        h.psql_file(db, BENCH / "sql" / "helpers.sql")
        h.psql_file(
            db,
            BENCH / "sql" / "dispatch.sql",
            orphans=orphans,
            mechanics=p.dispatch_mechanics,
            capacity=p.dispatch_capacity,
        )
        h.sql("CREATE EXTENSION pg_stat_statements SCHEMA extensions", db=db)
        h.sql("SELECT extensions.pg_stat_statements_reset()", db=db)
        h.sql("SELECT pg_stat_reset()", db=db)
        with psycopg.connect(h.dsn(db, "authenticator"), autocommit=True) as conn:
            conn.execute("SET ROLE service_role")
            t0 = time.perf_counter()
            assigned = conn.execute(
                "SELECT autodoctor.auto_assign_orphaned_sessions(batch_size => %s)", (orphans,)
            ).fetchone()[0]
            elapsed = time.perf_counter() - t0
        time.sleep(0.6)
        statements = h.sql(
            """
            SELECT regexp_replace(left(query, 160), '\\s+', ' ', 'g'), calls,
                   round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),
                   round((100 * total_exec_time
                           / nullif(max(total_exec_time) OVER (), 0))::numeric, 1),
                   toplevel
              FROM extensions.pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 10""",
            db=db,
        )
        functions = h.sql(
            """
            SELECT schemaname || '.' || funcname, calls, round(total_time::numeric, 1),
                   round(self_time::numeric, 1)
              FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 8""",
            db=db,
        )
        return {
            "orphans": orphans,
            "assigned": assigned,
            "elapsed_s": elapsed,
            "statements": statements,
            "functions": functions,
        }
    finally:
        h.sql(f"DROP DATABASE IF EXISTS {db}", db="postgres")


def render(rep: Harness) -> str:
    if (msg := rep.missing("profile")) is not None:
        return msg
    pr = rep.s["profile"]
    out = []
    for name in ("accept", "create"):
        if name not in pr:
            continue
        d = pr[name]
        out.append(
            f"**{name}** at 8 clients ({fmt(d['tps'])} tps with tracking on), top statements by "
            "total execution time (pg_stat_statements, track = all: nested statements included; "
            "a function's time includes its statements):"
        )
        out.append("")
        out.append("| statement | calls | total ms | mean ms | % | top level |")
        out.append("|---|---:|---:|---:|---:|---|")
        for q, calls, total, mean, pct, top in d["statements"]:
            q = q.replace("|", "\\|")
            out.append(f"| `{q}` | {calls:,} | {total} | {mean} | {pct} | {top} |")
        out.append("")
        out.append("| PL function | calls | total ms | self ms |")
        out.append("|---|---:|---:|---:|")
        for f, calls, total, self_ms in d["functions"]:
            out.append(f"| `{f}` | {calls:,} | {total} | {self_ms} |")
        out.append("")
        out.append("| table | rows updated | of which HOT |")
        out.append("|---|---:|---:|")
        for t, upd, hot in d["tables"]:
            out.append(f"| `{t}` | {upd:,} | {hot:,} |")
        out.append("")
    if "dispatch" in pr and "error" in pr["dispatch"]:
        out.append("**auto_assign_orphaned_sessions** could not be profiled in this run:")
        out.append("")
        out.append(block(pr["dispatch"]["error"]))
        out.append("")
    elif "dispatch" in pr:
        d = pr["dispatch"]
        out.append(
            f"**auto_assign_orphaned_sessions** on {d['orphans']:,} orphans "
            f"({d['assigned']:,} assigned in {d['elapsed_s']:.2f} s, tracking on); % of the "
            "whole call:"
        )
        out.append("")
        out.append("| statement | calls | total ms | mean ms | % of the call | top level |")
        out.append("|---|---:|---:|---:|---:|---|")
        for q, calls, total, mean, pct, top in d["statements"]:
            q = q.replace("|", "\\|")
            out.append(f"| `{q}` | {calls:,} | {total} | {mean} | {pct} | {top} |")
        out.append("")
        out.append("| PL function | calls | total ms | self ms |")
        out.append("|---|---:|---:|---:|")
        for f, calls, total, self_ms in d["functions"]:
            out.append(f"| `{f}` | {calls:,} | {total} | {self_ms} |")
        out.append("")
    out.append(
        "Plan of the e-mail fan-out query inside `create_session_request` "
        "(`_queue_new_request_emails`, for one unlocated pending request, as it runs inside the "
        "function: auto_explain, nested statements, rolled back):"
    )
    out.append("")
    out.append(block(pr["fanout_plan"]))
    out.append("")
    out.append(
        "Indexes on `autodoctor.mechanics` (every non-HOT update of a mechanic row writes an entry "
        "into each):"
    )
    out.append("")
    out.append(block("\n".join(pr["mechanic_indexes"])))
    return "\n".join(out)
