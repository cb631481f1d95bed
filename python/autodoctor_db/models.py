"""Typed rows returned by the driver: frozen, slotted dataclasses with Python enums.

The enums are ``str`` enums: a member equals its text (``SessionStatus.LIVE == "live"``),
and ``str()`` and f-strings give that text too (``f"{event.event}"`` is ``new_request``).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from psycopg.rows import BaseRowFactory, RowMaker

from .errors import InvalidInput

T = TypeVar("T")


class _TextEnum(str, enum.Enum):
    """A ``str`` enum whose ``str()`` and format are its value on every Python version."""

    def __str__(self) -> str:
        return str(self.value)


class SessionType(_TextEnum):
    """Kind of session a customer asks for."""

    CHAT = "chat"
    VIDEO = "video"
    DIAGNOSTIC = "diagnostic"


class SessionStatus(_TextEnum):
    """Session state (the state machine's states)."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    LIVE = "live"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RequestStatus(_TextEnum):
    """Session-request state."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class EventName(_TextEnum):
    """What an entry of the event log records (``session_events.event``; docs/design.md,
    "Events")."""

    #: A customer asked for a session (``create_session_request``, ``submit_intake``).
    NEW_REQUEST = "new_request"
    #: A mechanic accepted a request (``accept_session_request``).
    REQUEST_ACCEPTED = "request_accepted"
    #: A request was withdrawn, or cancelled with its orphaned or cancelled session.
    REQUEST_CANCELLED = "request_cancelled"
    #: A request passed its expiry (``expire_stale_requests``).
    REQUEST_EXPIRED = "request_expired"
    #: An orphaned session got a mechanic (``claim_orphaned_session``, auto-assignment).
    SESSION_ASSIGNED = "session_assigned"
    #: A session moved through its state machine (``transition_session``).
    SESSION_STATUS_CHANGED = "session_status_changed"
    #: An orphaned session was given a pending request (``convert_orphaned_sessions``).
    ORPHAN_CONVERTED = "orphan_converted"
    #: An orphaned session was cancelled (old, without customer, or with its request).
    ORPHAN_CANCELLED = "orphan_cancelled"


#: Which state machine an event's ``from_status`` and ``to_status`` belong to: a request's
#: (:class:`RequestStatus`) or a session's (:class:`SessionStatus`). A conversion moves
#: from the orphan session's status to its new request's.
_EVENT_STATUS_TYPES: dict[EventName, tuple[type[_TextEnum], type[_TextEnum]]] = {
    EventName.NEW_REQUEST: (RequestStatus, RequestStatus),
    EventName.REQUEST_ACCEPTED: (RequestStatus, RequestStatus),
    EventName.REQUEST_CANCELLED: (RequestStatus, RequestStatus),
    EventName.REQUEST_EXPIRED: (RequestStatus, RequestStatus),
    EventName.SESSION_ASSIGNED: (SessionStatus, SessionStatus),
    EventName.SESSION_STATUS_CHANGED: (SessionStatus, SessionStatus),
    EventName.ORPHAN_CONVERTED: (SessionStatus, RequestStatus),
    EventName.ORPHAN_CANCELLED: (SessionStatus, SessionStatus),
}


def _enum(cls: Any, value: Any) -> Any:
    """``value`` as a member of ``cls`` (``None`` stays ``None``, a member stays itself)."""
    return value if value is None or isinstance(value, cls) else cls(value)


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A row of ``autodoctor.session_requests`` (location as latitude/longitude)."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    customer_id: UUID
    mechanic_id: UUID | None
    session_type: SessionType
    plan_code: str
    status: RequestStatus
    customer_name: str | None
    customer_email: str | None
    notes: str | None
    accepted_at: datetime | None
    notification_sent_at: datetime | None
    metadata: dict[str, Any]
    intake_id: UUID | None
    expires_at: datetime
    session_id: UUID | None
    idempotency_key: str | None
    latitude: float | None
    longitude: float | None
    cancelled_at: datetime | None
    expired_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "session_type", _enum(SessionType, self.session_type))
        object.__setattr__(self, "status", _enum(RequestStatus, self.status))


@dataclass(frozen=True, slots=True)
class Session:
    """A row of ``autodoctor.sessions``."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    mechanic_id: UUID | None
    customer_user_id: UUID | None
    customer_email: str | None
    plan: str
    type: SessionType
    status: SessionStatus
    stripe_session_id: str | None
    intake_id: UUID | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    scheduled_for: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_minutes: int | None
    metadata: dict[str, Any]
    request_id: UUID | None
    cancel_reason: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", _enum(SessionType, self.type))
        object.__setattr__(self, "status", _enum(SessionStatus, self.status))


@dataclass(frozen=True, slots=True)
class Mechanic:
    """A row of ``autodoctor.mechanics`` (location as latitude/longitude)."""

    user_id: UUID
    active: bool
    online: bool
    expertise: tuple[SessionType, ...]
    latitude: float | None
    longitude: float | None
    service_radius_km: Decimal
    max_concurrent_sessions: int
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "expertise", tuple(SessionType(t) for t in _pg_array(self.expertise))
        )


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A row of the ``autodoctor.incoming_requests`` dashboard view."""

    id: UUID
    created_at: datetime
    expires_at: datetime
    session_type: SessionType
    plan_code: str
    customer_name: str | None
    notes: str | None
    intake_id: UUID | None
    distance_km: Decimal | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "session_type", _enum(SessionType, self.session_type))


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of ``autodoctor.session_events`` (or a NOTIFY payload of one).

    ``event`` is an :class:`EventName`; ``from_status`` and ``to_status`` are
    :class:`RequestStatus` for the request events (``new_request``, ``request_*``) and
    :class:`SessionStatus` for the session events (``session_*``, ``orphan_cancelled``);
    ``orphan_converted`` moves from a session status to its new request's status. All
    compare equal to their text (``event.event == "new_request"``).
    """

    id: int
    event: EventName
    at: datetime | None = None
    request_id: UUID | None = None
    session_id: UUID | None = None
    session_type: SessionType | None = None
    plan_code: str | None = None
    actor_id: UUID | None = None
    from_status: RequestStatus | SessionStatus | None = None
    to_status: RequestStatus | SessionStatus | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: The writing transaction's id (with ``id``, the event's position in the log).
    txid: int | None = None

    def __post_init__(self) -> None:
        name = _enum(EventName, self.event)
        object.__setattr__(self, "event", name)
        object.__setattr__(self, "session_type", _enum(SessionType, self.session_type))
        from_type, to_type = _EVENT_STATUS_TYPES[name]
        object.__setattr__(self, "from_status", _enum(from_type, self.from_status))
        object.__setattr__(self, "to_status", _enum(to_type, self.to_status))

    @property
    def cursor(self) -> EventCursor | None:
        """Where to resume after this event (``events(after=event.cursor)``)."""
        return EventCursor(self.txid, self.id) if self.txid is not None else None


@dataclass(frozen=True, slots=True, order=True)
class EventCursor:
    """A position in the event log: (writing transaction id, event id).

    Events are delivered in this order; every event of a transaction that had ended
    before the cursor was taken lies at or below it.

    To store a cursor (in a file, a table, a message), keep its text: ``str(cursor)`` is
    ``"<txid>:<id>"`` (``"754:12"``), and :meth:`parse` turns it back into the same
    cursor, so a follower can resume exactly where it stopped::

        saved = str(event.cursor)
        ...
        for event in db.events(after=EventCursor.parse(saved)):
            ...
    """

    txid: int
    id: int

    @classmethod
    def start(cls) -> EventCursor:
        """Before the first event."""
        return cls(0, 0)

    def __str__(self) -> str:
        return f"{self.txid}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> EventCursor:
        """The cursor whose ``str()`` is ``text`` (``"<txid>:<id>"``, two non-negative
        integers; surrounding whitespace is ignored).

        Anything else raises :class:`~autodoctor_db.errors.InvalidInput`.
        """
        found = _CURSOR_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None:
            shown = text[:57] + "..." if isinstance(text, str) and len(text) > 60 else text
            raise InvalidInput(
                f"not an event cursor: {shown!r} (expected '<txid>:<id>', as str(cursor) gives)",
                sqlstate="22P02",
            )
        return cls(int(found[1]), int(found[2]))


_CURSOR_TEXT = re.compile(r"([0-9]+):([0-9]+)")


def _pg_array(value: Any) -> list[str]:
    """An enum array arrives as a list, or as its text form when the type is unknown."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip("{}")
    return [v for v in text.split(",") if v]


@dataclass(frozen=True, slots=True)
class Intake:
    """A row of ``autodoctor.intakes``: the intake form behind a request."""

    id: UUID
    created_at: datetime
    customer_id: UUID
    vehicle_make: str
    vehicle_model: str
    vehicle_year: int
    vin: str | None
    concern: str
    latitude: float | None
    longitude: float | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class MySession:
    """A row of the ``autodoctor.my_sessions`` dashboard view."""

    id: UUID
    my_role: str
    status: SessionStatus
    session_type: SessionType
    plan_code: str
    request_id: UUID | None
    intake_id: UUID | None
    mechanic_id: UUID | None
    customer_user_id: UUID | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_minutes: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _enum(SessionStatus, self.status))
        object.__setattr__(self, "session_type", _enum(SessionType, self.session_type))


@dataclass(frozen=True, slots=True)
class OrphanedSession:
    """A row of the ``autodoctor.orphaned_sessions`` service view."""

    id: UUID
    created_at: datetime
    status: SessionStatus
    session_type: SessionType
    plan_code: str
    customer_user_id: UUID | None
    intake_id: UUID | None
    pending_request_id: UUID | None
    pending_request_expires_at: datetime | None
    age: timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _enum(SessionStatus, self.status))
        object.__setattr__(self, "session_type", _enum(SessionType, self.session_type))


@dataclass(frozen=True, slots=True)
class Violation:
    """One violated invariant reported by ``autodoctor.check_invariants()``."""

    invariant: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What ``autodoctor.run_maintenance()`` did, step by step."""

    expired_requests: int
    cancelled_orphans: int
    auto_assigned: int
    converted_orphans: int
    duration_ms: float
    #: History partitions created ahead and dropped past retention.
    partitions_created: int = 0
    partitions_dropped: int = 0


@dataclass(frozen=True, slots=True)
class Notification:
    """A row of ``autodoctor.notification_outbox``: one e-mail to a mechanic."""

    id: int
    created_at: datetime
    kind: str
    mechanic_id: UUID
    recipient: str | None
    request_id: UUID | None
    session_id: UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class Status:
    """Operational counts (``autodoctor-db status``)."""

    pending_requests: int
    waiting_sessions: int
    live_sessions: int
    orphaned_sessions: int
    expired_today: int
    oldest_pending_age: timedelta | None
    outbox_pending: int
    mechanics_online: int


@dataclass(frozen=True, slots=True)
class Replica:
    """A streaming standby as the primary sees it (``pg_stat_replication``)."""

    name: str
    state: str | None
    lag_bytes: int | None
    replay_lag: timedelta | None


def ewkb_point(text: str | None) -> tuple[float | None, float | None]:
    """Latitude and longitude of a PostGIS point in its text form (hex (E)WKB).

    The driver reads locations as ``location::text`` (the geography type's own output
    function) instead of calling PostGIS, whose schema differs between databases.
    """
    if text is None:
        return None, None
    raw = bytes.fromhex(text)
    order = "<" if raw[0] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", raw, 1)
    offset = 5 + (4 if kind & 0x20000000 else 0)  # skip the SRID when present
    if kind & 0x0FFFFFFF != 1:
        raise ValueError(f"not a point: WKB type {kind & 0x0FFFFFFF}")
    x, y = struct.unpack_from(order + "dd", raw, offset)
    return y, x


def model_row(cls: type[T]) -> BaseRowFactory[T]:
    """``class_row(cls)``, with a ``location`` column turned into latitude and longitude."""

    def factory(cursor: Any) -> RowMaker[T]:
        names = [column.name for column in cursor.description or ()]
        has_location = "location" in names

        def make(values: Sequence[Any]) -> T:
            kwargs = dict(zip(names, values, strict=True))
            if has_location:
                kwargs["latitude"], kwargs["longitude"] = ewkb_point(kwargs.pop("location"))
            return cls(**kwargs)

        return make

    return factory
