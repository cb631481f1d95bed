"""What a create and an accept write, read back from the WAL (the performance issue,
item 1): which indexes get an entry, which rows are written, and that new rows have
time-ordered ids. Counters only (pg_walinspect over the transaction's own records),
deterministic for the operation; times are never asserted.

The index sets are the hot paths' write budget: an index added to ``session_requests``,
``sessions`` or ``session_events`` shows up here, and must be worth an entry on every
create or accept. ``session_requests (session_id)`` and the payment key's entry for every
unpaid session were in the accept's set until change ``unread_indexes``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from support import act_as

#: Every index the accept of a plain pending request (no intake, no idempotency key)
#: writes one entry to; partitions of session_events are named by their parent's index.
ACCEPT_INDEXES = Counter(
    {
        # the request's new row version (status, mechanic and session change: not HOT)
        "session_requests_pkey": 1,
        "session_requests_customer_id_idx": 1,
        "session_requests_mechanic_id_idx": 1,
        "session_requests_plan_code_idx": 1,
        # the new session
        "sessions_pkey": 1,
        "sessions_active_load_idx": 1,
        "sessions_customer_user_id_idx": 1,
        "sessions_mechanic_id_idx": 1,
        "sessions_request_id_key": 1,
        # the request_accepted event
        "session_events_pkey": 1,
        "session_events_txid_idx": 1,
        "session_events_actor_id_idx": 1,
        "session_events_request_id_idx": 1,
        "session_events_session_id_idx": 1,
    }
)

#: The same for create_session_request (a new pending request and its new_request event).
CREATE_INDEXES = Counter(
    {
        "session_requests_pkey": 1,
        "session_requests_customer_id_idx": 1,
        "session_requests_plan_code_idx": 1,
        "session_requests_pending_idx": 1,
        "session_requests_pending_expiry_idx": 1,
        "session_requests_pending_market_idx": 1,
        "session_requests_pending_customer_idx": 1,
        "session_requests_fan_out_idx": 1,
        "session_events_pkey": 1,
        "session_events_txid_idx": 1,
        "session_events_actor_id_idx": 1,
        "session_events_request_id_idx": 1,
    }
)

_RECORDS = """
SELECT r.resource_manager, r.record_type,
       (SELECT coalesce(pg_partition_root(c.oid), c.oid)::regclass::text
          FROM pg_catalog.pg_class c
         WHERE c.oid = pg_filenode_relation(
                   0, substring(r.block_ref FROM 'rel \\d+/\\d+/(\\d+)')::oid)) AS relation
  FROM pg_get_wal_records_info(%s::pg_lsn, pg_current_wal_flush_lsn()) r
 WHERE r.xid = %s::text::xid
"""


def _written(
    admin: psycopg.Connection[Any], dsn: str, uid: uuid.UUID, call: str, args: tuple[Any, ...]
) -> tuple[Any, list[tuple[str, str, str]]]:
    """Run ``call`` as user ``uid`` in a transaction of its own; its result and the WAL
    records the transaction wrote (resource manager, record type, relation)."""
    admin.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    start = admin.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert start is not None
    with psycopg.connect(dsn) as conn, conn.transaction():
        act_as(conn, "authenticated", uid)
        result = conn.execute(call, args).fetchone()
        xid = conn.execute("SELECT pg_current_xact_id()::text::numeric % 4294967296").fetchone()
    assert result is not None and xid is not None
    rows = admin.execute(_RECORDS, (start[0], str(xid[0]))).fetchall()
    return result, [(str(m), str(t), str(r)) for m, t, r in rows]


def _index_entries(records: list[tuple[str, str, str]]) -> Counter[str]:
    return Counter(
        rel
        for rmgr, kind, rel in records
        # Leaf entries and posting-list inserts (a page split's downlink, INSERT_UPPER, is
        # not an entry of the row), as bench/autodoctor_bench/counters.py counts them.
        if rmgr == "Btree" and kind in ("INSERT_LEAF", "INSERT_POST")
    )


def _heap_writes(records: list[tuple[str, str, str]]) -> Counter[tuple[str, str]]:
    return Counter(
        (rel.split(".")[-1], kind.split("+")[0])
        for rmgr, kind, rel in records
        if rmgr == "Heap" and kind.split("+")[0] in ("INSERT", "UPDATE", "HOT_UPDATE")
    )


def _qualified(name: str) -> str:
    return name if "." in name else f"autodoctor.{name}"


@pytest.fixture
def market(
    make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> dict[str, uuid.UUID]:
    return {"customer": make_user("Customer"), "mechanic": make_mechanic("Mechanic")}


def _create(
    admin: psycopg.Connection[Any], dsn: str, customer: uuid.UUID
) -> tuple[uuid.UUID, list[tuple[str, str, str]]]:
    row, records = _written(
        admin,
        dsn,
        customer,
        "SELECT id FROM autodoctor.create_session_request(session_type => 'chat',"
        " plan_code => 'free')",
        (),
    )
    return uuid.UUID(str(row[0])), records


def test_a_create_writes_one_request_one_event_and_their_index_entries(
    admin: psycopg.Connection[Any], dsn: str, market: dict[str, uuid.UUID]
) -> None:
    _, records = _create(admin, dsn, market["customer"])
    assert _index_entries(records) == Counter({_qualified(k): v for k, v in CREATE_INDEXES.items()})
    assert _heap_writes(records) == Counter(
        {("session_requests", "INSERT"): 1, ("session_events", "INSERT"): 1}
    )


def test_an_accept_writes_no_entry_to_an_index_nothing_reads(
    admin: psycopg.Connection[Any], dsn: str, market: dict[str, uuid.UUID]
) -> None:
    request, _ = _create(admin, dsn, market["customer"])
    session, records = _written(
        admin,
        dsn,
        market["mechanic"],
        "SELECT id FROM autodoctor.accept_session_request(request_id => %s)",
        (request,),
    )
    assert _index_entries(records) == Counter({_qualified(k): v for k, v in ACCEPT_INDEXES.items()})
    # The request's new version (not HOT), the session, the event, and the mechanic's load
    # counter (a HOT update: the counter is in no index).
    assert _heap_writes(records) == Counter(
        {
            ("session_requests", "UPDATE"): 1,
            ("sessions", "INSERT"): 1,
            ("session_events", "INSERT"): 1,
            ("mechanics", "HOT_UPDATE"): 1,
        }
    )
    assert uuid.UUID(str(session[0])).version == 7


def test_new_requests_sessions_and_intakes_get_time_ordered_ids(
    admin: psycopg.Connection[Any], dsn: str, market: dict[str, uuid.UUID]
) -> None:
    """Version 7: a millisecond clock first, so later rows sort after earlier ones and
    land on the rightmost leaf of the primary key (no random leaf to image after a
    checkpoint). Rows that already exist keep their ids."""
    ids = []
    for _ in range(3):
        ids.append(_create(admin, dsn, market["customer"])[0])
        time.sleep(0.003)
    assert [i.version for i in ids] == [7, 7, 7]
    assert ids == sorted(ids)
    defaults = admin.execute(
        "SELECT c.relname, pg_get_expr(d.adbin, d.adrelid)"
        "  FROM pg_attrdef d"
        "  JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        "  JOIN pg_class c ON c.oid = d.adrelid"
        " WHERE c.relnamespace = 'autodoctor'::regnamespace AND a.attname = 'id'"
        "   AND c.relname IN ('session_requests', 'sessions', 'intakes') ORDER BY 1"
    ).fetchall()
    assert defaults == [
        ("intakes", "autodoctor._uuid_v7()"),
        ("session_requests", "autodoctor._uuid_v7()"),
        ("sessions", "autodoctor._uuid_v7()"),
    ]
    stamp = admin.execute(
        "SELECT ('x' || substr(replace(%s::text, '-', ''), 1, 12))::bit(48)::bigint,"
        "       floor(extract(epoch FROM created_at) * 1000)::bigint"
        "  FROM autodoctor.session_requests WHERE id = %s",
        (ids[-1], ids[-1]),
    ).fetchone()
    assert stamp is not None
    # The id's clock is the insert's (clock_timestamp), at or after the row's now().
    assert 0 <= stamp[0] - stamp[1] < 60_000, stamp


def test_a_payment_key_stays_unique_over_paid_sessions(
    admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    """The payment key indexes paid sessions only (change unread_indexes): two unpaid
    sessions never conflict, a payment reused in one market does."""
    customer = make_user("Payer")
    insert = (
        "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status,"
        " stripe_session_id) VALUES (%s, 'free', 'chat', 'pending', %s)"
    )
    admin.execute(insert, (customer, None))
    admin.execute(insert, (customer, None))
    admin.execute(insert, (customer, "cs_test_1"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        admin.execute(insert, (customer, "cs_test_1"))
    admin.execute(
        "UPDATE autodoctor.sessions SET status = 'cancelled' WHERE customer_user_id = %s",
        (customer,),
    )
