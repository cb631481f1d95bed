"""What the sync and the async driver share, and what is not generated (see
tools/async_to_sync.py): caller claims, NOTIFY payloads, the event follower's helpers."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from uuid import UUID

from psycopg import sql

from .errors import InvalidInput, ResyncNeeded
from .models import Event, EventCursor, EventName

Role = Literal["authenticated", "service_role"]

#: The event followers' logger (both twins).
log = logging.getLogger("autodoctor_db.events")

#: The longest wait, in seconds, between two reconnection attempts of an event follower.
MAX_BACKOFF = 10.0


def claims_for(role: Role, user_id: UUID | None) -> str:
    """The ``request.jwt.claims`` JSON PostgREST would set for this caller."""
    claims: dict[str, Any] = {"role": role}
    if user_id is not None:
        claims["sub"] = str(user_id)
    return json.dumps(claims)


def event_from_payload(payload: str) -> Event:
    """An :class:`Event` from a NOTIFY payload (ids and non-private fields only)."""
    data = json.loads(payload)
    return Event(
        id=int(data["event_id"]),
        event=EventName(data["event"]),
        at=None,
        request_id=UUID(data["request_id"]) if data.get("request_id") else None,
        session_id=UUID(data["session_id"]) if data.get("session_id") else None,
        session_type=data.get("session_type"),
        plan_code=data.get("plan_code"),
    )


def _cursor_of(row: tuple[Any, ...] | None, after: int, oldest: int | None) -> EventCursor:
    if row is not None:
        return EventCursor(int(row[0]), int(row[1]))
    if oldest is None or after < oldest:
        raise ResyncNeeded(
            f"event {after} is no longer in the log (oldest retained: {oldest})",
            reason="cursor_too_old",
            hint="Re-read the current state through the API, then follow from a recent event.",
        )
    raise InvalidInput(
        f"event {after} does not exist",
        reason="unknown_cursor",
        hint="Pass the id of an event you received, or 0 to replay from the start.",
    )


def _set_role(role: str | None) -> sql.Composed | None:
    return sql.SQL("SET ROLE {}").format(sql.Identifier(role)) if role else None
