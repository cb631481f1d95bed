"""How the driver opens connections, shared by the sync and the async driver.

- :func:`connection_kwargs`: the libpq settings of every connection (TCP keepalives, a
  connect timeout, ``fallback_application_name``), so that the sync and async pools and
  the LISTEN connections are opened alike;
- :class:`PoolCheck` / :class:`AsyncPoolCheck`: the pool's ``check`` callback run before a
  pooled connection is handed out: a look at its socket, and psycopg_pool's own
  ``check_connection`` (a round trip) only when something is waiting there;
- :func:`open_pool` / :func:`open_pool_async`: open a pool and, with ``wait``, fail fast
  with :class:`~autodoctor_db.errors.ConnectionFailed` when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .errors import ConnectionFailed

log = logging.getLogger("autodoctor_db")

#: What the server shows as ``application_name`` when neither the DSN nor ``PGAPPNAME``
#: nor an explicit ``application_name=`` names the application (libpq's
#: ``fallback_application_name``: it never overrides the caller's own name).
APPLICATION_NAME = "autodoctor-db"

#: libpq settings for every connection the driver opens: TCP keepalives, and a user
#: timeout so that a half-open socket fails instead of hanging forever.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}

#: Seconds ``connect()`` waits for its first connections before raising ConnectionFailed.
CONNECT_TIMEOUT = 5.0
#: Seconds a caller waits for a pooled connection (psycopg_pool's own default).
POOL_TIMEOUT = 30.0

_HINT = (
    "Check the host, port, database name, user and password of the connection string"
    " (or the PG* variables); pass wait=False to open the pool in the background instead."
)


def libpq_connect_timeout(seconds: float) -> int:
    """libpq's ``connect_timeout``: whole seconds, and libpq treats anything below 2 as 2."""
    return max(2, math.ceil(seconds))


def connection_kwargs(
    dsn: str, *, application_name: str | None, connect_timeout: float, prepare: bool
) -> dict[str, Any]:
    """The connection keyword arguments of a pool that ``connect()`` opens on ``dsn``.

    The DSN keeps its own ``application_name`` and ``connect_timeout`` (and so do
    ``PGAPPNAME`` and ``PGCONNECT_TIMEOUT``): the driver's name is only libpq's fallback,
    and each connection attempt is bounded by ``connect_timeout`` only when nothing else
    bounds it. An explicit ``application_name`` wins over the DSN's.
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConnectionFailed(f"invalid connection string: {exc}", hint=_HINT) from exc
    kwargs: dict[str, Any] = {
        "fallback_application_name": APPLICATION_NAME,
        "autocommit": True,
        **KEEPALIVES,
    }
    if application_name is not None:
        kwargs["application_name"] = application_name
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = libpq_connect_timeout(connect_timeout)
    if not prepare:
        kwargs["prepare_threshold"] = None
    return kwargs


def listen_kwargs(connect_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for a direct LISTEN connection, from a pool's own ``kwargs``.

    Keepalives and the fallback application name are added; a name (or keepalive
    setting) the caller chose is kept. Pool-only settings (autocommit, prepared
    statements) are dropped: the listener sets its own.
    """
    kwargs: dict[str, Any] = {
        "fallback_application_name": APPLICATION_NAME,
        **KEEPALIVES,
        **(connect_kwargs or {}),
    }
    kwargs.pop("prepare_threshold", None)
    kwargs.pop("autocommit", None)
    return kwargs


def _failure(
    connect_timeout: float, min_size: int, error: psycopg.Error | None
) -> ConnectionFailed:
    if error is not None:
        reason = " ".join(str(error).split())  # libpq's message, on one line
    else:
        reason = (
            f"the pool did not get its {min_size} connection(s) in time, although the"
            " server accepted a direct connection (too many clients? a slow server?)"
        )
    return ConnectionFailed(
        f"cannot connect to the database within {connect_timeout:g} s: {reason}",
        sqlstate=error.sqlstate if error is not None else None,
        hint=_HINT,
    )


def _probe_kwargs(kwargs: dict[str, Any], connect_timeout: float) -> dict[str, Any]:
    return {**kwargs, "connect_timeout": libpq_connect_timeout(connect_timeout)}


def probe(conninfo: str, kwargs: dict[str, Any], connect_timeout: float) -> psycopg.Error | None:
    """Open and close one direct connection: its error (libpq's real reason), or ``None``."""
    try:
        psycopg.connect(conninfo, **_probe_kwargs(kwargs, connect_timeout)).close()
    except psycopg.Error as exc:
        return exc
    return None


async def probe_async(
    conninfo: str, kwargs: dict[str, Any], connect_timeout: float
) -> psycopg.Error | None:
    """The async twin of :func:`probe`."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, **_probe_kwargs(kwargs, connect_timeout)
        )
        await conn.close()
    except psycopg.Error as exc:
        return exc
    return None


def _retry_delays(connect_timeout: float) -> Iterator[float]:
    """Pauses between direct connection attempts, until ``connect_timeout`` has passed."""
    deadline = time.monotonic() + connect_timeout
    delay = 0.1
    while (left := deadline - time.monotonic()) > 0:
        yield min(delay, left)
        delay = min(delay * 2, 1.0)


def probe_until(
    conninfo: str, kwargs: dict[str, Any], connect_timeout: float
) -> psycopg.Error | None:
    """Try direct connections for up to ``connect_timeout`` seconds, as a pool waiting
    for its first connection does: ``None`` at the first success, else the last error.

    (A standby may lag a moment behind its primary, a database just created included.)
    """
    error = probe(conninfo, kwargs, connect_timeout)
    for delay in _retry_delays(connect_timeout):
        if error is None:
            break
        time.sleep(delay)
        error = probe(conninfo, kwargs, connect_timeout)
    return error


async def probe_until_async(
    conninfo: str, kwargs: dict[str, Any], connect_timeout: float
) -> psycopg.Error | None:
    """The async twin of :func:`probe_until`."""
    error = await probe_async(conninfo, kwargs, connect_timeout)
    for delay in _retry_delays(connect_timeout):
        if error is None:
            break
        await asyncio.sleep(delay)
        error = await probe_async(conninfo, kwargs, connect_timeout)
    return error


def open_pool(
    pool: ConnectionPool[Any], conninfo: str, *, wait: bool, connect_timeout: float
) -> None:
    """Open ``pool``; with ``wait``, make sure the server can be reached, or close the pool
    and raise :class:`ConnectionFailed` (with libpq's reason) after ``connect_timeout``.

    A pool with ``min_size > 0`` is waited for (``pool.wait``: its first connections);
    one with ``min_size == 0`` opens none by itself, so a direct connection is tried (and
    retried, for up to ``connect_timeout`` seconds).
    """
    kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}
    if not wait:
        pool.open()
        return
    try:
        pool.open(wait=pool.min_size > 0, timeout=connect_timeout)
    except PoolTimeout as timeout:  # pool.wait() has closed the pool
        error = probe(conninfo, kwargs, connect_timeout)
        raise _failure(connect_timeout, pool.min_size, error) from (error or timeout)
    if pool.min_size == 0:
        error = probe_until(conninfo, kwargs, connect_timeout)
        if error is not None:
            pool.close()
            raise _failure(connect_timeout, pool.min_size, error) from error


async def open_pool_async(
    pool: AsyncConnectionPool[Any], conninfo: str, *, wait: bool, connect_timeout: float
) -> None:
    """The async twin of :func:`open_pool`."""
    kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}
    if not wait:
        await pool.open()
        return
    try:
        await pool.open(wait=pool.min_size > 0, timeout=connect_timeout)
    except PoolTimeout as timeout:  # pool.wait() has closed the pool
        error = await probe_async(conninfo, kwargs, connect_timeout)
        raise _failure(connect_timeout, pool.min_size, error) from (error or timeout)
    if pool.min_size == 0:
        error = await probe_until_async(conninfo, kwargs, connect_timeout)
        if error is not None:
            await pool.close()
            raise _failure(connect_timeout, pool.min_size, error) from error


def looks_sound(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection can be handed out without a round trip.

    A connection at rest has nothing to read: the server sends nothing unasked. A backend
    that was terminated (``pg_terminate_backend``, an administrator, a crash) or a server
    that shut down or restarted has sent its FATAL error or closed the socket, and either
    makes the socket readable. So: open, idle, and a ``select`` with no timeout finds
    nothing to read. Anything else (data waiting, a closed or broken connection, an open
    transaction, a socket error) is left to the round trip. What no check can see without
    waiting (a host that vanished without closing the socket) the TCP keepalives bound.
    """
    if conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class PoolCheck:
    """The ``check`` callback of the pools ``connect()`` opens.

    psycopg_pool runs it before handing a connection out. A connection whose socket has
    nothing waiting (:func:`looks_sound`) is handed out at once; any other gets psycopg_pool's
    own ``ConnectionPool.check_connection`` (an empty query: one round trip). A connection
    failing it is discarded and replaced by the pool, and the caller is given another.
    A failed check usually means every idle connection is dead (the server restarted, or
    an administrator terminated the backends), and the pool would otherwise hand them out
    one by one, backing off 1, 2, 4... seconds after each: so the first failure also has
    the pool test all its idle connections at once (``pool.check()``, in the background,
    one run at a time), and the caller gets a fresh connection after one back-off.
    """

    def __init__(self) -> None:
        #: The pool this callback serves (set once the pool exists).
        self.pool: ConnectionPool[Any] | None = None
        self._sweeping = threading.Lock()

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        if looks_sound(conn):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self._sweep()
            raise

    def _sweep(self) -> None:
        pool = self.pool
        if pool is None or pool.closed or not self._sweeping.acquire(blocking=False):
            return

        def run() -> None:
            try:
                pool.check()
            except Exception:  # pragma: no cover - the pool's own check does not raise
                log.exception("checking the idle connections of pool %r failed", pool.name)
            finally:
                self._sweeping.release()

        threading.Thread(target=run, name=f"{pool.name}-check", daemon=True).start()


class AsyncPoolCheck:
    """The async twin of :class:`PoolCheck` (the sweep is an asyncio task)."""

    def __init__(self) -> None:
        #: The pool this callback serves (set once the pool exists).
        self.pool: AsyncConnectionPool[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if looks_sound(conn):
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            self._sweep()
            raise

    def _sweep(self) -> None:
        pool = self.pool
        if pool is None or pool.closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._run(pool))

    @staticmethod
    async def _run(pool: AsyncConnectionPool[Any]) -> None:
        try:
            await pool.check()
        except Exception:  # pragma: no cover - the pool's own check does not raise
            log.exception("checking the idle connections of pool %r failed", pool.name)
