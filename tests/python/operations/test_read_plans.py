"""Reads stay cheap under PostgreSQL's default settings (issue 14, item 6).

At 50,000 pending requests and 1,000,000 events, every table and view an API role may read
answers ``SELECT ... LIMIT 100`` (and the package's own reads: the views' ordering, the
driver's event queries, a customer's requests newest first) with the default ``jit = on``
and default cost settings:

- **without JIT**: the plan carries no ``JIT`` section, and its estimated total cost stays
  under PostgreSQL's default ``jit_above_cost`` (100,000), so the assertion holds on a server
  built without LLVM too. JIT compiling a read that touches a hundred rows costs 50 ms to
  1.3 s (measured before the fix), for nothing;
- **with bounded buffers**: shared hit + read of the executed plan stay under
  ``BASE_BUFFERS + PER_OWN_ID * own``, where ``own`` is the number of requests and sessions
  the caller takes part in. Nothing in the bound grows with the tables: a page of 100 rows
  is at most ~100 heap pages plus the index pages above them, and the caller's events are
  found by one index probe (root to leaf, then heap) per request and session of theirs. The
  pending queue alone is ~1,200 pages and the event log ~16,000, so a plan that scans
  either one fails.

Each relation is read as PostgREST reads it: ``SET LOCAL ROLE`` and
``request.jwt.claims`` with ``set_config(..., true)``, in one transaction. The read is run
once before it is measured, as on PostgREST's long-lived connections: a brand-new backend
also reads the system catalogs it has not cached yet, which says nothing about the plan.
Counters only; times are printed (``-s``), never asserted.

The rows are loaded as the owner with set-based INSERTs, behind the functions' backs (the
broadcast trigger is off while the log is filled), hence ``bulk_loaded``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from autodoctor_db import queries
from psycopg import sql

pytestmark = pytest.mark.bulk_loaded

PENDING = 50_000
#: Pending requests past their expires_at that expire_stale_requests() has not swept yet.
STALE_PENDING = 500
#: Requests already accepted, cancelled or expired (every third one cancelled or expired).
CLOSED = 150_000
EVENTS = 1_000_000
MECHANICS = 2_000
CUSTOMERS = 20_000

#: PostgreSQL's default jit_above_cost: a plan estimated above it is JIT-compiled.
DEFAULT_JIT_ABOVE_COST = 100_000
BASE_BUFFERS = 300
PER_OWN_ID = 5

LOAD = [
    # Users: mechanics first, then customers (the auth trigger gives each a profile).
    f"""INSERT INTO auth.users (id, email)
        SELECT gen_random_uuid(), 'u' || g || '@load.test'
          FROM generate_series(1, {MECHANICS + CUSTOMERS}) g""",
    """CREATE TEMP TABLE people AS
        SELECT id, row_number() OVER (ORDER BY id) AS n FROM auth.users
         WHERE email LIKE '%@load.test'""",
    "CREATE UNIQUE INDEX ON people (n)",
    # Mechanics on a 50 x 40 grid around Paris (1/60 degree apart), 50 km radius, all types.
    f"""INSERT INTO autodoctor.mechanics (user_id, online, location)
        SELECT id, n % 3 = 0, extensions.st_makepoint(2.0 + (n % 50) / 60.0,
                                                      48.5 + (n / 50) / 60.0)::extensions.geography
          FROM people WHERE n <= {MECHANICS}""",
    # Requests: g <= PENDING pending over the last ~24 h, then the stale pending ones, then
    # the closed history (two in three accepted, by mechanic 1 + g % MECHANICS).
    f"""CREATE TEMP TABLE req AS
        SELECT g, gen_random_uuid() AS id, c.id AS customer_id,
               CASE WHEN g <= {PENDING} THEN now() - g * interval '1.7 seconds'
                    WHEN g <= {PENDING + STALE_PENDING}
                    THEN now() - interval '24 hours' - (g - {PENDING}) * interval '1 second'
                    ELSE now() - interval '25 hours'
                         - (g - {PENDING + STALE_PENDING}) * interval '50 seconds'
               END AS created_at,
               CASE WHEN g <= {PENDING + STALE_PENDING} THEN 'pending'
                    WHEN g % 3 <> 0 THEN 'accepted'
                    WHEN g % 2 = 0 THEN 'cancelled' ELSE 'expired'
               END::autodoctor.session_request_status AS status,
               CASE WHEN g > {PENDING + STALE_PENDING} AND g % 3 <> 0 THEN m.id END AS mechanic_id,
               CASE WHEN g > {PENDING + STALE_PENDING} AND g % 3 <> 0
                    THEN gen_random_uuid() END AS session_id
          FROM generate_series(1, {PENDING + STALE_PENDING + CLOSED}) g
          JOIN people c ON c.n = {MECHANICS + 1} + g % {CUSTOMERS}
          JOIN people m ON m.n = 1 + g % {MECHANICS}""",
    # Seven in ten located near Paris (intake requests), the rest without a location.
    f"""INSERT INTO autodoctor.session_requests
           (id, created_at, updated_at, customer_id, mechanic_id, session_type, plan_code,
            status, customer_name, notes, accepted_at, expires_at, session_id, location,
            cancelled_at, expired_at, notification_sent_at)
       SELECT id, created_at, created_at, customer_id, mechanic_id,
              (ARRAY['chat', 'video', 'diagnostic'])[1 + g % 3]::autodoctor.session_type,
              'free', status, 'Customer ' || g, 'Noise when braking',
              CASE WHEN status = 'accepted' THEN created_at + interval '5 minutes' END,
              created_at + interval '24 hours', session_id,
              CASE WHEN g % 10 < 7
                   THEN extensions.st_makepoint(2.0 + (g % 97) / 120.0,
                                                48.5 + (g % 89) / 100.0)::extensions.geography END,
              CASE WHEN status = 'cancelled' THEN created_at + interval '1 hour' END,
              CASE WHEN status = 'expired' THEN created_at + interval '24 hours' END,
              -- Fanned out (their e-mails queued), but the stale pending ones.
              CASE WHEN g <= {PENDING} OR g > {PENDING + STALE_PENDING} THEN created_at END
         FROM req""",
    """INSERT INTO autodoctor.sessions
           (id, created_at, updated_at, mechanic_id, customer_user_id, plan, type, status,
            request_id, started_at, ended_at, duration_minutes)
       SELECT session_id, created_at + interval '5 minutes', created_at + interval '1 hour',
              mechanic_id, customer_id, 'free',
              (ARRAY['chat', 'video', 'diagnostic'])[1 + g % 3]::autodoctor.session_type,
              CASE WHEN g % 50 = 1 THEN 'cancelled' ELSE 'completed' END::autodoctor.session_status,
              id, created_at + interval '10 minutes', created_at + interval '40 minutes', 30
         FROM req WHERE session_id IS NOT NULL""",
    # 500 legacy orphans; the first 250 converted (a pending request points at each).
    f"""CREATE TEMP TABLE orphan AS
        SELECT g, gen_random_uuid() AS id, p.id AS customer_id,
               now() - interval '2 hours' - g * interval '1 minute' AS created_at
          FROM generate_series(1, 500) g
          JOIN people p ON p.n = {MECHANICS + 1} + (g * 7) % {CUSTOMERS}""",
    """INSERT INTO autodoctor.sessions (id, created_at, customer_user_id, plan, type, status)
       SELECT id, created_at, customer_id, 'free', 'video',
              CASE WHEN g % 5 = 0 THEN 'live' ELSE 'pending' END::autodoctor.session_status
         FROM orphan""",
    """INSERT INTO autodoctor.session_requests
           (customer_id, session_type, plan_code, status, session_id, created_at, expires_at)
       SELECT customer_id, 'video', 'free', 'pending', id, now() - interval '1 hour',
              now() + interval '23 hours'
         FROM orphan WHERE g <= 250""",
    # The log: each request's new_request (by its customer), then for accepted ones the
    # acceptance and three status changes (by the mechanic), up to EVENTS rows. The
    # broadcast trigger is off meanwhile: a million NOTIFYs in one transaction is not the
    # point here.
    """CREATE TEMP TABLE evsrc AS
        SELECT row_number() OVER (ORDER BY g) AS n, id, session_id, customer_id, mechanic_id
          FROM req""",
    "ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_notify",
    f"""INSERT INTO autodoctor.session_events
           (event, request_id, session_id, actor_id, session_type, plan_code)
       SELECT CASE x.k WHEN 0 THEN 'new_request' WHEN 1 THEN 'request_accepted'
                       ELSE 'session_status_changed' END,
              s.id, CASE WHEN x.k > 0 THEN s.session_id END,
              CASE WHEN x.k = 0 THEN s.customer_id ELSE s.mechanic_id END, 'chat', 'free'
         FROM (SELECT (g - 1) / {PENDING + STALE_PENDING + CLOSED} AS k,
                      1 + (g - 1) % {PENDING + STALE_PENDING + CLOSED} AS n
                 FROM generate_series(1, {EVENTS}) g) x
         JOIN evsrc s ON s.n = x.n""",
    "ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify",
    # The new-request e-mails of the pending requests, sent.
    f"""INSERT INTO autodoctor.notification_outbox
           (created_at, kind, mechanic_id, recipient, request_id, status, attempts, sent_at)
       SELECT r.created_at, 'new_request', m.id, 'm' || m.n || '@load.test', r.id, 'sent', 1,
              r.created_at
         FROM req r JOIN people m ON m.n = 1 + r.g % {MECHANICS}
        WHERE r.g <= {PENDING}""",
    "ANALYZE",
]


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    sub: uuid.UUID | None
    #: Requests and sessions the caller takes part in (their events are looked up by id).
    own: int


@dataclass(frozen=True)
class Measure:
    caller: str
    query: str
    jit: bool
    cost: float
    buffers: int
    bound: int
    ms: float
    rows: int

    @property
    def ok(self) -> bool:
        return not self.jit and self.cost < DEFAULT_JIT_ABOVE_COST and self.buffers <= self.bound

    def line(self) -> str:
        return (
            f"{'ok  ' if self.ok else 'FAIL'} {self.caller:9} {self.query:42}"
            f" jit={'yes' if self.jit else 'no '} cost={self.cost:>11,.0f}"
            f" buffers={self.buffers:>6,} (<= {self.bound:,}) {self.ms:>8.1f} ms"
            f" rows={self.rows}"
        )


@pytest.fixture
def callers(admin: psycopg.Connection[Any]) -> list[Caller]:
    """The volume, and the four callers: a mechanic with history, a customer with a few
    requests, a user with nothing at all (the reported case), and the service."""
    with admin.transaction():  # one transaction: the request -> session key is deferred
        for statement in LOAD:
            admin.execute(statement)

    def person(n: int) -> uuid.UUID:
        row = admin.execute("SELECT id FROM people WHERE n = %s", (n,)).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    def own(uid: uuid.UUID) -> int:
        row = admin.execute(
            "SELECT (SELECT count(*) FROM autodoctor.session_requests r"
            "         WHERE r.customer_id = %(u)s OR r.mechanic_id = %(u)s)"
            "     + (SELECT count(*) FROM autodoctor.sessions s"
            "         WHERE s.customer_user_id = %(u)s OR s.mechanic_id = %(u)s)",
            {"u": uid},
        ).fetchone()
        assert row is not None
        return int(row[0])

    # A mechanic in the middle of the grid (50 accepted requests and their sessions), and
    # a customer with a few requests and sessions of their own.
    mechanic, customer = person(MECHANICS // 2 + 25), person(MECHANICS + 6)
    row = admin.execute(
        "INSERT INTO auth.users (email) VALUES ('nobody@load.test') RETURNING id"
    ).fetchone()
    assert row is not None
    nobody = uuid.UUID(str(row[0]))
    return [
        Caller("mechanic", "authenticated", mechanic, own(mechanic)),
        Caller("customer", "authenticated", customer, own(customer)),
        Caller("nobody", "authenticated", nobody, 0),
        Caller("service", "service_role", None, 0),
    ]


def _readable(conn: psycopg.Connection[Any], role: str) -> dict[str, list[str]]:
    """Every table and view of the package the role may read, with the columns it may."""
    rows = conn.execute(
        """SELECT c.relname, array_agg(a.attname ORDER BY a.attnum)
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                                           AND NOT a.attisdropped
            WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p', 'v')
              AND NOT c.relispartition
              AND has_column_privilege(%s, c.oid, a.attnum, 'SELECT')
            GROUP BY c.relname ORDER BY c.relname""",
        (role,),
    ).fetchall()
    return {name: list(cols) for name, cols in rows}


def _queries(
    conn: psycopg.Connection[Any], caller: Caller
) -> list[tuple[str, sql.Composable, dict[str, Any]]]:
    """``SELECT <readable columns> FROM <relation> LIMIT 100`` for every relation the
    caller's role reads (a view's includes its ORDER BY), and the package's own reads."""
    out: list[tuple[str, sql.Composable, dict[str, Any]]] = []
    for rel, cols in _readable(conn, caller.role).items():
        out.append(
            (
                rel,
                sql.SQL("SELECT {} FROM autodoctor.{} LIMIT 100").format(
                    sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(rel)
                ),
                {},
            )
        )
    # The driver's reads of the log (db.events() and its replay), from the beginning.
    out.append(("driver EVENTS_AFTER", sql.SQL(queries.EVENTS_AFTER), {"after": 0, "limit": 100}))
    out.append(
        (
            "driver EVENTS_FINAL_AFTER",
            sql.SQL(queries.EVENTS_FINAL_AFTER),
            {"txid": 0, "id": 0, "limit": 100},
        )
    )
    if caller.sub is not None:
        # A customer's own requests, newest first, as a PostgREST client asks for them
        # (customer_id=eq.<uid>&order=created_at.desc&limit=100).
        out.append(
            (
                "my requests, newest first",
                sql.SQL(
                    "SELECT r.id, r.status, r.created_at FROM autodoctor.session_requests r"
                    " WHERE r.customer_id = %(me)s ORDER BY r.created_at DESC LIMIT 100"
                ),
                {"me": caller.sub},
            )
        )
    return out


def _measure(
    conn: psycopg.Connection[Any],
    caller: Caller,
    name: str,
    query: sql.Composable,
    params: dict[str, Any],
) -> Measure:
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(caller.role)))
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(caller.sub)} if caller.sub else {"role": caller.role}),),
        )
        conn.execute(query, params).fetchall()  # warm-up (catalog caches)
        row = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query, params
        ).fetchone()
    assert row is not None
    plan = row[0][0]
    top = plan["Plan"]
    return Measure(
        caller=caller.name,
        query=name,
        jit="JIT" in plan,
        cost=float(top["Total Cost"]),
        buffers=int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]),
        bound=BASE_BUFFERS + PER_OWN_ID * caller.own,
        ms=float(plan["Execution Time"]),
        rows=int(top["Actual Rows"]),
    )


def test_every_api_read_answers_without_jit_and_within_bounded_buffers(
    admin: psycopg.Connection[Any], callers: list[Caller]
) -> None:
    assert admin.execute("SHOW jit").fetchone() == ("on",), "the default jit = on is the point"
    assert admin.execute("SELECT count(*) FROM autodoctor.session_events").fetchone() == (EVENTS,)
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.session_requests WHERE status = 'pending'"
    ).fetchone() == (PENDING + STALE_PENDING + 250,)
    # Everything an API role reads is covered, the contract's views included.
    assert {
        "incoming_requests",
        "my_sessions",
        "session_events",
        "session_requests",
        "sessions",
    } <= set(_readable(admin, "authenticated"))
    assert {
        "orphaned_sessions",
        "session_events",
        "session_requests",
        "sessions",
        "notification_outbox",
    } <= set(_readable(admin, "service_role"))

    measures = [
        _measure(admin, caller, name, query, params)
        for caller in callers
        for name, query, params in _queries(admin, caller)
    ]
    table = "\n".join(m.line() for m in measures)
    print("\n" + table)
    # Each caller got something to read, so the bounds were measured on real work.
    for caller in ("mechanic", "customer", "service"):
        assert any(m.rows > 0 for m in measures if m.caller == caller), table
    assert all(m.ok for m in measures), "reads over budget:\n" + table


#: The fan-out's query (autodoctor._fan_out_new_requests, run by claim_notifications).
FAN_OUT = """SELECT r.id FROM autodoctor.session_requests r
 WHERE r.status = 'pending' AND r.notification_sent_at IS NULL AND r.expires_at > now()
 ORDER BY r.expires_at LIMIT 100 FOR NO KEY UPDATE OF r SKIP LOCKED"""


def test_the_fan_out_finds_its_requests_by_its_index_without_reading_the_queue(
    admin: psycopg.Connection[Any], callers: list[Caller]
) -> None:
    """50,000 pending requests already e-mailed, 500 past their expiry not swept yet and 250
    converted ones not e-mailed: the fan-out reads the 250 through session_requests_fan_out_idx
    (expiry an index condition: the stale ones are never read), with no sort, no JIT and
    buffers bounded, never the pending queue."""
    row = admin.execute(
        "SELECT pg_get_functiondef('autodoctor._fan_out_new_requests(integer)'::regprocedure)"
    ).fetchone()
    assert row is not None
    assert " ".join(
        FAN_OUT.replace("LIMIT 100", "LIMIT _fan_out_new_requests.batch_size").split()
    ) in " ".join(str(row[0]).split()), "FAN_OUT must be the function's query"
    with admin.transaction(force_rollback=True):
        explained = admin.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + FAN_OUT).fetchone()
    assert explained is not None
    plan = explained[0]
    top = plan[0]["Plan"]
    text = json.dumps(plan)
    assert "session_requests_fan_out_idx" in text, text
    assert '"Node Type": "Sort"' not in text and '"Node Type": "Seq Scan"' not in text, text
    assert "JIT" not in plan[0], text
    assert top["Total Cost"] < DEFAULT_JIT_ABOVE_COST, text
    assert top["Actual Rows"] == 100, text

    def removed(node: dict[str, Any]) -> int:
        return int(node.get("Rows Removed by Filter", 0)) + sum(
            removed(child) for child in node.get("Plans", [])
        )

    assert removed(top) == 0, text  # neither the e-mailed nor the stale ones were read
    buffers = int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])
    assert buffers < BASE_BUFFERS, text
    print(f"\nfan-out: {buffers} buffers, {plan[0]['Execution Time']:.2f} ms")
