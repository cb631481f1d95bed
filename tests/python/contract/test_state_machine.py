"""The session state machine: every allowed and forbidden move, who may make it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors

ALLOWED = {
    ("pending", "scheduled"),
    ("pending", "waiting"),
    ("pending", "cancelled"),
    ("scheduled", "waiting"),
    ("scheduled", "cancelled"),
    ("waiting", "live"),
    ("waiting", "cancelled"),
    ("live", "completed"),
    ("live", "cancelled"),
}
STATES = [s.value for s in ad.SessionStatus]


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(STATES, 2)))
def test_direct_update_follows_state_machine(
    admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID], src: str, dst: str
) -> None:
    mechanic = make_user()
    row = admin.execute(
        "INSERT INTO autodoctor.sessions (customer_user_id, mechanic_id, plan, type, status)"
        " VALUES (%s, %s, 'free', 'chat', %s) RETURNING id",
        (make_user(), mechanic, src),
    ).fetchone()
    assert row is not None
    if (src, dst) in ALLOWED:
        admin.execute("UPDATE autodoctor.sessions SET status = %s WHERE id = %s", (dst, row[0]))
    else:
        with pytest.raises(psycopg.Error) as info:
            admin.execute("UPDATE autodoctor.sessions SET status = %s WHERE id = %s", (dst, row[0]))
        assert info.value.sqlstate == "PT409"
        assert info.value.diag.message_detail == "invalid_transition"


def test_session_without_mechanic_cannot_start_waiting(
    admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    row = admin.execute(
        "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
        " VALUES (%s, 'free', 'chat', 'pending') RETURNING id",
        (make_user(),),
    ).fetchone()
    assert row is not None
    with pytest.raises(psycopg.Error) as info:
        admin.execute("UPDATE autodoctor.sessions SET status = 'waiting' WHERE id = %s", (row[0],))
    assert info.value.diag.message_detail == "mechanic_required"
    admin.execute("UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = %s", (row[0],))


@pytest.fixture
def accepted(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> tuple[uuid.UUID, uuid.UUID, ad.Session]:
    customer, mechanic = make_user(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("video", "free")
    with db.as_user(mechanic) as m:
        session = m.accept_session_request(req.id)
    return customer, mechanic, session


def test_mechanic_starts_and_completes_session(
    db: ad.Database,
    accepted: tuple[uuid.UUID, uuid.UUID, ad.Session],
    admin: psycopg.Connection[Any],
) -> None:
    _, mechanic, session = accepted
    with db.as_user(mechanic) as m:
        live = m.transition_session(session.id, "live")
        done = m.transition_session(session.id, ad.SessionStatus.COMPLETED)
    assert live.status is ad.SessionStatus.LIVE and live.started_at is not None
    assert done.status is ad.SessionStatus.COMPLETED and done.ended_at is not None
    assert done.duration_minutes is not None and done.duration_minutes >= 0
    events = admin.execute(
        "SELECT from_status, to_status FROM autodoctor.session_events"
        " WHERE session_id = %s AND event = 'session_status_changed' ORDER BY id",
        (session.id,),
    ).fetchall()
    assert events == [("waiting", "live"), ("live", "completed")]
    load = admin.execute(
        "SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = %s", (mechanic,)
    ).fetchone()
    assert load == (0,)


def test_customer_cancels_before_live(
    db: ad.Database, accepted: tuple[uuid.UUID, uuid.UUID, ad.Session]
) -> None:
    customer, _, session = accepted
    with db.as_user(customer) as u:
        cancelled = u.transition_session(session.id, "cancelled")
    assert cancelled.status is ad.SessionStatus.CANCELLED
    assert cancelled.cancel_reason == "cancelled_by_customer"


def test_customer_cannot_cancel_live_session(
    db: ad.Database, accepted: tuple[uuid.UUID, uuid.UUID, ad.Session]
) -> None:
    customer, mechanic, session = accepted
    with db.as_user(mechanic) as m:
        m.transition_session(session.id, "live")
    with pytest.raises(errors.Forbidden) as info, db.as_user(customer) as u:
        u.transition_session(session.id, "cancelled")
    assert (info.value.sqlstate, info.value.reason) == ("42501", "not_your_transition")


def test_customer_cannot_start_session(
    db: ad.Database, accepted: tuple[uuid.UUID, uuid.UUID, ad.Session]
) -> None:
    customer, _, session = accepted
    with pytest.raises(errors.Forbidden) as info, db.as_user(customer) as u:
        u.transition_session(session.id, "live")
    assert info.value.reason == "not_your_transition"


def test_illegal_transition_is_pt409_invalid_transition(
    db: ad.Database, accepted: tuple[uuid.UUID, uuid.UUID, ad.Session]
) -> None:
    _, mechanic, session = accepted
    with pytest.raises(errors.InvalidTransition) as info, db.as_user(mechanic) as m:
        m.transition_session(session.id, "completed")
    assert info.value.sqlstate == "PT409"


def test_completed_is_final(
    db: ad.Database, accepted: tuple[uuid.UUID, uuid.UUID, ad.Session]
) -> None:
    _, mechanic, session = accepted
    with db.as_user(mechanic) as m:
        m.transition_session(session.id, "live")
        m.transition_session(session.id, "completed")
    for target in ("live", "cancelled", "waiting"):
        with pytest.raises(errors.InvalidTransition), db.as_user(mechanic) as m:
            m.transition_session(session.id, target)


def test_stranger_gets_pt404_for_session(
    db: ad.Database,
    accepted: tuple[uuid.UUID, uuid.UUID, ad.Session],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    _, _, session = accepted
    for stranger in (make_user(), make_mechanic()):
        with pytest.raises(errors.NotFound) as info, db.as_user(stranger) as s:
            s.transition_session(session.id, "cancelled")
        assert info.value.reason == "session_not_found"
    with pytest.raises(errors.NotFound), db.as_user(make_user()) as s:
        s.transition_session(uuid.uuid4(), "live")


def test_my_sessions_shows_both_sides(
    db: ad.Database,
    accepted: tuple[uuid.UUID, uuid.UUID, ad.Session],
    make_user: Callable[..., uuid.UUID],
) -> None:
    customer, mechanic, session = accepted
    with db.as_user(customer) as u:
        mine = u.my_sessions()
    with db.as_user(mechanic) as m:
        theirs = m.my_sessions()
    with db.as_user(make_user()) as other:
        nothing = other.my_sessions()
    assert [(s.id, s.my_role) for s in mine] == [(session.id, "customer")]
    assert [(s.id, s.my_role) for s in theirs] == [(session.id, "mechanic")]
    assert nothing == []


def test_completing_frees_capacity(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic(max_concurrent_sessions=1)
    with db.as_user(customer) as u:
        r1 = u.create_session_request("chat", "free")
        r2 = u.create_session_request("chat", "free")
    with db.as_user(mechanic) as m:
        s1 = m.accept_session_request(r1.id)
    with pytest.raises(errors.CapacityReached), db.as_user(mechanic) as m:
        m.accept_session_request(r2.id)
    with db.as_user(mechanic) as m:
        m.transition_session(s1.id, "live")
        m.transition_session(s1.id, "completed")
        s2 = m.accept_session_request(r2.id)
    assert s2.request_id == r2.id
