"""Repairing legacy orphans: convert, claim, auto-assign, cancel, expire, run_maintenance."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors


def _session(admin: psycopg.Connection[Any], session_id: uuid.UUID) -> tuple[Any, ...]:
    row = admin.execute(
        "SELECT status::text, mechanic_id, request_id, cancel_reason FROM autodoctor.sessions"
        " WHERE id = %s",
        (session_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _online(db: ad.Database, *mechanics: uuid.UUID) -> None:
    for m in mechanics:
        with db.as_user(m) as c:
            c.set_mechanic_availability(True)


@pytest.mark.allow_orphans
def test_orphaned_sessions_view_lists_active_orphans_for_service_only(
    db: ad.Database, make_user: Callable[..., uuid.UUID], seed_orphan: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    pending = seed_orphan(customer, status="pending")
    live = seed_orphan(customer, status="live")
    seed_orphan(customer, status="cancelled")
    with db.as_service() as svc:
        rows = svc.orphaned_sessions()
    assert {r.id for r in rows} == {pending, live}
    with pytest.raises(errors.Forbidden), db.as_user(customer) as u:
        u.orphaned_sessions()


def test_convert_orphaned_sessions_is_idempotent_and_accept_keeps_session_id(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer, mechanic = make_user("Old Customer"), make_mechanic()
    pending = seed_orphan(customer, status="pending")
    live = seed_orphan(customer, status="live", plan="legacy_gold")
    with db.as_service() as svc:
        assert svc.convert_orphaned_sessions() == 2
        assert svc.convert_orphaned_sessions() == 0
        orphans = {o.id: o for o in svc.orphaned_sessions()}
    assert orphans[pending].pending_request_id is not None
    with db.as_user(customer) as u:
        req = u.get_session_request(orphans[live].pending_request_id)  # type: ignore[arg-type]
    assert req is not None and req.session_id == live and req.plan_code == "free"
    assert req.customer_name == "Old Customer"
    with db.as_user(mechanic) as m:
        s_pending = m.accept_session_request(orphans[pending].pending_request_id)  # type: ignore[arg-type]
    with db.as_user(make_mechanic()) as m2:
        s_live = m2.accept_session_request(req.id)
    assert s_pending.id == pending and s_pending.status is ad.SessionStatus.WAITING
    assert s_live.id == live and s_live.status is ad.SessionStatus.LIVE
    assert admin.execute("SELECT count(*) FROM autodoctor.sessions").fetchone() == (2,)


def test_convert_cancels_orphan_without_customer(
    db: ad.Database, seed_orphan: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    orphan = seed_orphan(None, status="live")
    with db.as_service() as svc:
        assert svc.convert_orphaned_sessions() == 0
    assert _session(admin, orphan)[0::3] == ("cancelled", "no_customer")


def test_cancelling_converted_request_cancels_its_orphan(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer = make_user()
    orphan = seed_orphan(customer)
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
        request_id = svc.orphaned_sessions()[0].pending_request_id
    with db.as_user(customer) as u:
        u.cancel_session_request(request_id)  # type: ignore[arg-type]
    assert _session(admin, orphan)[0] == "cancelled"


def test_claim_orphaned_session_assigns_and_accepts_converted_request(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    orphan = seed_orphan(customer)
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
    with db.as_user(mechanic) as m:
        session = m.claim_orphaned_session(orphan)
    assert session.id == orphan and session.mechanic_id == mechanic
    assert session.status is ad.SessionStatus.WAITING and session.request_id is not None
    status = admin.execute(
        "SELECT status::text, mechanic_id FROM autodoctor.session_requests WHERE id = %s",
        (session.request_id,),
    ).fetchone()
    assert status == ("accepted", mechanic)


def test_claim_live_orphan_stays_live(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    orphan = seed_orphan(make_user(), status="live")
    with db.as_user(make_mechanic()) as m:
        assert m.claim_orphaned_session(orphan).status is ad.SessionStatus.LIVE


@pytest.mark.allow_orphans
def test_claim_errors(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    chat_only = make_mechanic(expertise=["chat"])
    busy = make_mechanic(max_concurrent_sessions=1)
    video = seed_orphan(customer, session_type="video")
    with pytest.raises(errors.NotMechanic), db.as_user(customer) as u:
        u.claim_orphaned_session(video)
    with pytest.raises(errors.NotFound), db.as_user(busy) as m:
        m.claim_orphaned_session(uuid.uuid4())
    with pytest.raises(errors.NotQualified), db.as_user(chat_only) as m:
        m.claim_orphaned_session(video)
    with db.as_user(busy) as m:
        m.claim_orphaned_session(video)
    with pytest.raises(errors.Conflict) as info, db.as_user(make_mechanic()) as m:
        m.claim_orphaned_session(video)
    assert info.value.reason == "session_not_claimable"
    with pytest.raises(errors.CapacityReached), db.as_user(busy) as m:
        m.claim_orphaned_session(seed_orphan(customer, session_type="chat"))


@pytest.mark.allow_orphans
def test_auto_assign_picks_nearest_online_qualified_mechanic(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    near = make_mechanic(latitude=48.86, longitude=2.35)  # ~1 km
    nearer_offline = make_mechanic(latitude=48.851, longitude=2.35)
    nearer_chat_only = make_mechanic(latitude=48.851, longitude=2.351, expertise=["chat"])
    far = make_mechanic(latitude=48.95, longitude=2.35)  # ~11 km
    _online(db, near, nearer_chat_only, far)
    orphan = seed_orphan(make_user(), latitude=48.85, longitude=2.35, session_type="video")
    with db.as_service() as svc:
        assert svc.auto_assign_orphaned_sessions() == 1
    assert _session(admin, orphan)[:2] == ("waiting", near)
    assert nearer_offline != near
    mail = admin.execute(
        "SELECT mechanic_id FROM autodoctor.notification_outbox WHERE kind = 'session_assigned'"
    ).fetchall()
    assert mail == [(near,)]


def test_auto_assign_without_location_prefers_least_loaded_and_respects_capacity(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    a = make_mechanic(max_concurrent_sessions=2)
    b = make_mechanic(max_concurrent_sessions=1)
    _online(db, a, b)
    customer = make_user()
    orphans = [seed_orphan(customer) for _ in range(4)]
    with db.as_service() as svc:
        assert svc.auto_assign_orphaned_sessions() == 3
        assert svc.convert_orphaned_sessions() == 1
    loads = dict(
        admin.execute("SELECT user_id, active_sessions FROM autodoctor.mechanics").fetchall()
    )
    assert loads == {a: 2, b: 1}
    assigned = [_session(admin, o)[1] for o in orphans]
    assert assigned.count(None) == 1


@pytest.mark.allow_orphans
def test_auto_assign_leaves_orphans_when_nobody_is_online(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    make_mechanic()  # registered but offline
    seed_orphan(make_user())
    with db.as_service() as svc:
        assert svc.auto_assign_orphaned_sessions() == 0


def test_auto_assign_bad_batch_size_is_22023(db: ad.Database) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_service() as svc:
        svc.auto_assign_orphaned_sessions(0)
    assert info.value.reason == "invalid_batch_size"


def test_cancel_orphaned_sessions_cancels_old_ones_never_deletes(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer = make_user()
    old = seed_orphan(customer, age="3 days", status="live")
    young = seed_orphan(customer, age="2 hours")
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
        assert svc.cancel_orphaned_sessions() == 1
    assert _session(admin, old)[0::3] == ("cancelled", "orphaned")
    assert _session(admin, young)[0] == "pending"
    assert admin.execute("SELECT count(*) FROM autodoctor.sessions").fetchone() == (2,)
    statuses = admin.execute(
        "SELECT status::text FROM autodoctor.session_requests WHERE session_id = %s", (old,)
    ).fetchall()
    assert statuses == [("cancelled",)]
    with db.as_service() as svc:
        assert svc.cancel_orphaned_sessions(dt.timedelta(0)) == 1
    with pytest.raises(errors.InvalidInput), db.as_service() as svc:
        svc.cancel_orphaned_sessions(dt.timedelta(days=-1))


def test_expire_stale_requests_expires_and_cancels_converted_orphan(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer = make_user()
    orphan = seed_orphan(customer)
    with db.as_user(customer) as u:
        fresh = u.create_session_request("chat", "free")
        stale = u.create_session_request("chat", "free")
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 minute'"
        " WHERE id = %s OR session_id = %s",
        (stale.id, orphan),
    )
    with db.as_service() as svc:
        assert svc.expire_stale_requests() == 2
        assert svc.expire_stale_requests() == 0
    with db.as_user(customer) as u:
        s = u.get_session_request(stale.id)
        f = u.get_session_request(fresh.id)
    assert s is not None and s.status is ad.RequestStatus.EXPIRED and s.expired_at is not None
    assert f is not None and f.status is ad.RequestStatus.PENDING
    assert _session(admin, orphan)[0::3] == ("cancelled", "request_expired")
    with pytest.raises(errors.RequestExpired), db.as_user(make_mechanic()) as m:
        m.accept_session_request(stale.id)


def test_request_ttl_comes_from_settings(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    admin.execute("UPDATE autodoctor.settings SET request_ttl = interval '90 minutes'")
    with db.as_user(make_user()) as u:
        req = u.create_session_request("chat", "free")
    assert req.expires_at - req.created_at == dt.timedelta(minutes=90)


def test_run_maintenance_repairs_any_seeded_legacy_data(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    helper = make_mechanic(latitude=48.85, longitude=2.35, max_concurrent_sessions=2)
    _online(db, helper)
    customers = [make_user() for _ in range(3)]
    seed_orphan(customers[0], age="5 days")
    seed_orphan(customers[1], age="3 days", status="live")
    seed_orphan(customers[2], latitude=48.851, longitude=2.351)
    seed_orphan(customers[2], latitude=48.852, longitude=2.352, status="live")
    seed_orphan(customers[0], session_type="diagnostic")
    seed_orphan(None)
    with db.as_user(customers[0]) as u:
        stale = u.create_session_request("chat", "free")
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (stale.id,),
    )
    with db.as_service() as svc:
        before = svc.check_invariants()
        report = svc.run_maintenance()
        after = svc.check_invariants()
        again = svc.run_maintenance()
    assert {v.invariant for v in before} == {"orphan_without_pending_request"}
    assert report.expired_requests == 1
    assert report.cancelled_orphans == 2
    assert report.auto_assigned == 2
    assert report.converted_orphans == 1
    assert after == []
    assert (again.expired_requests, again.cancelled_orphans, again.auto_assigned) == (0, 0, 0)
    assert again.converted_orphans == 0


def _claim_vs_assign_trial(
    db: ad.Database,
    dsn: str,
    customer: uuid.UUID,
    claimers: list[uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    orphans = [seed_orphan(customer, session_type="chat") for _ in range(4)]
    barrier = threading.Barrier(2 + len(claimers))
    outcomes: list[object] = []

    def assign() -> None:
        with db.as_service() as svc:
            barrier.wait(10)
            outcomes.append(svc.auto_assign_orphaned_sessions(10))

    def claim(mechanic: uuid.UUID) -> None:
        for orphan in orphans:
            try:
                with db.as_user(mechanic) as m:
                    if orphan == orphans[0]:
                        barrier.wait(10)
                    outcomes.append(m.claim_orphaned_session(orphan))
            except (errors.Conflict, errors.CapacityReached) as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=assign) for _ in range(2)]
    threads += [threading.Thread(target=claim, args=(c,)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Every call returned or raised a contract conflict: no deadlock, no other error.
    assert len(outcomes) == 2 + len(claimers) * len(orphans), outcomes
    with psycopg.connect(dsn) as conn:
        events = conn.execute(
            "SELECT session_id, count(*) FROM autodoctor.session_events"
            " WHERE event = 'session_assigned' AND session_id = ANY(%s) GROUP BY session_id",
            (orphans,),
        ).fetchall()
    assert all(n == 1 for _, n in events), events


@pytest.mark.direct_only
def test_parallel_auto_assign_and_claims_never_double_assign(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    pool = [make_mechanic(max_concurrent_sessions=100, expertise=["chat"]) for _ in range(3)]
    _online(db, *pool)
    claimers = [make_mechanic(max_concurrent_sessions=100) for _ in range(2)]
    for _ in range(30):
        _claim_vs_assign_trial(db, dsn, customer, claimers, seed_orphan)
    with db.as_service() as svc:
        assert svc.orphaned_sessions() == []


def test_a_customer_cannot_end_a_live_orphan_by_cancelling_its_converted_request(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """transition_session refuses live -> cancelled to the customer; so does cancelling the
    pending request that conversion made for a live orphan (it used to cancel the session)."""
    customer = make_user()
    live = seed_orphan(customer, status="live")
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
    request = admin.execute(
        "SELECT id FROM autodoctor.session_requests WHERE session_id = %s", (live,)
    ).fetchone()
    assert request is not None
    with pytest.raises(ad.errors.Forbidden) as info, db.as_user(customer) as u:
        u.cancel_session_request(request[0])
    assert info.value.reason == "not_your_transition"
    assert admin.execute(
        "SELECT s.status, r.status FROM autodoctor.sessions s"
        " JOIN autodoctor.session_requests r ON r.session_id = s.id WHERE s.id = %s",
        (live,),
    ).fetchone() == ("live", "pending")


def test_claiming_an_orphan_whose_converted_request_expired_is_refused(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """As accepting that request is (it used to be marked accepted, an hour late)."""
    orphan = seed_orphan(make_user())
    with db.as_service() as svc:
        svc.convert_orphaned_sessions()
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 hour'"
        " WHERE session_id = %s",
        (orphan,),
    )
    mechanic = make_mechanic()
    with pytest.raises(errors.RequestExpired), db.as_user(mechanic) as m:
        m.claim_orphaned_session(orphan)
    assert admin.execute(
        "SELECT s.status, s.mechanic_id, r.status FROM autodoctor.sessions s"
        " JOIN autodoctor.session_requests r ON r.session_id = s.id WHERE s.id = %s",
        (orphan,),
    ).fetchone() == ("pending", None, "pending")
    with db.as_service() as svc:  # the sweep closes it, as for any expired request
        svc.run_maintenance()
    assert admin.execute(
        "SELECT status FROM autodoctor.sessions WHERE id = %s", (orphan,)
    ).fetchone() == ("cancelled",)


def test_claiming_an_orphan_that_points_at_its_original_request_keeps_the_invariants(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """A legacy session that lost its mechanic but still points at the request it was born
    of: conversion gives it a new pending request; claiming it used to accept that new
    request with no session pointing at it. Now the session keeps its own request and the
    converted one is cancelled, logged."""
    customer, first, second = make_user(), make_mechanic(), make_mechanic()
    with db.as_user(customer) as u:
        original = u.create_session_request("video", "free")
    with db.as_user(first) as m:
        session = m.accept_session_request(original.id)
        m.transition_session(session.id, "live")
    # The damage the old app could leave: the mechanic gone from a live session.
    admin.execute("UPDATE autodoctor.sessions SET mechanic_id = NULL WHERE id = %s", (session.id,))
    with db.as_service() as svc:
        assert svc.convert_orphaned_sessions() == 1
    converted = admin.execute(
        "SELECT id FROM autodoctor.session_requests WHERE session_id = %s AND status = 'pending'",
        (session.id,),
    ).fetchone()
    assert converted is not None
    with db.as_user(second) as m:
        claimed = m.claim_orphaned_session(session.id)
    assert (claimed.mechanic_id, claimed.request_id) == (second, original.id)
    assert admin.execute(
        "SELECT status FROM autodoctor.session_requests WHERE id = %s", (converted[0],)
    ).fetchone() == ("cancelled",)
    assert admin.execute(
        "SELECT event, detail->>'reason' FROM autodoctor.session_events"
        " WHERE request_id = %s ORDER BY id DESC LIMIT 1",
        (converted[0],),
    ).fetchone() == ("request_cancelled", "session_keeps_its_request")
    # (The invariant check after every test covers the rest.)
