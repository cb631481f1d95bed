"""The driver: a pool of connections and one method per contract function.

    import autodoctor_db as ad

    db = ad.connect("postgresql://authenticator@127.0.0.1:5432/autodoctor")
    with db.as_user(customer_id) as u:        # one transaction as that user
        req = u.create_session_request("video", "free", notes="brakes squeal")
    with db.as_user(mechanic_id) as m:
        session = m.accept_session_request(req.id)

Each ``with`` block is one transaction on one pooled connection: the caller's role and
JWT claims are set with ``set_config(..., is_local => true)``, as PostgREST does, so no
session state outlives the transaction (safe behind a transaction-pooling pgbouncer).
Errors are raised as :mod:`autodoctor_db.errors` classes, the psycopg error kept as
``__cause__``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from . import queries
from .errors import AutodoctorError, from_psycopg
from .models import (
    Event,
    IncomingRequest,
    Intake,
    MaintenanceReport,
    Mechanic,
    MySession,
    OrphanedSession,
    Session,
    SessionRequest,
    SessionStatus,
    SessionType,
    Violation,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

Role = Literal["authenticated", "service_role"]


def maps_errors(method: F) -> F:
    """Raise the driver's exception for every psycopg error the method lets through."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc

    wrapper.__maps_errors__ = True  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _types(value: SessionType | str) -> str:
    return value.value if isinstance(value, SessionType) else value


class Caller:
    """The contract's functions, called inside one transaction as one role and user.

    Obtained from :meth:`Database.as_user` or :meth:`Database.as_service`; valid only
    inside its ``with`` block.
    """

    def __init__(self, conn: psycopg.Connection[Any], user_id: UUID | None, role: Role) -> None:
        self._conn = conn
        self.user_id = user_id
        self.role = role

    def _one(self, query: str, params: dict[str, Any], row: type[T]) -> T:
        with self._conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(query, params)
            result = cur.fetchone()
        if result is None:  # pragma: no cover - every contract function returns a row
            raise AutodoctorError("the function returned no row")
        return result

    def _all(self, query: str, params: dict[str, Any], row: type[T]) -> list[T]:
        with self._conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    # --- customer ------------------------------------------------------------------------

    @maps_errors
    def create_session_request(
        self,
        session_type: SessionType | str,
        plan_code: str,
        *,
        notes: str | None = None,
        idempotency_key: str | None = None,
    ) -> SessionRequest:
        """Ask for a session (``autodoctor.create_session_request``).

        The same ``idempotency_key`` returns the request created the first time.
        """
        return self._one(
            queries.CREATE_SESSION_REQUEST,
            {
                "session_type": _types(session_type),
                "plan_code": plan_code,
                "notes": notes,
                "idempotency_key": idempotency_key,
            },
            SessionRequest,
        )

    @maps_errors
    def cancel_session_request(self, request_id: UUID | str) -> SessionRequest:
        """Withdraw one's own pending request (``autodoctor.cancel_session_request``)."""
        return self._one(
            queries.CANCEL_SESSION_REQUEST, {"request_id": str(request_id)}, SessionRequest
        )

    @maps_errors
    def submit_intake(
        self,
        session_type: SessionType | str,
        plan_code: str,
        vehicle: dict[str, Any],
        concern: str,
        *,
        latitude: float | None = None,
        longitude: float | None = None,
        idempotency_key: str | None = None,
    ) -> SessionRequest:
        """Submit the intake form: an intake and a pending request, never a session.

        ``vehicle`` is ``{"make": str, "model": str, "year": int, "vin": str | None}``.
        """
        return self._one(
            queries.SUBMIT_INTAKE,
            {
                "session_type": _types(session_type),
                "plan_code": plan_code,
                "vehicle": Jsonb(vehicle),
                "concern": concern,
                "latitude": latitude,
                "longitude": longitude,
                "idempotency_key": idempotency_key,
            },
            SessionRequest,
        )

    @maps_errors
    def transition_session(self, session_id: UUID | str, to_status: SessionStatus | str) -> Session:
        """Move a session through its state machine (``autodoctor.transition_session``)."""
        status = to_status.value if isinstance(to_status, SessionStatus) else to_status
        return self._one(
            queries.TRANSITION_SESSION,
            {"session_id": str(session_id), "to_status": status},
            Session,
        )

    # --- mechanic ------------------------------------------------------------------------

    @maps_errors
    def claim_orphaned_session(self, session_id: UUID | str) -> Session:
        """Take an orphaned session directly (``autodoctor.claim_orphaned_session``)."""
        return self._one(queries.CLAIM_ORPHANED_SESSION, {"session_id": str(session_id)}, Session)

    @maps_errors
    def accept_session_request(self, request_id: UUID | str) -> Session:
        """Accept a pending request; returns the session (``accept_session_request``)."""
        return self._one(queries.ACCEPT_SESSION_REQUEST, {"request_id": str(request_id)}, Session)

    @maps_errors
    def set_mechanic_availability(
        self,
        online: bool,
        *,
        latitude: float | None = None,
        longitude: float | None = None,
    ) -> Mechanic:
        """Go online or offline, optionally at a new location."""
        return self._one(
            queries.SET_MECHANIC_AVAILABILITY,
            {"online": online, "latitude": latitude, "longitude": longitude},
            Mechanic,
        )

    @maps_errors
    def incoming_requests(self, *, limit: int = 100) -> list[IncomingRequest]:
        """The pending requests this mechanic may accept, oldest first."""
        return self._all(queries.INCOMING_REQUESTS, {"limit": limit}, IncomingRequest)

    # --- operations (service_role) -------------------------------------------------------

    @maps_errors
    def register_mechanic(
        self,
        user_id: UUID | str,
        *,
        expertise: Sequence[SessionType | str] | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        service_radius_km: float | Decimal = 50,
        max_concurrent_sessions: int = 1,
    ) -> Mechanic:
        """Make a user a mechanic, or update one (``autodoctor.register_mechanic``)."""
        return self._one(
            queries.REGISTER_MECHANIC,
            {
                "user_id": str(user_id),
                "expertise": [_types(t) for t in expertise]
                if expertise is not None
                else [t.value for t in SessionType],
                "latitude": latitude,
                "longitude": longitude,
                "service_radius_km": service_radius_km,
                "max_concurrent_sessions": max_concurrent_sessions,
            },
            Mechanic,
        )

    def _scalar(self, query: str, params: dict[str, Any] | None = None) -> Any:
        row = self._conn.execute(query, params or {}).fetchone()
        if row is None:  # pragma: no cover - aggregates always return a row
            raise AutodoctorError("the function returned no row")
        return row[0]

    @maps_errors
    def expire_stale_requests(self) -> int:
        """Expire every pending request past its expiry; returns how many."""
        return int(self._scalar(queries.EXPIRE_STALE_REQUESTS))

    @maps_errors
    def convert_orphaned_sessions(self) -> int:
        """Give each orphaned session a pending request (idempotent); returns how many."""
        return int(self._scalar(queries.CONVERT_ORPHANED_SESSIONS))

    @maps_errors
    def auto_assign_orphaned_sessions(self, batch_size: int = 100) -> int:
        """Assign up to ``batch_size`` orphans to the best free mechanics; returns how many."""
        return int(self._scalar(queries.AUTO_ASSIGN_ORPHANED_SESSIONS, {"batch_size": batch_size}))

    @maps_errors
    def cancel_orphaned_sessions(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Cancel (never delete) orphans older than ``older_than``; returns how many."""
        return int(self._scalar(queries.CANCEL_ORPHANED_SESSIONS, {"older_than": older_than}))

    @maps_errors
    def run_maintenance(self) -> MaintenanceReport:
        """Every repair in order (expire, cancel old orphans, auto-assign, convert)."""
        report = self._scalar(queries.RUN_MAINTENANCE)
        return MaintenanceReport(
            expired_requests=int(report["expired_requests"]),
            cancelled_orphans=int(report["cancelled_orphans"]),
            auto_assigned=int(report["auto_assigned"]),
            converted_orphans=int(report["converted_orphans"]),
            duration_ms=float(report["duration_ms"]),
        )

    @maps_errors
    def check_invariants(self) -> list[Violation]:
        """Every violated invariant; empty when the data is healthy."""
        return self._all(queries.CHECK_INVARIANTS, {}, Violation)

    @maps_errors
    def orphaned_sessions(self, *, limit: int = 100) -> list[OrphanedSession]:
        """Active sessions without a mechanic, oldest first (service role)."""
        return self._all(queries.ORPHANED_SESSIONS, {"limit": limit}, OrphanedSession)

    # --- reads through row-level security -------------------------------------------------

    @maps_errors
    def my_sessions(self, *, limit: int = 100) -> list[MySession]:
        """The caller's sessions, newest first, as customer or as mechanic."""
        return self._all(queries.MY_SESSIONS, {"limit": limit}, MySession)

    @maps_errors
    def get_intake(self, intake_id: UUID | str) -> Intake | None:
        """An intake the caller may see (their own), else ``None``."""
        rows = self._all(queries.GET_INTAKE, {"intake_id": str(intake_id)}, Intake)
        return rows[0] if rows else None

    @maps_errors
    def get_session_request(self, request_id: UUID | str) -> SessionRequest | None:
        """A request the caller may see, else ``None``."""
        rows = self._all(
            queries.GET_SESSION_REQUEST, {"request_id": str(request_id)}, SessionRequest
        )
        return rows[0] if rows else None

    @maps_errors
    def get_session(self, session_id: UUID | str) -> Session | None:
        """A session the caller may see, else ``None``."""
        rows = self._all(queries.GET_SESSION, {"session_id": str(session_id)}, Session)
        return rows[0] if rows else None

    @maps_errors
    def events_after(self, after: int = 0, *, limit: int = 1000) -> list[Event]:
        """Logged events with an id above ``after`` that the caller may see, in id order."""
        return self._all(queries.EVENTS_AFTER, {"after": after, "limit": limit}, Event)


def event_from_payload(payload: str) -> Event:
    """An :class:`Event` from a NOTIFY payload (ids and non-private fields only)."""
    data = json.loads(payload)
    return Event(
        id=int(data["event_id"]),
        event=str(data["event"]),
        at=None,
        request_id=UUID(data["request_id"]) if data.get("request_id") else None,
        session_id=UUID(data["session_id"]) if data.get("session_id") else None,
        session_type=data.get("session_type"),
        plan_code=data.get("plan_code"),
    )


class Database:
    """A pool of connections to a database where autodoctor-db is deployed."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        listen_dsn: str | None = None,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        #: Where LISTEN connects: a direct server address, never a transaction pooler.
        self.listen_dsn = listen_dsn if listen_dsn is not None else conninfo
        self._owns_pool = owns_pool

    @contextmanager
    def _as(self, role: Role, user_id: UUID | str | None) -> Iterator[Caller]:
        uid = UUID(str(user_id)) if user_id is not None else None
        claims: dict[str, Any] = {"role": role}
        if uid is not None:
            claims["sub"] = str(uid)
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute(queries.SET_CALLER, {"role": role, "claims": json.dumps(claims)})
                yield Caller(conn, uid, role)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc

    def as_user(self, user_id: UUID | str) -> AbstractContextManager[Caller]:
        """One transaction acting as an authenticated user (role ``authenticated``)."""
        return self._as("authenticated", user_id)

    def as_service(self) -> AbstractContextManager[Caller]:
        """One transaction acting as the back-end service (role ``service_role``)."""
        return self._as("service_role", None)

    def notifications(
        self, *, timeout: float = 1.0, stop: Callable[[], bool] | None = None
    ) -> Iterator[Event]:
        """Yield each broadcast on channel ``autodoctor`` as it arrives (live only).

        Runs on its own autocommit connection (never a pooled one). Polls ``stop`` every
        ``timeout`` seconds and returns once it says so.
        """
        with psycopg.Connection.connect(self.listen_dsn, autocommit=True) as conn:
            conn.execute("LISTEN autodoctor")
            while stop is None or not stop():
                for note in conn.notifies(timeout=timeout):
                    yield event_from_payload(note.payload)
                    if stop is not None and stop():
                        return

    def close(self) -> None:
        """Close the pool, if this object created it."""
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    dsn: str = "",
    *,
    min_size: int = 1,
    max_size: int = 10,
    prepare: bool = True,
    application_name: str = "autodoctor-db",
) -> Database:
    """Open a :class:`Database` on ``dsn`` (libpq ``PG*`` variables fill the gaps).

    ``prepare=False`` turns server-side prepared statements off, as a transaction-pooling
    pgbouncer without prepared-statement support needs.
    """
    kwargs: dict[str, Any] = {"application_name": application_name}
    if not prepare:
        kwargs["prepare_threshold"] = None
    pool: ConnectionPool[Any] = ConnectionPool(
        dsn, min_size=min_size, max_size=max_size, kwargs=kwargs, open=True, name="autodoctor-db"
    )
    return Database(pool, owns_pool=True)
