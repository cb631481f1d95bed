"""Every user can be erased: deleting from auth.users, as the owner or as Supabase Auth's
own role (which holds no privilege on schema autodoctor), succeeds, ends what the user
left open (logged), and keeps the other party's history without the erased identity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest


@pytest.fixture
def auth_admin(dsn: str, admin: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A connection as a role like supabase_auth_admin: the owner of auth.users (as on
    Supabase), with no privilege at all on schema autodoctor."""
    role = f"auth_admin_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE ROLE {role} LOGIN")
    admin.execute(f"GRANT USAGE, CREATE ON SCHEMA auth TO {role}")
    admin.execute(f"ALTER TABLE auth.users OWNER TO {role}")
    parts = [p for p in dsn.split() if not p.startswith(("user=", "password="))]
    try:
        with psycopg.connect(" ".join([*parts, f"user={role}"]), autocommit=True) as conn:
            assert conn.execute(
                "SELECT has_schema_privilege('autodoctor', 'USAGE')"
            ).fetchone() == (False,)
            yield conn
    finally:
        admin.execute(f"REASSIGN OWNED BY {role} TO current_user")
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")


def _accepted(db: ad.Database, customer: uuid.UUID, mechanic: uuid.UUID) -> uuid.UUID:
    with db.as_user(customer) as u:
        req = u.create_session_request("video", "free", notes="my car, my address")
    with db.as_user(mechanic) as m:
        return m.accept_session_request(req.id).id


def _load(admin: psycopg.Connection[Any], mechanic: uuid.UUID) -> int:
    row = admin.execute(
        "SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = %s", (mechanic,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_customer_with_open_and_finished_work_is_erased_by_supabase_auths_role(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    auth_admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user("Erased Customer")
    busy, done = make_mechanic(max_concurrent_sessions=3), make_mechanic()
    waiting = _accepted(db, customer, busy)
    finished = _accepted(db, customer, done)
    with db.as_user(done) as m:
        m.transition_session(finished, "live")
        m.transition_session(finished, "completed")
    with db.as_user(customer) as u:
        u.submit_intake(
            "chat", "free", {"make": "Ford", "model": "Focus", "year": 2012}, "brakes squeal"
        )
    assert _load(admin, busy) == 1

    auth_admin.execute("DELETE FROM auth.users WHERE id = %s", (customer,))

    assert _load(admin, busy) == 0
    rows = admin.execute(
        "SELECT id, status, cancel_reason, customer_user_id, customer_email, mechanic_id"
        " FROM autodoctor.sessions ORDER BY created_at"
    ).fetchall()
    assert rows == [
        (waiting, "cancelled", "customer_erased", None, None, busy),
        (finished, "completed", None, None, None, done),  # the mechanic's history
    ]
    requests = admin.execute(
        "SELECT status, customer_id, customer_name, customer_email, notes, intake_id"
        " FROM autodoctor.session_requests ORDER BY created_at"
    ).fetchall()
    assert requests == [
        ("accepted", None, None, None, None, None),
        ("accepted", None, None, None, None, None),
        ("cancelled", None, None, None, None, None),  # the intake's request, cancelled
    ]
    assert admin.execute("SELECT count(*) FROM autodoctor.intakes").fetchone() == (0,)
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.profiles WHERE id = %s", (customer,)
    ).fetchone() == (0,)
    logged = admin.execute(
        "SELECT event, detail->>'reason' FROM autodoctor.session_events"
        " WHERE detail->>'reason' = 'customer_erased' ORDER BY id"
    ).fetchall()
    assert logged == [
        ("request_cancelled", "customer_erased"),
        ("session_status_changed", "customer_erased"),
    ]
    # The mechanic still sees the completed session (the customer is gone from it).
    with db.as_user(done) as m:
        assert [s.id for s in m.my_sessions()] == [finished]


def test_a_mechanic_with_live_waiting_and_finished_sessions_is_erased(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    auth_admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    mechanic = make_mechanic(max_concurrent_sessions=3)
    customers = [make_user() for _ in range(3)]
    live, waiting, finished = (_accepted(db, c, mechanic) for c in customers)
    with db.as_user(mechanic) as m:
        m.transition_session(live, "live")
        m.transition_session(finished, "live")
        m.transition_session(finished, "completed")
        m.set_mechanic_availability(True)

    auth_admin.execute("DELETE FROM auth.users WHERE id = %s", (mechanic,))

    rows = dict(
        (r[0], r[1:])
        for r in admin.execute(
            "SELECT id, status, cancel_reason, mechanic_id FROM autodoctor.sessions"
        ).fetchall()
    )
    assert rows[live] == ("cancelled", "mechanic_erased", None)
    assert rows[waiting] == ("cancelled", "mechanic_erased", None)
    assert rows[finished] == ("completed", None, None)  # the customer's history
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.mechanics WHERE user_id = %s", (mechanic,)
    ).fetchone() == (0,)
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.notification_outbox WHERE mechanic_id = %s", (mechanic,)
    ).fetchone() == (0,)
    # The customers may ask again at once.
    with db.as_user(customers[0]) as u:
        assert u.create_session_request("video", "free").status.value == "pending"


def test_the_owner_erases_a_user_with_no_history(
    admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    quiet = make_user()
    admin.execute("DELETE FROM auth.users WHERE id = %s", (quiet,))
    assert admin.execute("SELECT count(*) FROM autodoctor.profiles").fetchone() == (0,)
