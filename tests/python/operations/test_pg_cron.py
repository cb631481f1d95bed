"""run_maintenance() runs under pg_cron, in the database pg_cron serves.

pg_cron serves one database per cluster (cron.database_name). The throwaway cluster names
a test database of its own for it (scripts/db.sh: autodoctor_cron_test), never the demo's:
this module reverts and deploys the package there afresh (the database stays: pg_cron's
launcher exits for good when its database is dropped). On another server (PGHOST) whose
pg_cron serves a database not named so, the module is skipped rather than write into that
database.
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

ROOT = Path(__file__).resolve().parents[3]
#: The only cron database this module may create and drop.
CRON_TEST_DB = "autodoctor_cron_test"
SERVER = {
    key: os.environ[var]
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"))
    if os.environ.get(var)
}


@pytest.fixture(scope="module")
def cron_dbname() -> str:
    """The cron database, with the package deployed afresh (reverted first, with consent:
    it is the tests' own). It is never dropped: pg_cron's launcher, whose database is
    dropped, exits for good."""
    with psycopg.connect(**SERVER, dbname="postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('cron.database_name', true),"
            " current_setting('shared_preload_libraries') LIKE '%%pg_cron%%',"
            " EXISTS (SELECT 1 FROM pg_database WHERE datname = %s),"
            " EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher')",
            (CRON_TEST_DB,),
        ).fetchone()
    if row is None or row[0] != CRON_TEST_DB or not row[1] or not row[2]:
        pytest.skip(f"pg_cron on this server does not serve a database named {CRON_TEST_DB}")
    assert row[3], "pg_cron's launcher is not running (scripts/db.sh start restarts it)"
    target = f"db:pg:{CRON_TEST_DB}"
    for argv, env in (
        (["sqitch", "revert", "-y", target], {"PGOPTIONS": "-c autodoctor.allow_data_loss=on"}),
        (["sqitch", "deploy", "--verify", target], {}),
    ):
        proc = subprocess.run(
            argv,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, **env},
        )
        if argv[1] == "revert" and any(
            s in proc.stdout + proc.stderr for s in ("Nothing to revert", "No registry found")
        ):
            continue
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return CRON_TEST_DB


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
