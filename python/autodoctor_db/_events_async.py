"""The async follower of ``session_events``: see :mod:`autodoctor_db.events`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg.rows import class_row

from . import queries
from ._common import MAX_BACKOFF, _cursor_of, _set_role, log
from ._connection import listen_kwargs
from .errors import from_psycopg
from .models import Event, EventCursor


async def _resolve_cursor_async(
    conn: psycopg.AsyncConnection[Any], after: int | EventCursor
) -> EventCursor:
    """The cursor for ``after``: itself, the start for 0, else the position of that event."""
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


async def _may_relay_async(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether this follower's role may call relay_events(): then it does on every poll,
    whatever the notify mode (relay_events() announces nothing in transaction mode), so a
    switch to relay mode at run time is followed at once."""
    row = await (await conn.execute(queries.MAY_RELAY)).fetchone()
    return bool(row and row[0])


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
    """The async generator behind :meth:`autodoctor_db.AsyncDatabase.events`.

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
