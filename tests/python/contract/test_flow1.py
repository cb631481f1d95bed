"""Flow 1 through the driver: create, accept, cancel, availability, registration."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors


def test_create_session_request_returns_pending_request_with_expiry(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user("Carla Customer")
    with db.as_user(customer) as u:
        req = u.create_session_request("video", "free", notes="brakes squeal")
    assert req.status is ad.RequestStatus.PENDING
    assert req.session_type is ad.SessionType.VIDEO
    assert req.customer_id == customer
    assert req.customer_name == "Carla Customer"
    assert req.mechanic_id is None and req.session_id is None
    assert req.expires_at - req.created_at == __import__("datetime").timedelta(hours=24)


def test_create_session_request_names_customer_from_email_then_default(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    by_email = make_user("", email="nameless@example.test")
    nobody = make_user("")
    admin.execute("UPDATE auth.users SET email = NULL WHERE id = %s", (nobody,))
    with db.as_user(by_email) as u:
        assert u.create_session_request("chat", "free").customer_name == "nameless@example.test"
    with db.as_user(nobody) as u:
        assert u.create_session_request("chat", "free").customer_name == "Customer"


def test_create_session_request_same_idempotency_key_returns_same_request(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        first = u.create_session_request("chat", "free", idempotency_key="k-1")
    with db.as_user(customer) as u:
        again = u.create_session_request("chat", "free", idempotency_key="k-1")
    assert again.id == first.id
    count = admin.execute(
        "SELECT count(*) FROM autodoctor.session_requests WHERE customer_id = %s", (customer,)
    ).fetchone()
    events = admin.execute(
        "SELECT count(*) FROM autodoctor.session_events WHERE request_id = %s", (first.id,)
    ).fetchone()
    assert count == (1,) and events == (1,)


def test_create_session_request_reused_key_with_other_parameters_conflicts(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        u.create_session_request("chat", "free", idempotency_key="k-2")
    with pytest.raises(errors.Conflict) as info, db.as_user(customer) as u:
        u.create_session_request("video", "free", idempotency_key="k-2")
    assert info.value.reason == "idempotency_key_reused"


def test_idempotency_keys_are_per_customer(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    a, b = make_user(), make_user()
    with db.as_user(a) as u:
        ra = u.create_session_request("chat", "free", idempotency_key="same")
    with db.as_user(b) as u:
        rb = u.create_session_request("chat", "free", idempotency_key="same")
    assert ra.id != rb.id


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"session_type": "video", "plan_code": "gold"}, "unknown_plan"),
        ({"session_type": "diagnostic", "plan_code": "standard"}, "plan_forbids_type"),
        ({"session_type": "chat", "plan_code": "free", "notes": "x" * 2001}, "notes_too_long"),
        (
            {"session_type": "chat", "plan_code": "free", "idempotency_key": ""},
            "invalid_idempotency_key",
        ),
    ],
)
def test_create_session_request_bad_input_is_22023_and_writes_nothing(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    kwargs: dict[str, Any],
    reason: str,
) -> None:
    customer = make_user()
    with pytest.raises(errors.InvalidInput) as info, db.as_user(customer) as u:
        u.create_session_request(**kwargs)
    assert info.value.sqlstate == "22023"
    assert info.value.reason == reason
    assert admin.execute("SELECT count(*) FROM autodoctor.session_requests").fetchone() == (0,)
    assert admin.execute("SELECT count(*) FROM autodoctor.session_events").fetchone() == (0,)


def test_create_session_request_bad_enum_is_22p02(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_user()) as u:
        u.create_session_request("phone", "free")
    assert info.value.sqlstate == "22P02"


def test_create_session_request_without_jwt_sub_is_not_authenticated(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("SELECT autodoctor.create_session_request('chat', 'free')")
    assert info.value.diag.message_detail == "not_authenticated"
    assert isinstance(ad.errors.from_psycopg(info.value), errors.NotAuthenticated)


def test_create_session_request_as_service_role_is_forbidden(db: ad.Database) -> None:
    with pytest.raises(errors.Forbidden) as info, db.as_service() as svc:
        svc.create_session_request("chat", "free")
    assert info.value.sqlstate == "42501"


def test_anon_may_call_nothing(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT autodoctor.create_session_request('chat', 'free')")


def test_create_session_request_unknown_user_is_not_authenticated(db: ad.Database) -> None:
    with pytest.raises(errors.NotAuthenticated), db.as_user(uuid.uuid4()) as u:
        u.create_session_request("chat", "free")


def test_accept_session_request_creates_waiting_session_pointing_both_ways(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("diagnostic", "premium")
    with db.as_user(mechanic) as m:
        session = m.accept_session_request(req.id)
    assert session.status is ad.SessionStatus.WAITING
    assert session.mechanic_id == mechanic and session.customer_user_id == customer
    assert session.request_id == req.id and session.type is ad.SessionType.DIAGNOSTIC
    with db.as_user(customer) as u:
        after = u.get_session_request(req.id)
        mine = u.get_session(session.id)
    assert after is not None and after.status is ad.RequestStatus.ACCEPTED
    assert after.session_id == session.id and after.mechanic_id == mechanic
    assert mine is not None and mine.id == session.id


def test_accept_session_request_by_customer_is_not_mechanic(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    customer, other = make_user(), make_user()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    with pytest.raises(errors.NotMechanic) as info, db.as_user(other) as o:
        o.accept_session_request(req.id)
    assert info.value.sqlstate == "42501"


def test_accept_session_request_outside_expertise_is_not_qualified(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic(expertise=["chat"])
    with db.as_user(customer) as u:
        req = u.create_session_request("video", "free")
    with pytest.raises(errors.NotQualified), db.as_user(mechanic) as m:
        m.accept_session_request(req.id)


def test_accept_session_request_unknown_id_is_pt404(
    db: ad.Database, make_mechanic: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.NotFound) as info, db.as_user(make_mechanic()) as m:
        m.accept_session_request(uuid.uuid4())
    assert (info.value.sqlstate, info.value.reason) == ("PT404", "request_not_found")


def test_accept_session_request_malformed_uuid_is_22p02(
    db: ad.Database, make_mechanic: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_mechanic()) as m:
        m.accept_session_request("not-a-uuid")
    assert info.value.sqlstate == "22P02"


def test_accept_session_request_twice_is_request_not_pending(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    first, second = make_mechanic(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    with db.as_user(first) as m:
        m.accept_session_request(req.id)
    with pytest.raises(errors.RequestNotPending) as info, db.as_user(second) as m:
        m.accept_session_request(req.id)
    assert info.value.sqlstate == "PT409"


def test_accept_session_request_past_expiry_is_refused_without_scheduler(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (req.id,),
    )
    with db.as_user(mechanic) as m:
        assert m.incoming_requests() == []
    with pytest.raises(errors.RequestExpired) as info, db.as_user(mechanic) as m:
        m.accept_session_request(req.id)
    assert info.value.sqlstate == "PT409"
    status = admin.execute(
        "SELECT status FROM autodoctor.session_requests WHERE id = %s", (req.id,)
    ).fetchone()
    assert status == ("pending",)


def test_accept_session_request_at_capacity_is_capacity_reached(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic(max_concurrent_sessions=1)
    with db.as_user(customer) as u:
        r1 = u.create_session_request("chat", "free")
        r2 = u.create_session_request("chat", "free")
    with db.as_user(mechanic) as m:
        m.accept_session_request(r1.id)
    with pytest.raises(errors.CapacityReached), db.as_user(mechanic) as m:
        m.accept_session_request(r2.id)
    with db.as_user(customer) as u:
        still = u.get_session_request(r2.id)
    assert still is not None and still.status is ad.RequestStatus.PENDING


def test_accept_session_request_out_of_service_area_is_refused(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    customer = make_user()
    mechanic = make_mechanic(latitude=48.85, longitude=2.35, service_radius_km=10)  # Paris
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    admin.execute(  # a request located in Lyon, ~390 km away
        "UPDATE autodoctor.session_requests"
        " SET location = extensions.st_makepoint(4.83, 45.76)::extensions.geography WHERE id = %s",
        (req.id,),
    )
    with db.as_user(mechanic) as m:
        assert m.incoming_requests() == []
    with pytest.raises(errors.OutOfServiceArea), db.as_user(mechanic) as m:
        m.accept_session_request(req.id)


def test_cancel_session_request_by_owner_cancels_pending(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
        cancelled = u.cancel_session_request(req.id)
    assert cancelled.status is ad.RequestStatus.CANCELLED and cancelled.cancelled_at is not None


def test_cancel_session_request_of_another_customer_is_pt404(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    owner, other = make_user(), make_user()
    with db.as_user(owner) as u:
        req = u.create_session_request("chat", "free")
    with pytest.raises(errors.NotFound), db.as_user(other) as o:
        o.cancel_session_request(req.id)
    with pytest.raises(errors.NotFound), db.as_user(other) as o:
        o.cancel_session_request(uuid.uuid4())


def test_cancel_session_request_after_accept_is_request_not_pending(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    with db.as_user(mechanic) as m:
        m.accept_session_request(req.id)
    with pytest.raises(errors.RequestNotPending), db.as_user(customer) as u:
        u.cancel_session_request(req.id)


def test_accept_cancelled_request_is_request_not_pending(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
        u.cancel_session_request(req.id)
    with pytest.raises(errors.RequestNotPending), db.as_user(mechanic) as m:
        m.accept_session_request(req.id)


def test_register_mechanic_is_service_only(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    user = make_user()
    with pytest.raises(errors.Forbidden) as info, db.as_user(user) as u:
        u.register_mechanic(user)
    assert info.value.sqlstate == "42501"


def test_register_mechanic_defaults_offline_all_types(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    user = make_user()
    with db.as_service() as svc:
        mech = svc.register_mechanic(user, latitude=45.0, longitude=4.0)
    assert mech.active and not mech.online
    assert set(mech.expertise) == set(ad.SessionType)
    assert (mech.latitude, mech.longitude) == (45.0, 4.0)
    assert mech.max_concurrent_sessions == 1


def test_register_mechanic_unknown_user_is_pt404(db: ad.Database) -> None:
    with pytest.raises(errors.NotFound) as info, db.as_service() as svc:
        svc.register_mechanic(uuid.uuid4())
    assert info.value.reason == "user_not_found"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"expertise": []}, "invalid_expertise"),
        ({"latitude": 91.0, "longitude": 0.0}, "invalid_coordinates"),
        ({"latitude": 10.0}, "invalid_coordinates"),
        ({"service_radius_km": 0}, "invalid_service_radius"),
        ({"max_concurrent_sessions": 0}, "invalid_capacity"),
    ],
)
def test_register_mechanic_bad_input_is_22023(
    db: ad.Database, make_user: Callable[..., uuid.UUID], kwargs: dict[str, Any], reason: str
) -> None:
    user = make_user()
    with pytest.raises(errors.InvalidInput) as info, db.as_service() as svc:
        svc.register_mechanic(user, **kwargs)
    assert (info.value.sqlstate, info.value.reason) == ("22023", reason)


def test_set_mechanic_availability_goes_online_and_moves(
    db: ad.Database, make_mechanic: Callable[..., uuid.UUID]
) -> None:
    mechanic = make_mechanic(latitude=1.0, longitude=2.0)
    with db.as_user(mechanic) as m:
        online = m.set_mechanic_availability(True)
        moved = m.set_mechanic_availability(False, latitude=3.0, longitude=4.0)
    assert online.online and (online.latitude, online.longitude) == (1.0, 2.0)
    assert not moved.online and (moved.latitude, moved.longitude) == (3.0, 4.0)


def test_set_mechanic_availability_by_non_mechanic_is_42501(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.NotMechanic), db.as_user(make_user()) as u:
        u.set_mechanic_availability(True)


def test_set_mechanic_availability_bad_coordinates_is_22023(
    db: ad.Database, make_mechanic: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_mechanic()) as m:
        m.set_mechanic_availability(True, latitude=0.0, longitude=200.0)
    assert info.value.reason == "invalid_coordinates"


def test_incoming_requests_shows_eligible_pending_oldest_first(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    chat_only = make_mechanic(expertise=["chat"])
    with db.as_user(customer) as u:
        first = u.create_session_request("chat", "free")
        u.create_session_request("video", "free")
        third = u.create_session_request("chat", "free")
        cancelled = u.create_session_request("chat", "free")
        u.cancel_session_request(cancelled.id)
    with db.as_user(chat_only) as m:
        ids = [r.id for r in m.incoming_requests()]
    assert ids == [first.id, third.id]


def test_customer_sees_no_incoming_requests_and_not_others_requests(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    a, b = make_user(), make_user()
    with db.as_user(a) as u:
        req = u.create_session_request("chat", "free")
    with db.as_user(b) as u:
        assert u.incoming_requests() == []
        assert u.get_session_request(req.id) is None


def test_events_are_logged_and_broadcast_without_private_fields(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user("Private Name", email="private@example.test")
    mechanic = make_mechanic()
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN autodoctor")
        with db.as_user(customer) as u:
            req = u.create_session_request("chat", "free", notes="secret notes")
        with db.as_user(mechanic) as m:
            session = m.accept_session_request(req.id)
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert len(payloads) == 2
    for payload in payloads:
        for private in ("Private Name", "private@example.test", "secret notes"):
            assert private not in payload
    events = [ad.client.event_from_payload(p) for p in payloads]
    assert [e.event for e in events] == ["new_request", "request_accepted"]
    assert events[1].request_id == req.id and events[1].session_id == session.id
    assert events[0].id < events[1].id
    with db.as_service() as svc:
        logged = svc.events_after(0)
    assert [(e.id, e.event) for e in logged] == [(e.id, e.event) for e in events]
    assert logged[1].actor_id == mechanic and logged[1].to_status == "accepted"


def test_an_error_caught_inside_the_block_rolls_the_whole_transaction_back(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        u.create_session_request("chat", "free")
        with pytest.raises(errors.InvalidInput):
            u.create_session_request("chat", "no-such-plan")
    # Like COMMIT on a failed transaction: nothing of the block is kept, nothing raised.
    assert admin.execute("SELECT count(*) FROM autodoctor.session_requests").fetchone() == (0,)
    with db.as_user(customer) as u:  # the pooled connection is clean again
        assert u.create_session_request("chat", "free").status is ad.RequestStatus.PENDING


def test_the_largest_service_radius_reaches_the_antipode(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    """The longest geodesic on WGS 84 is 20,003.9 km (pole to pole): the largest radius a
    mechanic may set covers every point (20,000 km, the old cap, did not)."""
    mechanic = make_mechanic(latitude=90, longitude=0, service_radius_km=20040)
    with db.as_user(mechanic) as m:
        m.set_mechanic_availability(True)
    with db.as_user(make_user()) as u:
        req = u.submit_intake(
            "chat",
            "free",
            {"make": "Ford", "model": "Focus", "year": 2012},
            "noise",
            latitude=-90,
            longitude=0,
        )
    with db.as_user(mechanic) as m:
        assert [r.id for r in m.incoming_requests()] == [req.id]
        assert m.accept_session_request(req.id).request_id == req.id
    with pytest.raises(ad.errors.InvalidInput) as info, db.as_service() as svc:
        svc.register_mechanic(mechanic, service_radius_km=20041)
    assert info.value.reason == "invalid_service_radius"
