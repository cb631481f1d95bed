"""The async driver: a pool of connections and one method per contract function.

    import autodoctor_db as ad

    db = await ad.connect_async("postgresql://authenticator@127.0.0.1:5432/autodoctor")
    async with db.as_user(customer_id) as u:  # one transaction as that user
        req = await u.create_session_request("video", "free", notes="brakes squeal")
    async with db.as_user(mechanic_id) as m:
        session = await m.accept_session_request(req.id)
    async for event in db.events(after=0):  # replays the log, then follows it live
        ...

Each ``async with`` block is one transaction on one pooled connection: the caller's role and
JWT claims are set with ``set_config(..., is_local => true)``, as PostgREST does, so no
session state outlives the transaction (safe behind a transaction-pooling pgbouncer; pass
``prepare=False`` there). LISTEN runs on its own direct connection (``listen_dsn``).
Errors are raised as :mod:`autodoctor_db.errors` classes, the psycopg error kept as
``__cause__``.

Faults: ``connect_async()`` fails fast (:class:`~autodoctor_db.errors.ConnectionFailed`) when the
server cannot be reached; afterwards each pooled connection is checked before it is handed
out, so a server restart or terminated backends cost the next caller a short wait, not an
error, once the server is back.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast
from uuid import UUID

import psycopg
from psycopg import pq
from psycopg.rows import class_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from . import calls, queries
from ._common import Role as Role
from ._common import claims_for as claims_for
from ._common import event_from_payload as event_from_payload
from ._connection import (
    CONNECT_TIMEOUT,
    POOL_TIMEOUT,
    AsyncPoolCheck,
    connection_kwargs,
    listen_kwargs,
    open_pool_async,
)
from ._connection import KEEPALIVES as KEEPALIVES  # re-exported (older imports)
from ._events_async import follow_events_async
from .calls import Call, as_uuid
from .errors import from_psycopg
from .models import (
    Event,
    EventCursor,
    IncomingRequest,
    Intake,
    MaintenanceReport,
    Mechanic,
    MySession,
    Notification,
    OrphanedSession,
    Replica,
    Session,
    SessionRequest,
    SessionStatus,
    SessionType,
    Status,
    Violation,
    model_row,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def maps_errors_async(method: F) -> F:
    """Raise the driver's exception for every psycopg error the async method lets through."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc

    wrapper.__maps_errors__ = True  # type: ignore[attr-defined]
    return cast(F, wrapper)


class AsyncCaller:
    """The contract's async functions, called inside one transaction as one role and user.

    Obtained from :meth:`AsyncDatabase.as_user` or :meth:`AsyncDatabase.as_service`; valid only
    inside its ``async with`` block. Every method is one round trip. A malformed id argument
    (``request_id``, ``session_id``, ``user_id``, ``intake_id``) raises
    :class:`~autodoctor_db.errors.InvalidInput` naming it before anything is sent: the
    transaction is left as it was.
    """

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], user_id: UUID | None, role: Role
    ) -> None:
        self._conn = conn
        #: The acting user (``None`` for the service role).
        self.user_id = user_id
        #: The database role of this transaction.
        self.role = role
        #: Set once a call failed: the transaction is rolled back, even if the error was caught.
        self.failed = False

    async def _run(self, call: Call[T]) -> T:
        factory: Any = model_row(call.row) if call.row is not None else tuple_row
        try:
            async with self._conn.cursor(row_factory=factory) as cur:
                await cur.execute(call.query, call.params)
                return call.result(await cur.fetchall())
        except psycopg.Error:
            self.failed = True
            raise

    # --- customer ------------------------------------------------------------------------

    @maps_errors_async
    async def create_session_request(
        self,
        session_type: SessionType | str,
        plan_code: str,
        *,
        notes: str | None = None,
        idempotency_key: str | None = None,
    ) -> SessionRequest:
        """Ask for a session (``create_session_request``); a repeated key returns the first."""
        return await self._run(
            calls.create_session_request(session_type, plan_code, notes, idempotency_key)
        )

    @maps_errors_async
    async def submit_intake(
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
        return await self._run(
            calls.submit_intake(
                session_type, plan_code, vehicle, concern, latitude, longitude, idempotency_key
            )
        )

    @maps_errors_async
    async def cancel_session_request(self, request_id: UUID | str) -> SessionRequest:
        """Withdraw one's own pending request (``cancel_session_request``)."""
        return await self._run(calls.cancel_session_request(request_id))

    @maps_errors_async
    async def transition_session(
        self, session_id: UUID | str, to_status: SessionStatus | str
    ) -> Session:
        """Move a session through its state machine (``transition_session``)."""
        return await self._run(calls.transition_session(session_id, to_status))

    # --- mechanic ------------------------------------------------------------------------

    @maps_errors_async
    async def accept_session_request(self, request_id: UUID | str) -> Session:
        """Accept a pending request; returns its session (``accept_session_request``)."""
        return await self._run(calls.accept_session_request(request_id))

    @maps_errors_async
    async def claim_orphaned_session(self, session_id: UUID | str) -> Session:
        """Take an orphaned session directly (``claim_orphaned_session``)."""
        return await self._run(calls.claim_orphaned_session(session_id))

    @maps_errors_async
    async def set_mechanic_availability(
        self, online: bool, *, latitude: float | None = None, longitude: float | None = None
    ) -> Mechanic:
        """Go online or offline, optionally at a new location."""
        return await self._run(calls.set_mechanic_availability(online, latitude, longitude))

    @maps_errors_async
    async def incoming_requests(self, *, limit: int = 100) -> list[IncomingRequest]:
        """The pending requests this mechanic may accept, oldest first."""
        return await self._run(calls.incoming_requests(limit))

    # --- operations (service_role) -------------------------------------------------------

    @maps_errors_async
    async def register_mechanic(
        self,
        user_id: UUID | str,
        *,
        expertise: Sequence[SessionType | str] | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        service_radius_km: float | Decimal = 50,
        max_concurrent_sessions: int = 1,
    ) -> Mechanic:
        """Make a user a mechanic, or update one (``register_mechanic``)."""
        return await self._run(
            calls.register_mechanic(
                user_id, expertise, latitude, longitude, service_radius_km, max_concurrent_sessions
            )
        )

    @maps_errors_async
    async def expire_stale_requests(self) -> int:
        """Expire every pending request past its expiry; returns how many."""
        return await self._run(calls.expire_stale_requests())

    @maps_errors_async
    async def convert_orphaned_sessions(self) -> int:
        """Give each orphaned session a pending request (idempotent); returns how many."""
        return await self._run(calls.convert_orphaned_sessions())

    @maps_errors_async
    async def auto_assign_orphaned_sessions(self, batch_size: int = 100) -> int:
        """Assign up to ``batch_size`` orphans to the best free mechanics; returns how many."""
        return await self._run(calls.auto_assign_orphaned_sessions(batch_size))

    @maps_errors_async
    async def cancel_orphaned_sessions(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Cancel (never delete) orphans older than ``older_than``; returns how many."""
        return await self._run(calls.cancel_orphaned_sessions(older_than))

    @maps_errors_async
    async def run_maintenance(self) -> MaintenanceReport:
        """Every repair in order (expire, cancel old orphans, auto-assign, convert)."""
        return await self._run(calls.run_maintenance())

    @maps_errors_async
    async def check_invariants(self) -> list[Violation]:
        """Every violated invariant; empty when the data is healthy."""
        return await self._run(calls.check_invariants())

    @maps_errors_async
    async def claim_notifications(self, batch_size: int = 10) -> list[Notification]:
        """Queue new requests' e-mails, then lease up to ``batch_size`` due ones (the worker)."""
        return await self._run(calls.claim_notifications(batch_size))

    @maps_errors_async
    async def complete_notification(
        self, notification_id: int, *, error: str | None = None, max_attempts: int = 8
    ) -> Notification:
        """Record a delivery attempt: sent, or retried with backoff, or failed."""
        return await self._run(calls.complete_notification(notification_id, error, max_attempts))

    @maps_errors_async
    async def relay_events(self) -> int:
        """Relay mode: NOTIFY once for the events logged since the last relay; how many."""
        return await self._run(calls.relay_events())

    @maps_errors_async
    async def fan_out_new_requests(self, batch_size: int = 5) -> int:
        """Queue the e-mails of up to ``batch_size`` new requests; how many were fanned out."""
        return await self._run(calls.fan_out_new_requests(batch_size))

    @maps_errors_async
    async def event_watermark(self) -> int:
        """The current event mark, for monitoring (how far followers can read).

        To read the log, use ``db.events`` or read below the mark in the same statement
        (``docs/functions.md``): a mark taken in a statement of its own and used in a later
        one can skip an event logged late at its last position."""
        return await self._run(calls.event_watermark())

    @maps_errors_async
    async def set_notify_mode(self, mode: Literal["transaction", "relay"]) -> str:
        """Broadcast in each event's transaction (default) or in batches by a relay."""
        return await self._run(calls.set_notify_mode(mode))

    @maps_errors_async
    async def orphaned_sessions(self, *, limit: int = 100) -> list[OrphanedSession]:
        """Active sessions without a mechanic, oldest first (service role)."""
        return await self._run(calls.orphaned_sessions(limit))

    @maps_errors_async
    async def status(self) -> Status:
        """Operational counts: pending, waiting, live, orphans, expired today, ..."""
        return await self._run(calls.status())

    @maps_errors_async
    async def pending_requests(self, *, limit: int = 100) -> list[SessionRequest]:
        """Every pending, unexpired request, oldest first (service role)."""
        return await self._run(calls.pending_requests(limit))

    # --- reads through row-level security -------------------------------------------------

    @maps_errors_async
    async def my_sessions(self, *, limit: int = 100) -> list[MySession]:
        """The caller's sessions, newest first, as customer or as mechanic."""
        return await self._run(calls.my_sessions(limit))

    @maps_errors_async
    async def get_intake(self, intake_id: UUID | str) -> Intake | None:
        """An intake the caller may see (their own), else ``None``."""
        return await self._run(calls.get_intake(intake_id))

    @maps_errors_async
    async def get_session_request(self, request_id: UUID | str) -> SessionRequest | None:
        """A request the caller may see, else ``None``."""
        return await self._run(calls.get_session_request(request_id))

    @maps_errors_async
    async def get_session(self, session_id: UUID | str) -> Session | None:
        """A session the caller may see, else ``None``."""
        return await self._run(calls.get_session(session_id))

    @maps_errors_async
    async def events_after(self, after: int = 0, *, limit: int = 1000) -> list[Event]:
        """Logged events with an id above ``after`` that the caller may see, in id order.

        A snapshot read, not a feed: to follow the log without gaps use
        :meth:`AsyncDatabase.events`.
        """
        return await self._run(calls.events_after(after, limit))


class AsyncDatabase:
    """A pool of async connections to a database where autodoctor-db is deployed.

    ``listen_dsn`` is where :meth:`events` and :meth:`notifications` LISTEN: a direct
    server address (a transaction-pooling pgbouncer cannot carry LISTEN). It defaults to
    the pool's own connection string. The LISTEN connections use the pool's connection
    keyword arguments (``connect_kwargs``), with TCP keepalives and
    ``fallback_application_name=autodoctor-db`` added: an application name set in the DSN,
    in ``PGAPPNAME`` or in those arguments is kept.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        listen_dsn: str | None = None,
        read_pool: AsyncConnectionPool[Any] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        #: Pool on a hot standby for ``read_only`` transactions (``None``: the primary).
        self.read_pool = read_pool
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        self.listen_dsn = listen_dsn if listen_dsn is not None else conninfo
        self._connect_kwargs = listen_kwargs(connect_kwargs)
        self._owns_pool = owns_pool

    @asynccontextmanager
    async def _as(
        self, role: Role, user_id: UUID | str | None, read_only: bool
    ) -> AsyncIterator[AsyncCaller]:
        uid = as_uuid(user_id, "user_id") if user_id is not None else None
        pool = self.read_pool if read_only and self.read_pool is not None else self.pool
        setup = {"role": role, "claims": claims_for(role, uid)}
        try:
            async with pool.connection() as conn:
                if not conn.autocommit:  # a caller's own pool: psycopg's transaction block
                    async with conn.transaction():
                        if read_only:
                            await conn.execute(queries.READ_ONLY)
                        await conn.execute(queries.SET_CALLER, setup)
                        yield AsyncCaller(conn, uid, role)
                    return
                # Pipelined: BEGIN and the caller's claims travel with the first query, and
                # COMMIT is the only other round trip. A failed call rolls the transaction
                # back, even when the caller caught its error (as COMMIT would on the server).
                caller = AsyncCaller(conn, uid, role)
                committed = False
                try:
                    try:
                        async with conn.pipeline():
                            await conn.execute(
                                queries.BEGIN_READ_ONLY if read_only else queries.BEGIN
                            )
                            await conn.execute(queries.SET_CALLER, setup)
                            yield caller
                            if not caller.failed:
                                await conn.execute(queries.COMMIT)
                    except psycopg.errors.PipelineAborted:
                        if not caller.failed:
                            raise
                    committed = not caller.failed
                finally:
                    if not committed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                        await conn.execute(queries.ROLLBACK)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc

    def as_user(
        self, user_id: UUID | str, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[AsyncCaller]:
        """One transaction acting as an authenticated user (role ``authenticated``).

        ``read_only=True`` makes it a READ ONLY transaction on the hot standby when the
        database was opened with a ``read_dsn`` (dashboards: ``incoming_requests``,
        ``my_sessions``); a write there raises :class:`~autodoctor_db.errors.ReadOnly`.
        A malformed ``user_id`` raises :class:`~autodoctor_db.errors.InvalidInput` before
        a connection is taken (as does a malformed id passed to any method of the caller).
        """
        return self._as("authenticated", user_id, read_only)

    def as_service(self, *, read_only: bool = False) -> AbstractAsyncContextManager[AsyncCaller]:
        """One transaction acting as the back-end service (role ``service_role``)."""
        return self._as("service_role", None, read_only)

    async def replication(self) -> list[Replica]:
        """The primary's view of its standbys and their lag (needs ``pg_monitor``)."""
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(Replica))
                await cur.execute(queries.REPLICATION)
                rows: list[Replica] = await cur.fetchall()
                return rows
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc

    def events(
        self,
        after: int | EventCursor = 0,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 500,
        stop: Callable[[], bool] | None = None,
        reconnect: bool = True,
        role: str | None = "service_role",
    ) -> AsyncIterator[Event]:
        """Replay ``session_events`` after ``after``, then follow the log live, without gaps.

        ``after`` is an event id (0: from the start) or an :class:`EventCursor`. Events come
        in (transaction id, event id) order, each exactly once, and only once every older
        transaction has ended, so a transaction committing late is never skipped; a
        long-running writing transaction delays delivery until it ends. NOTIFY only wakes
        the reader; the log is polled every ``poll_interval`` seconds as well (and that query
        doubles as the connection's liveness probe). A dropped connection is reopened and
        the log re-read from the cursor. ``stop`` is checked between waits.
        """
        return follow_events_async(
            self.listen_dsn,
            after=after,
            poll_interval=poll_interval,
            batch_size=batch_size,
            stop=stop,
            reconnect=reconnect,
            role=role,
            connect_kwargs=self._connect_kwargs,
        )

    async def notifications(
        self, *, timeout: float = 1.0, stop: Callable[[], bool] | None = None
    ) -> AsyncIterator[Event]:
        """Yield each NOTIFY on channel ``autodoctor`` as it arrives (live only, no replay).

        A hint stream: payloads carry ids only, and a notification sent while nobody
        listened is gone. Use :meth:`events` when no event may be missed.
        """
        async with await psycopg.AsyncConnection.connect(
            self.listen_dsn, autocommit=True, **self._connect_kwargs
        ) as conn:
            await conn.execute("LISTEN autodoctor")
            while stop is None or not stop():
                async for note in conn.notifies(timeout=timeout):
                    yield event_from_payload(note.payload)
                    if stop is not None and stop():
                        return

    async def close(self) -> None:
        """Close the pools, if this object created them."""
        if self._owns_pool:
            await self.pool.close()
            if self.read_pool is not None:
                await self.read_pool.close()

    async def __aenter__(self) -> AsyncDatabase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect_async(
    dsn: str = "",
    *,
    listen_dsn: str | None = None,
    read_dsn: str | None = None,
    min_size: int = 1,
    max_size: int = 10,
    prepare: bool = True,
    application_name: str | None = None,
    timeout: float = POOL_TIMEOUT,
    check: bool = True,
    wait: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> AsyncDatabase:
    """Open a :class:`AsyncDatabase` on ``dsn`` (libpq ``PG*`` variables fill the gaps).

    ``prepare=False`` turns server-side prepared statements off, as a transaction-pooling
    pgbouncer without prepared-statement support needs; ``listen_dsn`` then names the
    direct server address for LISTEN. ``read_dsn`` names a hot standby for
    ``as_user(..., read_only=True)`` transactions.

    - ``wait`` (default ``True``): return only once the pool holds ``min_size``
      connections (and, with ``read_dsn``, the standby accepted one), else raise
      :class:`~autodoctor_db.errors.ConnectionFailed` after ``connect_timeout`` seconds,
      with libpq's reason (refused, unknown host, no such database, password...).
      ``wait=False`` returns at once and lets the pool connect in the background: an
      unreachable server then shows only at the first call, after ``timeout``.
    - ``connect_timeout`` (seconds, default 5): that wait; also libpq's
      ``connect_timeout`` of every connection attempt (whole seconds, at least 2) unless
      the DSN or ``PGCONNECT_TIMEOUT`` sets one.
    - ``timeout`` (seconds, default 30): how long a call waits for a pooled connection
      before failing (psycopg_pool's ``timeout``; the error is a
      :class:`~autodoctor_db.errors.DatabaseError`).
    - ``check`` (default ``True``): test each pooled connection before handing it out,
      so that after a server restart or terminated backends the next caller gets a
      working connection instead of an error, once the server is back. The test looks at
      the connection's socket (a terminated backend or a restarted server has sent its
      error or closed it) and costs a round trip (an empty query) only when something is
      waiting there. ``check=False`` skips it.
    - ``application_name``: the name the server shows (``pg_stat_activity``) for the
      pool's and the listeners' connections. By default the DSN's own (or
      ``PGAPPNAME``'s) is kept, and ``autodoctor-db`` is only libpq's fallback.
    """
    kwargs = connection_kwargs(
        dsn, application_name=application_name, connect_timeout=connect_timeout, prepare=prepare
    )
    checker = AsyncPoolCheck() if check else None
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs=kwargs,
        open=False,
        name="autodoctor-db",
        timeout=timeout,
        check=checker,
    )
    if checker is not None:
        checker.pool = pool
    await open_pool_async(pool, dsn, wait=wait, connect_timeout=connect_timeout)
    read_pool: AsyncConnectionPool[Any] | None = None
    if read_dsn is not None:
        read_kwargs = connection_kwargs(
            read_dsn,
            application_name=application_name,
            connect_timeout=connect_timeout,
            prepare=prepare,
        )
        read_checker = AsyncPoolCheck() if check else None
        read_pool = AsyncConnectionPool(
            read_dsn,
            min_size=0,
            max_size=max_size,
            kwargs=read_kwargs,
            open=False,
            name="autodoctor-db-read",
            timeout=timeout,
            check=read_checker,
        )
        if read_checker is not None:
            read_checker.pool = read_pool
        try:
            await open_pool_async(read_pool, read_dsn, wait=wait, connect_timeout=connect_timeout)
        except BaseException:
            await pool.close()
            raise
    return AsyncDatabase(
        pool, listen_dsn=listen_dsn, read_pool=read_pool, connect_kwargs=kwargs, owns_pool=True
    )


def from_async_pool(
    pool: AsyncConnectionPool[Any], *, listen_dsn: str | None = None
) -> AsyncDatabase:
    """Wrap an existing ``psycopg_pool.AsyncConnectionPool`` (the caller keeps closing it).

    The pool is used as it is: give it ``check=AsyncConnectionPool.check_connection`` to
    survive a server restart, and open it with ``wait=True`` to fail fast, as
    :func:`connect_async` does.
    """
    return AsyncDatabase(
        pool,
        listen_dsn=listen_dsn,
        connect_kwargs=pool.kwargs if isinstance(pool.kwargs, dict) else None,
    )
