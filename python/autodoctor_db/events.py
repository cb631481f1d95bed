"""Following ``session_events`` without gaps: replay from a cursor, then live.

The trap: event ids are allocated in one order and transactions commit in another, so
"every event with an id above the last one I saw" silently skips an event whose
transaction commits late. Looking at the event's own transaction id is not enough either:
a transaction gets its id at its first write, not when it logs the event, so a lower
event id can belong to a younger transaction.

The cursor here is a watermark over (transaction id, event id). Each read returns only
events of transactions older than ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest
transaction still running: every one of those has ended, so that slice of the log is
final and nothing can appear in it later. Delivering it in (txid, id) order and moving
the cursor to the last event delivered therefore never skips and never repeats, across
reconnects too. The price: an event is delivered only once every older writing
transaction has ended, so a long-running writer delays delivery by its own duration.
NOTIFY is only a wake-up; the log is also polled every ``poll_interval`` seconds, which
catches an older transaction that ended without notifying and probes the connection. In
relay mode (``autodoctor.set_notify_mode('relay')``) the writers do not NOTIFY at all:
every follower calls ``relay_events()`` on each poll, so the listeners themselves keep
the broadcasts flowing (the worker relays more often, for lower latency).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from . import queries
from ._connection import listen_kwargs
from .errors import InvalidInput, ResyncNeeded, from_psycopg
from .models import Event, EventCursor

log = logging.getLogger("autodoctor_db.events")

MAX_BACKOFF = 10.0


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


def resolve_cursor(conn: psycopg.Connection[Any], after: int | EventCursor) -> EventCursor:
    """The cursor for ``after``: itself, the start for 0, else the position of that event."""
    if isinstance(after, EventCursor):
        return after
    if after <= 0:
        return EventCursor.start()
    row = conn.execute(queries.EVENT_CURSOR, {"id": after}).fetchone()
    oldest = None
    if row is None:
        found = conn.execute(queries.OLDEST_EVENT).fetchone()
        oldest = found[0] if found else None
    return _cursor_of(row, after, oldest)


def _may_relay(conn: psycopg.Connection[Any]) -> bool:
    """Whether this follower's role may call relay_events(): then it does on every poll,
    whatever the notify mode (relay_events() announces nothing in transaction mode), so a
    switch to relay mode at run time is followed at once."""
    row = conn.execute(queries.MAY_RELAY).fetchone()
    return bool(row and row[0])


async def _may_relay_async(conn: psycopg.AsyncConnection[Any]) -> bool:
    row = await (await conn.execute(queries.MAY_RELAY)).fetchone()
    return bool(row and row[0])


def _set_role(role: str | None) -> sql.Composed | None:
    return sql.SQL("SET ROLE {}").format(sql.Identifier(role)) if role else None


def follow_events(
    dsn: str,
    *,
    after: int | EventCursor,
    poll_interval: float,
    batch_size: int,
    stop: Callable[[], bool] | None,
    reconnect: bool,
    role: str | None,
    connect_kwargs: dict[str, Any],
) -> Iterator[Event]:
    """The generator behind :meth:`autodoctor_db.Database.events`.

    Its connections use ``connect_kwargs`` with TCP keepalives and libpq's
    ``fallback_application_name=autodoctor-db`` added (a name in the DSN is kept).
    """
    options = listen_kwargs(connect_kwargs)
    cursor: EventCursor | None = after if isinstance(after, EventCursor) else None
    backoff = 0.2
    lost = False
    stopped = stop or (lambda: False)
    while not stopped():
        try:
            with psycopg.Connection.connect(dsn, autocommit=True, **options) as conn:
                set_role = _set_role(role)
                if set_role is not None:
                    conn.execute(set_role)
                conn.execute("LISTEN autodoctor")
                relay = _may_relay(conn)
                if cursor is None:
                    cursor = resolve_cursor(conn, after)
                if lost:
                    log.warning(
                        "event follower: reconnected; catching up after event %s",
                        cursor.id if cursor is not None else after,
                    )
                    lost = False
                backoff = 0.2
                reader = conn.cursor(row_factory=class_row(Event))
                while True:
                    while True:
                        reader.execute(
                            queries.EVENTS_FINAL_AFTER,
                            {"txid": str(cursor.txid), "id": cursor.id, "limit": batch_size},
                        )
                        batch = reader.fetchall()
                        for event in batch:
                            yield event
                            cursor = EventCursor(int(event.txid or 0), event.id)
                        if len(batch) < batch_size:
                            break
                    if stopped():
                        return
                    if relay:
                        conn.execute(queries.RELAY_EVENTS)
                    for _ in conn.notifies(timeout=poll_interval, stop_after=1):
                        pass
        except psycopg.OperationalError as exc:
            if not reconnect:
                raise from_psycopg(exc) from exc
            log.warning(
                "event follower: connection lost (%s); reconnecting in %.1f s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                backoff,
            )
            lost = True
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


async def follow_events_async(
    dsn: str,
    *,
    after: int | EventCursor,
    poll_interval: float,
    batch_size: int,
    stop: Callable[[], bool] | None,
    reconnect: bool,
    role: str | None,
    connect_kwargs: dict[str, Any],
) -> AsyncIterator[Event]:
    """The async generator behind :meth:`autodoctor_db.AsyncDatabase.events`."""
    import asyncio

    options = listen_kwargs(connect_kwargs)
    cursor: EventCursor | None = after if isinstance(after, EventCursor) else None
    backoff = 0.2
    lost = False
    stopped = stop or (lambda: False)
    while not stopped():
        try:
            async with await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, **options
            ) as conn:
                set_role = _set_role(role)
                if set_role is not None:
                    await conn.execute(set_role)
                await conn.execute("LISTEN autodoctor")
                relay = await _may_relay_async(conn)
                if cursor is None:
                    cursor = await _resolve_cursor_async(conn, after)
                if lost:
                    log.warning(
                        "event follower: reconnected; catching up after event %s",
                        cursor.id if cursor is not None else after,
                    )
                    lost = False
                backoff = 0.2
                reader = conn.cursor(row_factory=class_row(Event))
                while True:
                    while True:
                        await reader.execute(
                            queries.EVENTS_FINAL_AFTER,
                            {"txid": str(cursor.txid), "id": cursor.id, "limit": batch_size},
                        )
                        batch = await reader.fetchall()
                        for event in batch:
                            yield event
                            cursor = EventCursor(int(event.txid or 0), event.id)
                        if len(batch) < batch_size:
                            break
                    if stopped():
                        return
                    if relay:
                        await conn.execute(queries.RELAY_EVENTS)
                    async for _ in conn.notifies(timeout=poll_interval, stop_after=1):
                        pass
        except psycopg.OperationalError as exc:
            if not reconnect:
                raise from_psycopg(exc) from exc
            log.warning(
                "event follower: connection lost (%s); reconnecting in %.1f s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                backoff,
            )
            lost = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


async def _resolve_cursor_async(
    conn: psycopg.AsyncConnection[Any], after: int | EventCursor
) -> EventCursor:
    if isinstance(after, EventCursor):
        return after
    if after <= 0:
        return EventCursor.start()
    row = await (await conn.execute(queries.EVENT_CURSOR, {"id": after})).fetchone()
    oldest = None
    if row is None:
        found = await (await conn.execute(queries.OLDEST_EVENT)).fetchone()
        oldest = found[0] if found else None
    return _cursor_of(row, after, oldest)
