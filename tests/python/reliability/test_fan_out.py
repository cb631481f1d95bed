"""The new-request e-mail fan-out, off the request's transaction, with real connections.

create_session_request and submit_intake queue no e-mail: claim_notifications fans the
new requests out first (autodoctor._fan_out_new_requests: FOR NO KEY UPDATE SKIP LOCKED,
a bounded batch). Counters only, never times:

- per create or intake with N online mechanics, the request's transaction inserts no
  outbox row (pg_stat_xact_user_tables), and the fan-out's own transaction inserts the N;
- two fan-outs at once (two workers' claims, each in its own transaction, one held open)
  take disjoint requests without waiting for each other, and every request gets its
  e-mails exactly once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import psycopg
from support import act_as, new_user

MECHANICS = 20


def _online_mechanics(conn: psycopg.Connection[Any], n: int) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        uid = new_user(conn, f"Mechanic {i}")
        conn.execute("SELECT autodoctor.register_mechanic(%s)", (uid,))
        conn.execute("UPDATE autodoctor.mechanics SET online = true WHERE user_id = %s", (uid,))
        ids.append(uid)
    return ids


def _inserts(conn: psycopg.Connection[Any]) -> Counter[str]:
    """pg_stat_xact_user_tables' n_tup_ins per table (an outbox month counts as the outbox).

    Read twice in the same transaction, before and after a call: the difference is what
    the call inserted (the view also holds earlier transactions' counts not yet flushed to
    the shared statistics, which the difference cancels)."""
    rows = conn.execute(
        "SELECT CASE WHEN relname LIKE 'notification_outbox%%' THEN 'notification_outbox'"
        "            ELSE relname END, sum(n_tup_ins)::int"
        "  FROM pg_stat_xact_user_tables WHERE schemaname = 'autodoctor' GROUP BY 1"
    ).fetchall()
    return Counter({name: n for name, n in rows})


def _inserted_by(conn: psycopg.Connection[Any], query: str) -> tuple[Any, Counter[str]]:
    """Run ``query`` in the open transaction: its first value and the rows it inserted."""
    before = _inserts(conn)
    row = conn.execute(query).fetchone()
    assert row is not None
    after = _inserts(conn)
    after.subtract(before)
    return row[0], +after


def test_create_and_intake_insert_no_outbox_row_and_the_fan_out_inserts_them(
    admin: psycopg.Connection[Any], dsn: str
) -> None:
    mechanics = _online_mechanics(admin, MECHANICS)
    customer = new_user(admin, "Customer")
    calls = {
        "create_session_request": "SELECT (autodoctor.create_session_request('chat', 'free')).id",
        "submit_intake": (
            "SELECT (autodoctor.submit_intake('video', 'free',"
            ' \'{"make": "Renault", "model": "Clio", "year": 2019}\', \'noise\')).id'
        ),
    }
    with psycopg.connect(dsn) as conn:
        for name, query in calls.items():
            act_as(conn, "authenticated", customer)
            request_id, counts = _inserted_by(conn, query)
            conn.commit()
            assert counts["notification_outbox"] == 0, (name, counts)
            assert counts["session_requests"] == 1, (name, counts)

            # The fan-out, in the worker's claim (a transaction of its own), queues the N.
            act_as(conn, "service_role")
            _, counts = _inserted_by(conn, "SELECT count(*) FROM autodoctor.claim_notifications(1)")
            conn.commit()
            assert counts["notification_outbox"] == MECHANICS, (name, counts)
            assert {
                r[0]
                for r in admin.execute(
                    "SELECT mechanic_id FROM autodoctor.notification_outbox WHERE request_id = %s",
                    (request_id,),
                )
            } == set(mechanics)


def test_two_fan_outs_at_once_take_disjoint_requests_and_email_each_once(
    admin: psycopg.Connection[Any], dsn: str
) -> None:
    mechanics = _online_mechanics(admin, 3)
    requests: list[uuid.UUID] = []
    for c in range(2):
        customer = new_user(admin, f"Customer {c}")
        with psycopg.connect(dsn) as conn:
            for _ in range(5):
                act_as(conn, "authenticated", customer)
                row = conn.execute(
                    "SELECT (autodoctor.create_session_request('chat', 'free')).id"
                ).fetchone()
                assert row is not None
                requests.append(row[0])
                conn.commit()
    assert admin.execute("SELECT count(*) FROM autodoctor.notification_outbox").fetchone() == (0,)

    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        # The first worker's claim fans out four requests and stays open.
        act_as(first, "service_role")
        first.execute("SELECT count(*) FROM autodoctor.claim_notifications(4)").fetchone()
        held = {
            r[0]
            for r in first.execute(
                "SELECT id FROM autodoctor.session_requests WHERE notification_sent_at IS NOT NULL"
            )
        }
        assert len(held) == 4
        # The second one neither waits for those nor fans them out again.
        second.execute("SET lock_timeout = '5s'")
        act_as(second, "service_role")
        second.execute("SELECT count(*) FROM autodoctor.claim_notifications(100)").fetchone()
        taken = {
            r[0]
            for r in second.execute(
                "SELECT id FROM autodoctor.session_requests WHERE notification_sent_at IS NOT NULL"
            )
        }
        assert len(taken) == 6 and not taken & held
        second.commit()
        first.commit()

    queued = Counter(
        (r[0], r[1])
        for r in admin.execute(
            "SELECT request_id, mechanic_id FROM autodoctor.notification_outbox"
            " WHERE kind = 'new_request'"
        )
    )
    assert set(queued) == {(r, m) for r in requests for m in mechanics}
    assert set(queued.values()) == {1}
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.session_requests WHERE notification_sent_at IS NULL"
    ).fetchone() == (0,)
    # Nothing left to fan out: a third claim queues nothing.
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT autodoctor._fan_out_new_requests(100)").fetchone() == (0,)
