"""run_maintenance() runs under pg_cron, in the database pg_cron serves.

pg_cron serves one database per cluster (cron.database_name). The throwaway cluster names
a test database of its own for it (scripts/db.sh: autodoctor_cron_test), never the demo's:
this module drops and creates that database, deploys the package into it, and drops it
again at the end. On another server (PGHOST) whose pg_cron serves a database not named so,
the module is skipped rather than write into that database.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The only cron database this module may create and drop.
CRON_TEST_DB = "autodoctor_cron_test"
SERVER = {
    key: os.environ[var]
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"))
    if os.environ.get(var)
}


@pytest.fixture(scope="module")
def cron_dbname() -> Iterator[str]:
    with psycopg.connect(**SERVER, dbname="postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('cron.database_name', true),"
            " current_setting('shared_preload_libraries') LIKE '%pg_cron%'"
        ).fetchone()
        if row is None or row[0] != CRON_TEST_DB or not row[1]:
            pytest.skip(f"pg_cron on this server does not serve a database named {CRON_TEST_DB}")
        conn.execute(f"DROP DATABASE IF EXISTS {CRON_TEST_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {CRON_TEST_DB}")
    try:
        proc = subprocess.run(
            ["sqitch", "deploy", "--verify", f"db:pg:{CRON_TEST_DB}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield CRON_TEST_DB
    finally:
        with psycopg.connect(**SERVER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {CRON_TEST_DB} WITH (FORCE)")


@pytest.fixture
def cron_db(cron_dbname: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(**SERVER, dbname=cron_dbname, autocommit=True) as conn:
        yield conn


def test_maintenance_is_scheduled_every_minute(cron_db: psycopg.Connection[Any]) -> None:
    job = cron_db.execute(
        "SELECT schedule, command, active FROM cron.job WHERE jobname = 'autodoctor-maintenance'"
    ).fetchone()
    assert job == ("* * * * *", "SELECT autodoctor.run_maintenance()", True)


def test_pg_cron_repairs_a_legacy_orphan_within_a_minute(cron_db: psycopg.Connection[Any]) -> None:
    customer = cron_db.execute(
        "INSERT INTO auth.users (email) VALUES (%s) RETURNING id",
        (f"cron-{uuid.uuid4().hex[:8]}@example.test",),
    ).fetchone()
    assert customer is not None
    orphan = cron_db.execute(
        "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
        " VALUES (%s, 'free', 'chat', 'pending') RETURNING id",
        (customer[0],),
    ).fetchone()
    assert orphan is not None
    deadline = time.monotonic() + 75  # the job runs at the top of every minute
    repaired = None
    while time.monotonic() < deadline:
        repaired = cron_db.execute(
            "SELECT s.mechanic_id IS NOT NULL OR s.status NOT IN ('pending', 'live')"
            "    OR EXISTS (SELECT 1 FROM autodoctor.session_requests r"
            "                WHERE r.session_id = s.id AND r.status = 'pending')"
            "  FROM autodoctor.sessions s WHERE s.id = %s",
            (orphan[0],),
        ).fetchone()
        if repaired and repaired[0]:
            break
        time.sleep(1)
    assert repaired and repaired[0], "pg_cron's maintenance did not repair the orphan in time"
    runs = cron_db.execute(
        "SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
        " WHERE j.jobname = 'autodoctor-maintenance' ORDER BY d.start_time DESC LIMIT 1"
    ).fetchone()
    assert runs == ("succeeded",)
    # Leave the invariants holding, through the API (the customer cancels the request,
    # which cancels the orphan with it, both logged).
    with cron_db.transaction():
        cron_db.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{customer[0]}"}}',),
        )
        cron_db.execute(
            "SELECT autodoctor.cancel_session_request(r.id) FROM autodoctor.session_requests r"
            " WHERE r.session_id = %s AND r.status = 'pending'",
            (orphan[0],),
        )
