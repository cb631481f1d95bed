"""At volume, the hot queries use their indexes (asserted with EXPLAIN on 100k rows)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

#: The volume is loaded with set-based INSERTs, not through the functions (no events).
pytestmark = pytest.mark.bulk_loaded


@pytest.fixture
def loaded(admin: psycopg.Connection[Any]) -> dict[str, uuid.UUID]:
    """100k requests (5% pending), 100k sessions (1% orphans), 5k located mechanics.

    The nearest-mechanic query below is the KNN walk the dispatch helpers use (v0.1.0's
    _pick_mechanic; _nearest_available_mechanics now), radius per mechanic included.
    """
    admin.execute(
        "INSERT INTO auth.users (id, email)"
        " SELECT gen_random_uuid(), 'u' || g || '@load.test' FROM generate_series(1, 6000) g"
    )
    admin.execute(
        "CREATE TEMP TABLE people AS SELECT id, row_number() OVER (ORDER BY id) AS n"
        " FROM auth.users"
    )
    admin.execute(
        "INSERT INTO autodoctor.mechanics (user_id, online, location)"
        " SELECT id, n % 3 = 0, extensions.st_makepoint(2 + (n % 100) / 50.0,"
        "        48 + (n / 100) / 50.0)::extensions.geography"
        "   FROM people WHERE n <= 5000"
    )
    admin.execute(
        "INSERT INTO autodoctor.session_requests (customer_id, session_type, plan_code, status,"
        "       created_at, expires_at)"
        " SELECT p.id, (ARRAY['chat', 'video', 'diagnostic'])[1 + g % 3]::autodoctor.session_type,"
        "        'free', CASE WHEN g % 20 = 0 THEN 'pending' ELSE 'cancelled' END"
        "        ::autodoctor.session_request_status,"
        "        now() - (g || ' seconds')::interval, now() + interval '1 day'"
        "   FROM generate_series(1, 100000) g JOIN people p ON p.n = 5001 + g % 1000"
    )
    admin.execute(
        "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, created_at)"
        " SELECT p.id, 'free', 'chat', CASE WHEN g % 100 = 0 THEN 'pending' ELSE 'completed' END"
        "        ::autodoctor.session_status, now() - (g || ' seconds')::interval"
        "   FROM generate_series(1, 100000) g JOIN people p ON p.n = 5001 + g % 1000"
    )
    admin.execute("ANALYZE")
    row = admin.execute("SELECT id FROM people WHERE n = 300").fetchone()
    assert row is not None
    return {"mechanic": row[0]}
    # The orphans are deliberately left: this test is about plans, not repair.
    admin.execute(
        "UPDATE autodoctor.sessions SET status = 'cancelled' WHERE mechanic_id IS NULL"
        " AND status IN ('pending', 'live')"
    )


def _plan(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> str:
    row = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    assert row is not None
    return json.dumps(row[0])


def test_incoming_requests_uses_the_pending_partial_index(
    admin: psycopg.Connection[Any], loaded: dict[str, uuid.UUID]
) -> None:
    with admin.transaction():
        admin.execute("SET LOCAL ROLE authenticated")
        admin.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(loaded["mechanic"])}),),
        )
        plan = _plan(admin, "SELECT * FROM autodoctor.incoming_requests LIMIT 50")
    assert "session_requests_pending_idx" in plan, plan


def test_orphan_queue_uses_the_orphans_partial_index(
    admin: psycopg.Connection[Any], loaded: dict[str, uuid.UUID]
) -> None:
    plan = _plan(
        admin,
        "SELECT s.id FROM autodoctor.sessions s"
        " WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')"
        " ORDER BY s.created_at, s.id LIMIT 100 FOR UPDATE OF s SKIP LOCKED",
    )
    assert "sessions_orphans_idx" in plan, plan


def test_nearest_mechanic_search_is_a_gist_knn_scan(
    admin: psycopg.Connection[Any], loaded: dict[str, uuid.UUID]
) -> None:
    plan = _plan(
        admin,
        "SELECT m.user_id FROM autodoctor.mechanics m"
        " WHERE m.active AND m.online AND m.location IS NOT NULL"
        "   AND 'chat' = ANY (m.expertise) AND m.active_sessions < m.max_concurrent_sessions"
        "   AND m.market = 'default'"
        "   AND extensions.st_distance(m.location,"
        "         extensions.st_makepoint(2.5, 49)::extensions.geography)"
        "       <= (m.service_radius_km * 1000)::double precision"
        " ORDER BY m.location OPERATOR(extensions.<->)"
        "          extensions.st_makepoint(2.5, 49)::extensions.geography"
        " LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    assert "mechanics_location_idx" in plan, plan
    assert '"Order By"' in plan or "Order By" in plan, plan


def test_expiry_sweep_uses_the_pending_expiry_index(
    admin: psycopg.Connection[Any], loaded: dict[str, uuid.UUID]
) -> None:
    plan = _plan(
        admin,
        "SELECT r.id FROM autodoctor.session_requests r"
        " WHERE r.status = 'pending' AND r.expires_at <= now() ORDER BY r.expires_at",
    )
    assert "session_requests_pending_expiry_idx" in plan, plan


def test_the_pending_cap_counts_through_the_pending_customer_index(
    admin: psycopg.Connection[Any], loaded: dict[str, uuid.UUID], make_user: Any
) -> None:
    """The cap's count (create_session_request, submit_intake: the same statement) finds
    the customer's pending requests by session_requests_pending_customer_idx. Before it
    ANDed the customer's whole history (customer_id_idx) with the whole pending queue
    (pending_expiry_idx): ~150 index pages a create at 50,000 pending."""
    customer = make_user()
    admin.execute(
        "INSERT INTO autodoctor.session_requests (customer_id, session_type, plan_code, status,"
        "       created_at, expires_at, cancelled_at)"
        " SELECT %s, 'chat', 'free', 'cancelled', now() - g * interval '1 hour',"
        "        now() - g * interval '1 hour' + interval '1 day', now() - g * interval '1 hour'"
        "   FROM generate_series(1, 400) g",
        (customer,),
    )
    admin.execute("ANALYZE autodoctor.session_requests")
    plan = _plan(
        admin,
        "SELECT count(*) FROM autodoctor.session_requests r"
        " WHERE r.customer_id = %s AND r.status = 'pending' AND r.expires_at > now()",
        (customer,),
    )
    assert "session_requests_pending_customer_idx" in plan, plan
    assert "session_requests_pending_expiry_idx" not in plan, plan
    for fn in ("create_session_request", "submit_intake"):
        body = admin.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = %s::regproc", (f"autodoctor.{fn}",)
        ).fetchone()
        assert body is not None
        assert "WHERE r.customer_id = v_uid AND r.status = 'pending' AND r.expires_at > now()" in (
            " ".join(body[0].split())
        ), fn
