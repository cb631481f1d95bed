"""One definition of every call, shared by the sync and the async driver.

Each function here turns a method's arguments into a :class:`Call`: the literal query,
its parameters (always apart from the text), the dataclass its rows are built into, and
how the rows become the method's result. :class:`~autodoctor_db.client.Caller` and
:class:`~autodoctor_db.aio.AsyncCaller` only execute them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg.types.json import Jsonb

from . import queries
from .errors import AutodoctorError, InvalidInput
from .models import (
    Event,
    IncomingRequest,
    Intake,
    MaintenanceReport,
    Mechanic,
    MySession,
    Notification,
    OrphanedSession,
    Session,
    SessionRequest,
    SessionStatus,
    SessionType,
    Status,
    Violation,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A query to run, the row type to build, and how rows become the result."""

    query: str
    params: dict[str, Any]
    #: Dataclass for ``class_row``; ``None`` for plain tuples.
    row: type[Any] | None
    result: Callable[[list[Any]], T]


def _one(rows: list[Any]) -> Any:
    if not rows:  # pragma: no cover - every contract function returns a row or raises
        raise AutodoctorError("the function returned no row")
    return rows[0]


def _optional(rows: list[Any]) -> Any:
    return rows[0] if rows else None


def _rows(rows: list[Any]) -> Any:
    return rows


def _count(rows: list[Any]) -> int:
    return int(_one(rows)[0])


def _report(rows: list[Any]) -> MaintenanceReport:
    report = _one(rows)[0]
    return MaintenanceReport(
        expired_requests=int(report["expired_requests"]),
        cancelled_orphans=int(report["cancelled_orphans"]),
        auto_assigned=int(report["auto_assigned"]),
        converted_orphans=int(report["converted_orphans"]),
        duration_ms=float(report["duration_ms"]),
        partitions_created=int(report.get("partitions", {}).get("created", 0)),
        partitions_dropped=int(report.get("partitions", {}).get("dropped", 0)),
    )


def _type(value: SessionType | str) -> str:
    return value.value if isinstance(value, SessionType) else value


def as_uuid(value: UUID | str, name: str) -> UUID:
    """``value`` as a UUID, or :class:`~autodoctor_db.errors.InvalidInput` naming ``name``.

    Checked here, before anything is sent: a malformed id never reaches the server (whose
    refusal, 22P02, would abort the caller's transaction). The error carries the SQLSTATE
    the server would have given, ``22P02``, and no ``__cause__``.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
        shown = value if len(value) <= 60 else value[:57] + "..."
        message = f"{name} is not a valid uuid: {shown!r}"
    else:
        message = f"{name} must be a UUID or its text, not {type(value).__name__}"
    raise InvalidInput(message, sqlstate="22P02")


def _id(value: UUID | str, name: str) -> str:
    return str(as_uuid(value, name))


# --- customer ----------------------------------------------------------------------------


def create_session_request(
    session_type: SessionType | str,
    plan_code: str,
    notes: str | None,
    idempotency_key: str | None,
) -> Call[SessionRequest]:
    return Call(
        queries.CREATE_SESSION_REQUEST,
        {
            "session_type": _type(session_type),
            "plan_code": plan_code,
            "notes": notes,
            "idempotency_key": idempotency_key,
        },
        SessionRequest,
        _one,
    )


def cancel_session_request(request_id: UUID | str) -> Call[SessionRequest]:
    return Call(
        queries.CANCEL_SESSION_REQUEST,
        {"request_id": _id(request_id, "request_id")},
        SessionRequest,
        _one,
    )


def submit_intake(
    session_type: SessionType | str,
    plan_code: str,
    vehicle: Any,
    concern: str,
    latitude: float | None,
    longitude: float | None,
    idempotency_key: str | None,
) -> Call[SessionRequest]:
    return Call(
        queries.SUBMIT_INTAKE,
        {
            "session_type": _type(session_type),
            "plan_code": plan_code,
            "vehicle": Jsonb(vehicle),
            "concern": concern,
            "latitude": latitude,
            "longitude": longitude,
            "idempotency_key": idempotency_key,
        },
        SessionRequest,
        _one,
    )


def transition_session(session_id: UUID | str, to_status: SessionStatus | str) -> Call[Session]:
    status = to_status.value if isinstance(to_status, SessionStatus) else to_status
    return Call(
        queries.TRANSITION_SESSION,
        {"session_id": _id(session_id, "session_id"), "to_status": status},
        Session,
        _one,
    )


# --- mechanic ----------------------------------------------------------------------------


def accept_session_request(request_id: UUID | str) -> Call[Session]:
    return Call(
        queries.ACCEPT_SESSION_REQUEST, {"request_id": _id(request_id, "request_id")}, Session, _one
    )


def claim_orphaned_session(session_id: UUID | str) -> Call[Session]:
    return Call(
        queries.CLAIM_ORPHANED_SESSION, {"session_id": _id(session_id, "session_id")}, Session, _one
    )


def set_mechanic_availability(
    online: bool, latitude: float | None, longitude: float | None
) -> Call[Mechanic]:
    return Call(
        queries.SET_MECHANIC_AVAILABILITY,
        {"online": online, "latitude": latitude, "longitude": longitude},
        Mechanic,
        _one,
    )


def incoming_requests(limit: int) -> Call[list[IncomingRequest]]:
    """The limit goes into the text as a literal (see ``queries.INCOMING_REQUESTS``), so
    it is checked here: an ``int`` from 0 up, else ``InvalidInput`` before anything is
    sent (22023, as a negative LIMIT would be refused by the server)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(
            f"limit must be a whole number from 0 up, not {limit!r}", sqlstate="22023"
        )
    return Call(queries.INCOMING_REQUESTS.format(limit=limit), {}, IncomingRequest, _rows)


# --- operations --------------------------------------------------------------------------


def register_mechanic(
    user_id: UUID | str,
    expertise: Sequence[SessionType | str] | None,
    latitude: float | None,
    longitude: float | None,
    service_radius_km: float | Decimal,
    max_concurrent_sessions: int,
) -> Call[Mechanic]:
    types = (
        [_type(t) for t in expertise] if expertise is not None else [t.value for t in SessionType]
    )
    return Call(
        queries.REGISTER_MECHANIC,
        {
            "user_id": _id(user_id, "user_id"),
            "expertise": types,
            "latitude": latitude,
            "longitude": longitude,
            "service_radius_km": service_radius_km,
            "max_concurrent_sessions": max_concurrent_sessions,
        },
        Mechanic,
        _one,
    )


def expire_stale_requests() -> Call[int]:
    return Call(queries.EXPIRE_STALE_REQUESTS, {}, None, _count)


def convert_orphaned_sessions() -> Call[int]:
    return Call(queries.CONVERT_ORPHANED_SESSIONS, {}, None, _count)


def auto_assign_orphaned_sessions(batch_size: int) -> Call[int]:
    return Call(queries.AUTO_ASSIGN_ORPHANED_SESSIONS, {"batch_size": batch_size}, None, _count)


def cancel_orphaned_sessions(older_than: timedelta) -> Call[int]:
    return Call(queries.CANCEL_ORPHANED_SESSIONS, {"older_than": older_than}, None, _count)


def run_maintenance() -> Call[MaintenanceReport]:
    return Call(queries.RUN_MAINTENANCE, {}, None, _report)


def check_invariants() -> Call[list[Violation]]:
    return Call(queries.CHECK_INVARIANTS, {}, Violation, _rows)


def claim_notifications(batch_size: int) -> Call[list[Notification]]:
    return Call(queries.CLAIM_NOTIFICATIONS, {"batch_size": batch_size}, Notification, _rows)


def complete_notification(
    notification_id: int, error: str | None, max_attempts: int
) -> Call[Notification]:
    return Call(
        queries.COMPLETE_NOTIFICATION,
        {"notification_id": notification_id, "error": error, "max_attempts": max_attempts},
        Notification,
        _one,
    )


def relay_events() -> Call[int]:
    return Call(queries.RELAY_EVENTS, {}, None, _count)


def _int(rows: list[Any]) -> int:
    return int(_one(rows)[0])


def fan_out_new_requests(batch_size: int) -> Call[int]:
    return Call(queries.FAN_OUT_NEW_REQUESTS, {"batch_size": batch_size}, None, _int)


def event_watermark() -> Call[int]:
    return Call(queries.EVENT_WATERMARK, {}, None, _int)


def _text(rows: list[Any]) -> str:
    return str(_one(rows)[0])


def set_notify_mode(mode: str) -> Call[str]:
    return Call(queries.SET_NOTIFY_MODE, {"mode": mode}, None, _text)


def orphaned_sessions(limit: int) -> Call[list[OrphanedSession]]:
    return Call(queries.ORPHANED_SESSIONS, {"limit": limit}, OrphanedSession, _rows)


def status() -> Call[Status]:
    return Call(queries.STATUS_COUNTS, {}, Status, _one)


def pending_requests(limit: int) -> Call[list[SessionRequest]]:
    return Call(queries.PENDING_REQUESTS, {"limit": limit}, SessionRequest, _rows)


# --- reads through row-level security ------------------------------------------------------


def my_sessions(limit: int) -> Call[list[MySession]]:
    return Call(queries.MY_SESSIONS, {"limit": limit}, MySession, _rows)


def get_intake(intake_id: UUID | str) -> Call[Intake | None]:
    return Call(queries.GET_INTAKE, {"intake_id": _id(intake_id, "intake_id")}, Intake, _optional)


def get_session_request(request_id: UUID | str) -> Call[SessionRequest | None]:
    return Call(
        queries.GET_SESSION_REQUEST,
        {"request_id": _id(request_id, "request_id")},
        SessionRequest,
        _optional,
    )


def get_session(session_id: UUID | str) -> Call[Session | None]:
    return Call(
        queries.GET_SESSION, {"session_id": _id(session_id, "session_id")}, Session, _optional
    )


def events_after(after: int, limit: int) -> Call[list[Event]]:
    return Call(queries.EVENTS_AFTER, {"after": after, "limit": limit}, Event, _rows)
