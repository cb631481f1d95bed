"""autodoctor-db: the session-request lifecycle of a mechanic marketplace, in PostgreSQL.

A small, typed driver over psycopg 3 for the package's SQL functions::

    import autodoctor_db as ad

    db = ad.connect(dsn)            # or await ad.connect_async(dsn), or ad.from_pool(pool)
    with db.as_user(user_id) as u:            # one transaction acting as an authenticated user
        req = u.create_session_request("video", "free", notes="brakes squeal")
    with db.as_user(mechanic_id) as m:
        session = m.accept_session_request(req.id)
    with db.as_service() as s:
        report = s.run_maintenance()
    for event in db.events(after=last_event_id):   # replays session_events, then follows live
        ...

Errors are :mod:`autodoctor_db.errors` classes. See the README for more.
"""

from __future__ import annotations

from . import errors
from .aio import AsyncCaller, AsyncDatabase, connect_async, from_async_pool
from .client import Caller, Database, connect, from_pool
from .errors import AutodoctorError
from .models import (
    Event,
    EventCursor,
    EventName,
    IncomingRequest,
    Intake,
    MaintenanceReport,
    Mechanic,
    MySession,
    Notification,
    OrphanedSession,
    Replica,
    RequestStatus,
    Session,
    SessionRequest,
    SessionStatus,
    SessionType,
    Status,
    Violation,
)

__all__ = [
    "AsyncCaller",
    "AsyncDatabase",
    "AutodoctorError",
    "Caller",
    "Database",
    "Event",
    "EventCursor",
    "EventName",
    "IncomingRequest",
    "Intake",
    "MaintenanceReport",
    "Mechanic",
    "MySession",
    "Notification",
    "OrphanedSession",
    "Replica",
    "RequestStatus",
    "Session",
    "SessionRequest",
    "SessionStatus",
    "SessionType",
    "Status",
    "Violation",
    "connect",
    "connect_async",
    "errors",
    "from_async_pool",
    "from_pool",
]
