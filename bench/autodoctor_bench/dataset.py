"""The data set of a run (bench/sql/: realistic volumes in database ``bench``, pgbench's own
database for the tpcb-like baseline) and the environment the report names."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from .config import BENCH
from .stats import log

if TYPE_CHECKING:
    from .runner import Harness


def load(h: Harness) -> None:
    p = h.prof
    t0 = time.monotonic()
    h.sql("CREATE DATABASE bench TEMPLATE bench_template", db="postgres")
    h.psql_file("bench", BENCH / "sql" / "helpers.sql")
    log(
        f"loading volumes: {p.requests:,} requests, {p.sessions:,} sessions, "
        f"{p.mechanics:,} mechanics, {p.customers:,} customers"
    )
    h.psql_file(
        "bench",
        BENCH / "sql" / "dataset.sql",
        customers=p.customers,
        mechanics=p.mechanics,
        online=p.online,
        requests=p.requests,
        sessions=p.sessions,
        pending=p.pending,
    )
    h.sql("VACUUM ANALYZE")
    load_s = time.monotonic() - t0
    counts = dict(
        h.sql("""
        SELECT 'requests', count(*) FROM autodoctor.session_requests
        UNION ALL SELECT 'pending requests', count(*) FROM autodoctor.session_requests
                   WHERE status = 'pending'
        UNION ALL SELECT 'sessions', count(*) FROM autodoctor.sessions
        UNION ALL SELECT 'mechanics', count(*) FROM autodoctor.mechanics
        UNION ALL SELECT 'online mechanics', count(*) FROM autodoctor.mechanics WHERE online
        UNION ALL SELECT 'customers', count(*) FROM auth.users u
                   WHERE NOT EXISTS (SELECT 1 FROM autodoctor.mechanics m
                                     WHERE m.user_id = u.id)
        UNION ALL SELECT 'intakes', count(*) FROM autodoctor.intakes
        UNION ALL SELECT 'session events', count(*) FROM autodoctor.session_events""")
    )
    t1 = time.monotonic()
    violations = h.sql("SELECT invariant, count(*) FROM autodoctor.check_invariants() GROUP BY 1")
    invariants_s = time.monotonic() - t1
    size = h.sql("SELECT pg_size_pretty(pg_database_size('bench'))")[0][0]
    log(
        f"loaded in {load_s:.0f} s ({size}); check_invariants() {invariants_s:.1f} s, "
        f"violations: {violations or 'none'}"
    )
    t2 = time.monotonic()
    h.sql("CREATE DATABASE pgbench", db="postgres")
    h.run_cmd(
        [
            str(h.pgbin / "pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(h.port),
            "-U",
            "postgres",
            "-i",
            "-q",
            "-I",
            "dtGvp",
            "-s",
            str(p.pgbench_scale),
            "pgbench",
        ],
        timeout=900,
    )
    h.results["dataset"] = {
        "counts": {k: int(v) for k, v in counts.items()},
        "size": size,
        "load_s": load_s,
        "check_invariants_s": invariants_s,
        "violations": {k: int(v) for k, v in violations},
        "pgbench_scale": p.pgbench_scale,
        "pgbench_init_s": time.monotonic() - t2,
    }
    h.sql("CHECKPOINT")


def environment(h: Harness) -> dict[str, Any]:
    env: dict[str, Any] = {}
    env["nproc"] = os.cpu_count()
    with contextlib.suppress(Exception):
        meminfo = Path("/proc/meminfo").read_text()
        kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
        env["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    with contextlib.suppress(Exception):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        env["cpu"] = re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1).strip()  # type: ignore[union-attr]
    env["kernel"] = platform.release()
    env["postgresql"] = h.sql("SELECT version()", db="postgres")[0][0]
    env["postgis"] = h.sql(
        "SELECT extversion FROM pg_extension WHERE extname = 'postgis'", db="bench_template"
    )[0][0]
    env["psycopg"] = psycopg.__version__
    with contextlib.suppress(Exception):
        import psycopg_pool

        env["psycopg_pool"] = psycopg_pool.__version__
    env["python"] = platform.python_version()
    env["pgbench"] = subprocess.run(
        [str(h.pgbin / "pgbench"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    with contextlib.suppress(Exception):
        env["sqitch"] = subprocess.run(
            ["sqitch", "--version"], capture_output=True, text=True
        ).stdout.strip()
    with contextlib.suppress(Exception):
        env["git"] = subprocess.run(
            ["git", "-C", str(h.root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    settings = h.sql(
        """SELECT name, setting FROM pg_settings WHERE name IN
        ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections',
         'wal_level', 'max_wal_size', 'checkpoint_timeout', 'wal_sync_method', 'work_mem')
        ORDER BY name""",
        db="postgres",
    )
    env["settings"] = dict(settings)
    return env
