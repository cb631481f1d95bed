"""A small FastAPI service on autodoctor-db: the README's web-app example, made real.

    DATABASE_URL=postgresql://authenticator@127.0.0.1:5432/autodoctor \\
        uvicorn examples.fastapi_app.app:app

One async pool (``autodoctor_db.connect_async``: autocommit connections, each request one
pipelined transaction acting as the caller), opened and closed by the lifespan. Every
contract error reaches the client through one exception handler, with the HTTP status
PostgREST would give it (docs/errors.md) and the body ``{code, reason, message, hint}``.

The caller is named by the ``X-User-Id`` header. That is a STAND-IN for authentication:
anyone can send any id. A real service verifies a JWT (Supabase Auth, say) in
:func:`caller_id` and takes the user id from its ``sub`` claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

import autodoctor_db as ad
import psycopg
from autodoctor_db import errors
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel

log = logging.getLogger("autodoctor_example")

#: Seconds between SSE comment lines on an idle stream (keeps proxies from closing it).
HEARTBEAT_SECONDS = 15.0

# --- errors: one handler, PostgREST's status table ------------------------------------


def http_status(exc: errors.AutodoctorError) -> int:
    """The HTTP status PostgREST answers the same failure with (docs/errors.md)."""
    if isinstance(exc, errors.NotAuthenticated):
        return 401  # PostgREST: 401 for an anonymous caller (no JWT), 403 otherwise
    if isinstance(exc, errors.Forbidden):  # 42501
        return 403
    if isinstance(exc, errors.NotFound):  # PT404
        return 404
    if isinstance(exc, errors.Conflict):  # PT409
        return 409
    if isinstance(exc, errors.TooManyRequests):  # PT429
        return 429
    if isinstance(exc, errors.InvalidInput):  # class 22
        return 400
    if isinstance(exc, errors.ResyncNeeded):  # an event cursor older than the history
        return 410
    if isinstance(exc, (errors.ReadOnly, errors.ConnectionFailed)) or isinstance(
        exc.__cause__, psycopg.OperationalError
    ):
        return 503  # server down, restarting, connection lost, no pooled connection: retry
    return 500


def error_response(exc: errors.AutodoctorError) -> JSONResponse:
    status = http_status(exc)
    if status >= 500:  # the details are for the log, not for the caller
        log.error("database failure (%s): %s", exc.sqlstate, exc, exc_info=exc)
        message = "database unavailable" if status == 503 else "internal error"
        body = {"code": exc.sqlstate, "reason": None, "message": message, "hint": None}
        return JSONResponse(body, status, headers={"Retry-After": "1"} if status == 503 else None)
    body = {"code": exc.sqlstate, "reason": exc.reason, "message": exc.message, "hint": exc.hint}
    return JSONResponse(body, status)


# --- the pool and the caller -----------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # An autocommit pool, each pooled connection checked before use; fails fast
    # (errors.ConnectionFailed) when the database cannot be reached at start. A request
    # waits at most 10 s for a connection, then gets a 503.
    db = await ad.connect_async(os.environ["DATABASE_URL"], timeout=10.0)
    app.state.db = db
    try:
        yield
    finally:
        await db.close()


app = FastAPI(title="autodoctor-db example", lifespan=lifespan)


@app.exception_handler(errors.AutodoctorError)
async def autodoctor_error(request: Request, exc: errors.AutodoctorError) -> JSONResponse:
    return error_response(exc)


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body or query FastAPI cannot parse: 400 like any other bad input, not 422."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return error_response(
        errors.InvalidInput(f"{where}: {first.get('msg', 'invalid request')}", sqlstate="22023")
    )


def database(request: Request) -> ad.AsyncDatabase:
    db: ad.AsyncDatabase = request.app.state.db
    return db


async def caller_id(x_user_id: Annotated[str | None, Header()] = None) -> UUID:
    """The calling user. STAND-IN: verify a JWT here and return its ``sub``."""
    if not x_user_id:
        raise errors.NotAuthenticated(
            "no calling user",
            sqlstate="42501",
            reason="not_authenticated",
            hint="Send the X-User-Id header (a real service: a verified JWT).",
        )
    try:
        return UUID(x_user_id)
    except ValueError:
        raise errors.InvalidInput(
            f"X-User-Id is not a valid uuid: {x_user_id[:60]!r}", sqlstate="22P02"
        ) from None


DB = Annotated[ad.AsyncDatabase, Depends(database)]
UserId = Annotated[UUID, Depends(caller_id)]


def row(value: Any) -> dict[str, Any]:
    """A driver row (a dataclass) as JSON-ready data."""
    data: dict[str, Any] = jsonable_encoder(asdict(value))
    return data


# --- endpoints -------------------------------------------------------------------------


class NewRequest(BaseModel):
    session_type: str
    plan_code: str = "free"
    notes: str | None = None
    idempotency_key: str | None = None


class Transition(BaseModel):
    to_status: str


@app.post("/requests", status_code=201)
async def create_request(body: NewRequest, db: DB, user_id: UserId) -> dict[str, Any]:
    async with db.as_user(user_id) as u:
        req = await u.create_session_request(
            body.session_type,
            body.plan_code,
            notes=body.notes,
            idempotency_key=body.idempotency_key,
        )
    return row(req)


@app.post("/requests/{request_id}/accept")
async def accept_request(request_id: str, db: DB, user_id: UserId) -> dict[str, Any]:
    async with db.as_user(user_id) as m:  # a malformed id: the driver's InvalidInput, 400
        session = await m.accept_session_request(request_id)
    return row(session)


@app.post("/requests/{request_id}/cancel")
async def cancel_request(request_id: str, db: DB, user_id: UserId) -> dict[str, Any]:
    async with db.as_user(user_id) as u:
        req = await u.cancel_session_request(request_id)
    return row(req)


@app.get("/incoming")
async def incoming(
    db: DB, user_id: UserId, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    async with db.as_user(user_id, read_only=True) as m:
        return [row(r) for r in await m.incoming_requests(limit=limit)]


@app.post("/sessions/{session_id}/transition")
async def transition(session_id: str, body: Transition, db: DB, user_id: UserId) -> dict[str, Any]:
    async with db.as_user(user_id) as u:
        session = await u.transition_session(session_id, body.to_status)
    return row(session)


@app.get("/healthz")
async def healthz(db: DB) -> JSONResponse:
    try:
        async with db.pool.connection() as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error:
        return JSONResponse({"status": "unavailable"}, 503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ok"})


# --- server-sent events ----------------------------------------------------------------


def user_feed(
    db: ad.AsyncDatabase, user_id: UUID, after: ad.EventCursor
) -> AsyncIterator[ad.Event]:
    """The gap-free follower, reading the log as this user: row-level security gives the
    events of the requests and sessions the user takes part in, and nothing else.

    The follower holds its own direct connection (LISTEN), so the user's claims can be set
    for that whole connection; it never returns to the pool.
    """
    claims = json.dumps({"role": "authenticated", "sub": str(user_id)}, separators=(",", ":"))
    options = conninfo_to_dict(db.listen_dsn).get("options") or ""
    listen_dsn = make_conninfo(
        db.listen_dsn, options=f"{options} -c request.jwt.claims={claims}".strip()
    )
    return ad.from_async_pool(db.pool, listen_dsn=listen_dsn).events(
        after=after, role="authenticated"
    )


_feeds: set[asyncio.Task[None]] = set()


def sse_frame(event: ad.Event) -> str:
    cursor = str(event.cursor)  # "<txid>:<id>": where to resume after this event
    data = json.dumps({**row(event), "cursor": cursor})
    return f"id: {cursor}\ndata: {data}\n\n"


async def sse(feed: AsyncIterator[ad.Event]) -> AsyncIterator[str]:
    """The feed as SSE frames, with a comment line whenever it was idle for a while.

    The feed runs in a task of its own (the follower's connection lives and dies with it);
    when the client goes away the response is cancelled, and so is that task.
    """
    queue: asyncio.Queue[ad.Event | Exception | None] = asyncio.Queue(maxsize=100)

    async def pump() -> None:
        try:
            async for event in feed:
                await queue.put(event)
            await queue.put(None)
        except Exception as exc:  # an error the follower does not retry: end the stream
            await queue.put(exc)

    task = asyncio.create_task(pump())
    _feeds.add(task)
    task.add_done_callback(_feeds.discard)
    try:
        yield "retry: 1000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return
            if isinstance(item, Exception):  # after the 200: an SSE error event, then the end
                if isinstance(item, psycopg.Error):
                    item = errors.from_psycopg(item)
                if not isinstance(item, errors.AutodoctorError):
                    log.error("event feed failed", exc_info=item)
                    item = errors.DatabaseError()
                yield f"event: error\ndata: {bytes(error_response(item).body).decode()}\n\n"
                return
            yield sse_frame(item)
    finally:
        task.cancel()


@app.get("/events")
async def events(
    db: DB, user_id: UserId, last_event_id: Annotated[str | None, Header()] = None
) -> StreamingResponse:
    """The caller's events: replayed after ``Last-Event-ID`` (from the start without one),
    then live, each exactly once; the SSE ``id:`` of each is the cursor to resume from."""
    # A malformed Last-Event-ID: EventCursor.parse raises InvalidInput, a 400.
    after = ad.EventCursor.parse(last_event_id) if last_event_id else ad.EventCursor.start()
    return StreamingResponse(
        sse(user_feed(db, user_id, after)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
