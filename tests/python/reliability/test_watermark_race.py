"""The event watermark in a commit storm, with real connections: nothing skipped.

``event_watermark()`` passes a running transaction that holds no lock on the log. A
transaction that has logged an event and is committing drops its fast-path locks (the
log's) before its transaction id lock, after leaving the proc array: caught in that window
it looked as if it had logged nothing, and a reader whose snapshot still showed it as
running moved its cursor past its event for good. The mark now also asks whether such a
transaction is still in progress (``pg_xact_status``), after reading ``pg_locks``.

The window is short; what widens it is other sessions reading ``pg_locks`` at the same
time (each read takes every lock partition), which is the package's normal setting: every
follower and the relay call ``event_watermark()`` on each poll. So: 8 writers committing
events as fast as they can (``synchronous_commit = off``: many commits, short ones), 4
sessions calling ``event_watermark()`` in a loop, a reader reading the log by cursor in a
tight loop with the package's own query, and the driver's ``db.events()`` follower, for a
few seconds. Both readers must end with exactly the events logged. Without the check the
tight reader missed 1 to 6 events in every one of 6 such 8-second rounds here (about
35,000 events each); with it, none.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import queries
from psycopg.conninfo import conninfo_to_dict
from support import Follower, report

PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
SECONDS = 8

WRITER = "INSERT INTO autodoctor.session_events (event) VALUES ('new_request');\n"
POLLER = "SELECT autodoctor.event_watermark();\n"


def _pgbench(dsn: str, script: Path, clients: int, options: str = "") -> subprocess.Popen[bytes]:
    c = conninfo_to_dict(dsn)
    env = {**os.environ, "PGPASSWORD": str(c.get("password") or ""), "PGOPTIONS": options}
    argv = [
        str(PGBIN / "pgbench"),
        "-n",
        "-h", str(c.get("host", "127.0.0.1")),
        "-p", str(c.get("port", 5432)),
        "-U", str(c.get("user", "postgres")),
        "-c", str(clients),
        "-j", "2",
        "-T", str(SECONDS),
        "-f", str(script),
        str(c["dbname"]),
    ]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_readers_skip_nothing_while_writers_commit_and_pollers_read_pg_locks(
    db: ad.Database, dsn: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if not (PGBIN / "pgbench").exists():
        pytest.skip(f"no pgbench in {PGBIN} (set PGBIN)")
    (tmp_path / "writer.sql").write_text(WRITER)
    (tmp_path / "poller.sql").write_text(POLLER)
    follower = Follower(db, 0)
    read: list[int] = []
    reads = 0
    stop = threading.Event()
    failure: list[BaseException] = []

    # The package's follower query, reading only the cursor's columns.
    query = queries.EVENTS_FINAL_AFTER.replace(
        "SELECT" + queries.EVENT_COLUMNS, "SELECT e.txid::text, e.id", 1
    )
    assert query != queries.EVENTS_FINAL_AFTER

    def tight_reader() -> None:
        nonlocal reads
        cursor: tuple[str, int] = ("0", 0)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    rows = conn.execute(
                        query, {"txid": cursor[0], "id": cursor[1], "limit": 1000}
                    ).fetchall()
                    reads += 1
                    if rows:
                        read.extend(int(r[1]) for r in rows)
                        cursor = (str(rows[-1][0]), int(rows[-1][1]))
        except BaseException as exc:  # reported by the test
            failure.append(exc)

    reader = threading.Thread(target=tight_reader)
    reader.start()
    try:
        writers = _pgbench(dsn, tmp_path / "writer.sql", 8, "-c synchronous_commit=off")
        pollers = _pgbench(dsn, tmp_path / "poller.sql", 4)
        for proc in (writers, pollers):
            _, err = proc.communicate(timeout=SECONDS + 60)
            assert proc.returncode == 0, err.decode()
        with psycopg.connect(dsn) as conn:
            logged = [r[0] for r in conn.execute("SELECT id FROM autodoctor.session_events")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len(read) < len(logged) or len(follower.events) < len(logged)
        ):
            time.sleep(0.05)
        time.sleep(0.3)  # anything yielded twice arrives too
    finally:
        stop.set()
        reader.join(30)
        follower.stop()
    assert not failure, failure
    assert follower.error is None, follower.error
    assert len(logged) > 5_000, f"only {len(logged)} events committed: the storm proved little"
    missed = sorted(set(logged) - set(read))
    assert not missed, f"the cursor reader skipped {len(missed)} of {len(logged)}: {missed[:10]}"
    assert len(read) == len(set(read)) == len(logged)
    followed = follower.ids()
    assert sorted(followed) == sorted(logged), (
        f"db.events() skipped {len(set(logged) - set(followed))} of {len(logged)}"
    )
    assert len(followed) == len(set(followed))
    report(
        request,
        f"watermark in a commit storm: {len(logged):,} events committed by 8 writers in "
        f"{SECONDS} s while 4 sessions polled event_watermark(); a cursor reader "
        f"({reads:,} reads) and db.events() each yielded all of them once",
    )
