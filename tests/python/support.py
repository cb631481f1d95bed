"""Helpers shared by the reliability and security tests (fuzz, faults, security,
migrations): acting as a caller on a raw psycopg connection, a footprint of every row the
package owns, the contract's SQLSTATEs, and a line in pytest's terminal summary.

Not a test module (pytest collects only ``test_*.py``); imported as ``support``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db.errors import CONTRACT_SQLSTATES as CONTRACT_SQLSTATES
from autodoctor_db.errors import is_contract_sqlstate as is_contract_sqlstate
from psycopg import sql

# The SQLSTATEs the contract allows a function to fail with (SQLSTATE or class prefix ->
# driver base class, HTTP status) are one table, the driver's: CONTRACT_SQLSTATES and
# is_contract_sqlstate above are autodoctor_db.errors', re-exported for the tests.


def act_as(conn: psycopg.Connection[Any], role: str, sub: object | None = None) -> None:
    """Inside the current transaction, become ``role`` with PostgREST's JWT claims."""
    claims: dict[str, Any] = {"role": role}
    if sub is not None:
        claims["sub"] = str(sub)
    conn.execute(
        "SELECT set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, "" if role == "anon" else json.dumps(claims)),
    )


def call_function(
    conn: psycopg.Connection[Any], name: str, args: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """``SELECT * FROM autodoctor.<name>(arg => value, ...)``, values bound apart."""
    query = sql.SQL("SELECT * FROM autodoctor.{}({})").format(
        sql.Identifier(name),
        sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(k)) for k in args),
    )
    return conn.execute(query, list(args.values())).fetchall()


#: Every table whose rows make up the package's state, plus the auth users it reads.
_FOOTPRINT_TABLES = sql.SQL(
    """
SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE (n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p'))
    OR (n.nspname = 'auth' AND c.relname = 'users')
 ORDER BY 1
"""
)


def footprint(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """(row count, sum of row hashes) of every table of the package and of auth.users.

    Two footprints are equal iff (up to hash collisions) no row was inserted, changed or
    deleted in between: the proof that a refused call wrote nothing.
    """
    tables = [r[0] for r in conn.execute(_FOOTPRINT_TABLES).fetchall()]
    parts = [
        sql.SQL(
            "SELECT {name}, count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM {tbl} t"
        ).format(name=sql.Literal(name), tbl=sql.SQL(name))
        for name in tables
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


def invariants(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every violated invariant (autodoctor.check_invariants(), run by the owner)."""
    return conn.execute("SELECT invariant, detail FROM autodoctor.check_invariants()").fetchall()


def new_user(conn: psycopg.Connection[Any], name: str = "Test User") -> uuid.UUID:
    """An auth.users row (its profile is made by the trigger); autocommit connection."""
    row = conn.execute(
        "INSERT INTO auth.users (email, raw_user_meta_data)"
        " VALUES (%s, jsonb_build_object('full_name', %s::text)) RETURNING id",
        (f"{uuid.uuid4().hex[:12]}@example.test", name),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


class _Figures:
    """A plugin printing the lines given to :func:`report` in pytest's closing summary."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("reliability and security figures")
        for line in self.lines:
            terminalreporter.write_line(line)


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Add one line to a "reliability and security figures" section of the summary."""
    manager = request.config.pluginmanager
    figures = manager.get_plugin("autodoctor-figures")
    if figures is None:
        figures = _Figures()
        manager.register(figures, "autodoctor-figures")
    figures.lines.append(line)


class Follower:
    """``db.events(...)`` (the sync or the async driver's, on ``db``) consumed in a thread,
    collecting what it yields."""

    def __init__(self, db: Any, after: int | ad.EventCursor = 0, **kwargs: Any) -> None:
        self.events: list[ad.Event] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._gen = db.events(after=after, poll_interval=0.1, stop=self._stop.is_set, **kwargs)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._gen:
                self.events.append(ev)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def ids(self) -> list[int]:
        return [e.id for e in self.events]

    def wait_for(self, n: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline and self.error is None:
            time.sleep(0.02)
        assert self.error is None, self.error
        assert len(self.events) >= n, (len(self.events), n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()
