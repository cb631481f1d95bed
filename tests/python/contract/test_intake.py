"""Flow 2, fixed: the intake form becomes a request, never a session."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors

CAR = {"make": "Peugeot", "model": "208", "year": 2019, "vin": "VF3CCHMZ6KW012345"}


def test_submit_intake_writes_intake_and_request_but_no_session(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user("Ines Intake")
    with db.as_user(customer) as u:
        req = u.submit_intake(
            "diagnostic", "free", CAR, "Engine light on", latitude=48.85, longitude=2.35
        )
        assert req.intake_id is not None
        intake = u.get_intake(req.intake_id)
    assert req.status is ad.RequestStatus.PENDING and req.session_id is None
    assert (req.latitude, req.longitude) == (48.85, 2.35)
    assert intake is not None
    assert (intake.vehicle_make, intake.vehicle_model, intake.vehicle_year) == (
        "Peugeot",
        "208",
        2019,
    )
    assert intake.vin == CAR["vin"] and intake.concern == "Engine light on"
    assert admin.execute("SELECT count(*) FROM autodoctor.sessions").fetchone() == (0,)
    events = admin.execute(
        "SELECT event, detail->>'source' FROM autodoctor.session_events WHERE request_id = %s",
        (req.id,),
    ).fetchall()
    assert events == [("new_request", "intake")]


def test_submit_intake_then_accept_creates_session_with_intake(
    db: ad.Database, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer, mechanic = make_user(), make_mechanic(latitude=48.86, longitude=2.34)
    with db.as_user(customer) as u:
        req = u.submit_intake("video", "free", CAR, "Brakes", latitude=48.85, longitude=2.35)
    with db.as_user(mechanic) as m:
        incoming = m.incoming_requests()
        session = m.accept_session_request(req.id)
    assert [r.id for r in incoming] == [req.id]
    assert incoming[0].distance_km is not None and incoming[0].distance_km < 2
    assert session.intake_id == req.intake_id and session.request_id == req.id


def test_submit_intake_is_idempotent_per_key(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        first = u.submit_intake("chat", "free", CAR, "Noise", idempotency_key="form-1")
    with db.as_user(customer) as u:
        again = u.submit_intake("chat", "free", CAR, "Noise", idempotency_key="form-1")
    assert again.id == first.id
    assert admin.execute("SELECT count(*) FROM autodoctor.intakes").fetchone() == (1,)
    assert admin.execute("SELECT count(*) FROM autodoctor.session_requests").fetchone() == (1,)


@pytest.mark.parametrize(
    "changed",
    [
        {"vehicle": {**CAR, "model": "Fiesta"}},
        {"concern": "Rattle"},
        {"latitude": 48.85, "longitude": 2.35},
    ],
    ids=["vehicle", "concern", "location"],
)
def test_submit_intake_key_reused_for_a_different_form_conflicts(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    changed: dict[str, Any],
) -> None:
    customer = make_user()
    form: dict[str, Any] = {"vehicle": CAR, "concern": "Noise"}
    with db.as_user(customer) as u:
        u.submit_intake("chat", "free", idempotency_key="form-2", **form)
    with pytest.raises(errors.Conflict) as info, db.as_user(customer) as u:
        u.submit_intake("chat", "free", idempotency_key="form-2", **{**form, **changed})
    assert info.value.reason == "idempotency_key_reused"
    assert admin.execute("SELECT count(*) FROM autodoctor.intakes").fetchone() == (1,)


def test_submit_intake_key_used_by_plain_request_conflicts(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        u.create_session_request("chat", "free", idempotency_key="shared")
    with pytest.raises(errors.Conflict) as info, db.as_user(customer) as u:
        u.submit_intake("chat", "free", CAR, "Noise", idempotency_key="shared")
    assert info.value.reason == "idempotency_key_reused"
    assert admin.execute("SELECT count(*) FROM autodoctor.intakes").fetchone() == (0,)


NEXT_YEAR = dt.date.today().year + 1


@pytest.mark.parametrize(
    ("vehicle", "concern", "reason"),
    [
        ([], "x", "invalid_vehicle"),
        ({"model": "208", "year": 2019}, "x", "invalid_vehicle"),
        ({"make": "", "model": "208", "year": 2019}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": 208, "year": 2019}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": "208", "year": "2019"}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": "208", "year": 2019.5}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": "208", "year": 1899}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": "208", "year": NEXT_YEAR + 1}, "x", "invalid_vehicle"),
        ({"make": "Peugeot", "model": "208", "year": 2019, "vin": "SHORT"}, "x", "invalid_vehicle"),
        (
            {"make": "Peugeot", "model": "208", "year": 2019, "vin": "VF3CCHMZ6KW01234O"},
            "x",
            "invalid_vehicle",
        ),
        ({"make": "Peugeot", "model": "208", "year": 2019}, "", "invalid_concern"),
        ({"make": "Peugeot", "model": "208", "year": 2019}, "x" * 4001, "invalid_concern"),
    ],
)
def test_submit_intake_bad_input_is_22023_and_writes_nothing(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    vehicle: Any,
    concern: str,
    reason: str,
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_user()) as u:
        u.submit_intake("chat", "free", vehicle, concern)
    assert (info.value.sqlstate, info.value.reason) == ("22023", reason)
    for table in ("intakes", "session_requests", "session_events", "sessions"):
        assert admin.execute(f"SELECT count(*) FROM autodoctor.{table}").fetchone() == (0,)


def test_submit_intake_accepts_next_year_and_no_vin(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user()) as u:
        req = u.submit_intake(
            "chat", "free", {"make": "Kia", "model": "EV9", "year": NEXT_YEAR, "vin": None}, "x"
        )
    assert req.intake_id is not None


def test_submit_intake_bad_coordinates_is_22023(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_user()) as u:
        u.submit_intake("chat", "free", CAR, "x", latitude=45.0)
    assert info.value.reason == "invalid_coordinates"


def test_submit_intake_unknown_plan_is_22023(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_user(make_user()) as u:
        u.submit_intake("chat", "platinum", CAR, "x")
    assert info.value.reason == "unknown_plan"


def test_new_request_queues_email_for_eligible_online_mechanics_only(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    near = make_mechanic(latitude=48.85, longitude=2.35)
    far = make_mechanic(latitude=43.30, longitude=5.37, service_radius_km=20)  # Marseille
    offline = make_mechanic()
    chat_only = make_mechanic(expertise=["chat"])
    for m in (near, far, chat_only):
        with db.as_user(m) as c:
            c.set_mechanic_availability(True)
    with db.as_user(make_user()) as u:
        req = u.submit_intake("video", "free", CAR, "x", latitude=48.86, longitude=2.35)
    assert req.notification_sent_at is None  # nothing queued in the intake's transaction
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.notification_outbox WHERE request_id = %s", (req.id,)
    ).fetchone() == (0,)
    with db.as_service() as svc:  # the worker's claim fans the request out first
        svc.claim_notifications(10)
    queued = admin.execute(
        "SELECT mechanic_id FROM autodoctor.notification_outbox"
        " WHERE request_id = %s AND kind = 'new_request'",
        (req.id,),
    ).fetchall()
    assert [r[0] for r in queued] == [near]
    assert offline not in [r[0] for r in queued]
