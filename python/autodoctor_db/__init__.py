"""autodoctor-db: the session-request lifecycle of a mechanic marketplace, in PostgreSQL.

A small, typed driver over psycopg 3 for the package's SQL functions. See the README.
"""

from __future__ import annotations

from . import errors
from .client import Caller, Database, connect
from .errors import AutodoctorError
from .models import (
    Event,
    IncomingRequest,
    Intake,
    MaintenanceReport,
    Mechanic,
    MySession,
    OrphanedSession,
    RequestStatus,
    Session,
    SessionRequest,
    SessionStatus,
    SessionType,
    Violation,
)

__all__ = [
    "AutodoctorError",
    "Caller",
    "Database",
    "Event",
    "IncomingRequest",
    "Intake",
    "MaintenanceReport",
    "Mechanic",
    "MySession",
    "OrphanedSession",
    "RequestStatus",
    "Session",
    "SessionRequest",
    "SessionStatus",
    "SessionType",
    "Violation",
    "connect",
    "errors",
]
