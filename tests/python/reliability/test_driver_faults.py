"""The driver under faults, sync and async twins alike.

- A real server restart (``pg_ctl restart -m fast`` of a private cluster started here):
  calls through a ``Database`` opened before it succeed afterwards, with no exception.
- ``pg_terminate_backend`` of every connection of the pool: the next call succeeds (and,
  without ``check``, the first call fails: the check is what saves it).
- An unreachable server (refused port, missing database, unknown role, bad password, a
  malformed connection string, an unreachable standby): ``connect()`` raises
  ``ConnectionFailed`` carrying libpq's reason; ``connect_timeout`` bounds the pool's wait
  (psycopg_pool's ``PoolTimeout`` names it), ``timeout`` bounds a call's wait with
  ``wait=False``. No test measures time.
- ``application_name``: the DSN's (or ``PGAPPNAME``'s) is kept by the pool, the event
  follower and ``notifications()``; ``autodoctor-db`` is only the fallback; an explicit
  argument wins.
- A malformed id (every method taking one, found by its signature, and ``as_user``) is
  ``InvalidInput`` naming the parameter, raised before anything is sent: the transaction
  goes on, nothing is written.
- ``EventCursor`` round-trips through its text; a stored cursor resumes a follower.
- ``Event.event`` is an ``EventName`` (the schema's list, checked), its statuses are
  ``RequestStatus`` or ``SessionStatus`` enums, for every kind of event.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors
from operations.test_migrations import PrivateCluster, _as_owner, must, sqitch
from psycopg_pool import PoolTimeout
from support import footprint, new_user

VIA_POOLER = bool(os.environ.get("AUTODOCTOR_TEST_POOLER_PORT"))

#: The pool's name when neither the DSN nor PGAPPNAME names the application.
FALLBACK_NAME = "autodoctor-db"

#: The seconds unreachable-server tests give connect() (libpq's own minimum is 2).
CONNECT_TIMEOUT = 1


# --- helpers ---------------------------------------------------------------------------------


def eventually(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it is truthy (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def hold(db: ad.Database, n: int) -> None:
    """Use ``n`` pooled connections at once, so that the pool keeps ``n`` idle ones."""
    with ExitStack() as stack:
        for _ in range(n):
            stack.enter_context(db.as_service()).status()
    assert db.pool.get_stats()["pool_available"] >= n


async def hold_async(db: ad.AsyncDatabase, n: int) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(n):
            await (await stack.enter_async_context(db.as_service())).status()
    assert db.pool.get_stats()["pool_available"] >= n


def terminate(admin: psycopg.Connection[Any], application_name: str = FALLBACK_NAME) -> int:
    """Terminate every backend of this database with that application name; how many.

    ``pg_terminate_backend(pid, timeout)`` returns once each has exited."""
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s"
        " AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_params(dsn: str, **params: Any) -> str:
    """``dsn`` with libpq parameters replaced or added."""
    return psycopg.conninfo.make_conninfo(dsn, **params)


def application_names(admin: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(application_name, last query) of every other client of this database."""
    return [
        (str(r[0]), str(r[1]))
        for r in admin.execute(
            "SELECT application_name, query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
    ]


def is_listener(query: str) -> bool:
    return query.startswith("LISTEN") or "session_events AS e" in query


def take(events: Iterator[ad.Event], n: int) -> list[ad.Event]:
    """The first ``n`` events of a follower, which is then closed."""
    out: list[ad.Event] = []
    try:
        for event in events:
            out.append(event)
            if len(out) == n:
                break
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    return out


async def take_async(events: AsyncIterator[ad.Event], n: int) -> list[ad.Event]:
    out: list[ad.Event] = []
    try:
        async for event in events:
            out.append(event)
            if len(out) == n:
                break
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    return out


# --- a private cluster, for a real restart and for password authentication -----------------


@dataclass
class Restartable:
    server: PrivateCluster
    dbname: str

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.server.port} user=postgres dbname={self.dbname}"

    def admin(self) -> psycopg.Connection[Any]:
        return self.server.connect(self.dbname)

    def started_at(self) -> Any:
        with self.admin() as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert row is not None
        return row[0]

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every backend is terminated, the server comes back."""
        subprocess.run(
            _as_owner([*self.server.pg_ctl, "-m", "fast", "restart"]),
            check=True,
            capture_output=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Restartable]:
    """A cluster of our own (trust auth, plus one password role), the package deployed."""
    if VIA_POOLER:
        pytest.skip("a private cluster of its own: runs in the direct pass")
    server = PrivateCluster()
    try:
        dbname = server.create_db("autodoctor_faults")
        must(sqitch("deploy", server.target(dbname), "--verify"))
        hba = server.base / "data" / "pg_hba.conf"
        hba.write_text("host all pw_user 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with server.connect() as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-password'")
            conn.execute("SELECT pg_reload_conf()")
        yield Restartable(server, dbname)
    finally:
        server.stop()


# --- a real server restart ---------------------------------------------------------------------


def test_calls_succeed_after_a_real_server_restart(cluster: Restartable) -> None:
    with cluster.admin() as conn:
        customer = new_user(conn)
    db = ad.connect(cluster.dsn, max_size=6)
    try:
        hold(db, 4)  # four idle connections, all about to die
        before = cluster.started_at()
        cluster.restart()
        assert cluster.started_at() > before  # a real restart

        with db.as_user(customer) as u:  # no exception: the dead connections were skipped
            req = u.create_session_request("chat", "free", notes="after restart")
        with db.as_service() as s:
            assert s.status().pending_requests == 1
        with db.as_user(customer) as u:
            mine = u.get_session_request(req.id)
        assert mine is not None and mine.status is ad.RequestStatus.PENDING
        assert db.pool.get_stats().get("connections_lost", 0) >= 1  # the check caught them
    finally:
        db.close()


def test_async_calls_succeed_after_a_real_server_restart(cluster: Restartable) -> None:
    with cluster.admin() as conn:
        customer = new_user(conn)

    async def scenario() -> None:
        db = await ad.connect_async(cluster.dsn, max_size=6)
        try:
            await hold_async(db, 4)
            before = cluster.started_at()
            await asyncio.to_thread(cluster.restart)
            assert cluster.started_at() > before

            async with db.as_user(customer) as u:
                req = await u.create_session_request("chat", "free", notes="after restart")
            async with db.as_user(customer) as u:
                mine = await u.get_session_request(req.id)
            assert mine is not None and mine.status is ad.RequestStatus.PENDING
            assert db.pool.get_stats().get("connections_lost", 0) >= 1
        finally:
            await db.close()

    asyncio.run(scenario())


# --- pg_terminate_backend of the pool's connections ------------------------------------------


@pytest.mark.direct_only
def test_next_call_succeeds_after_the_pools_connections_are_terminated(
    db: ad.Database, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    # Eight dead idle connections. Handed out one by one, with psycopg_pool's back-off
    # (0, 1, 2, 4, 8, 16 s... between checks), they would outlast the 30 s pool timeout
    # and the call would fail; the driver has the pool test every idle connection at the
    # first failed check instead.
    hold(db, 8)
    assert terminate(admin) >= 8
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    with db.as_user(customer) as u:
        assert u.get_session_request(req.id) is not None
    assert db.pool.get_stats().get("connections_lost", 0) >= 1


def test_without_the_check_the_first_call_after_termination_fails(
    dsn: str, admin: psycopg.Connection[Any]
) -> None:
    """The contrast: what ``check=True`` (the default) prevents."""
    db = ad.connect(dsn, max_size=2, check=False)
    try:
        hold(db, 1)
        assert terminate(admin) >= 1
        with pytest.raises(errors.DatabaseError), db.as_service() as s:
            s.status()
        with db.as_service() as s:  # the pool replaced the broken connection
            s.status()
    finally:
        db.close()


def test_async_next_call_succeeds_after_the_pools_connections_are_terminated(
    dsn: str, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()

    async def scenario() -> None:
        db = await ad.connect_async(dsn, max_size=10)
        try:
            await hold_async(db, 8)  # as above: without the sweep, past the 30 s timeout
            assert await asyncio.to_thread(terminate, admin) >= 8
            async with db.as_user(customer) as u:
                req = await u.create_session_request("chat", "free")
            async with db.as_user(customer) as u:
                assert await u.get_session_request(req.id) is not None
            assert db.pool.get_stats().get("connections_lost", 0) >= 1
        finally:
            await db.close()

    asyncio.run(scenario())


def test_async_without_the_check_the_first_call_after_termination_fails(
    dsn: str, admin: psycopg.Connection[Any]
) -> None:
    async def scenario() -> None:
        db = await ad.connect_async(dsn, max_size=2, check=False)
        try:
            await hold_async(db, 1)
            assert await asyncio.to_thread(terminate, admin) >= 1
            with pytest.raises(errors.DatabaseError):
                async with db.as_service() as s:
                    await s.status()
            async with db.as_service() as s:
                await s.status()
        finally:
            await db.close()

    asyncio.run(scenario())


def test_connect_and_connect_async_take_the_same_parameters() -> None:
    sync_params = inspect.signature(ad.connect).parameters
    async_params = inspect.signature(ad.connect_async).parameters
    assert [(p.name, p.default) for p in sync_params.values()] == [
        (p.name, p.default) for p in async_params.values()
    ]
    defaults = {name: p.default for name, p in sync_params.items()}
    assert defaults["check"] is True and defaults["wait"] is True
    assert defaults["timeout"] == 30.0 and defaults["connect_timeout"] == 5.0
    assert defaults["application_name"] is None


# --- an unreachable server: connect() fails fast with the reason ------------------------------


@dataclass(frozen=True)
class Unreachable:
    dsn: str
    #: A fragment of libpq's own message, which ConnectionFailed must carry.
    reason: str


@pytest.fixture(params=["refused", "missing_database", "unknown_role", "bad_password"])
def unreachable(request: pytest.FixtureRequest) -> Unreachable:
    if request.param == "bad_password":
        server: Restartable = request.getfixturevalue("cluster")
        dsn = with_params(server.dsn, user="pw_user", password="wrong-password")
        return Unreachable(dsn, 'password authentication failed for user "pw_user"')
    dsn = request.getfixturevalue("dsn")
    if request.param == "refused":
        return Unreachable(with_params(dsn, port=free_port()), "Connection refused")
    if request.param == "missing_database":
        name = f"autodoctor_missing_{uuid.uuid4().hex[:8]}"
        return Unreachable(with_params(dsn, dbname=name), f'database "{name}" does not exist')
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    return Unreachable(with_params(dsn, user=role), f'role "{role}" does not exist')


def assert_connection_failed(exc: BaseException, reason: str) -> None:
    assert type(exc) is errors.ConnectionFailed
    assert isinstance(exc, errors.DatabaseError)  # what callers already catch
    assert reason in str(exc), str(exc)
    assert f"within {CONNECT_TIMEOUT} s" in str(exc)
    assert exc.hint and "wait=False" in exc.hint
    # libpq's reason is the cause; the pool's own wait, bounded by connect_timeout, the context
    assert isinstance(exc.__cause__, psycopg.OperationalError)
    assert isinstance(exc.__context__, PoolTimeout)
    assert f"after {CONNECT_TIMEOUT} sec" in str(exc.__context__)


def test_connect_to_an_unreachable_server_fails_fast_with_the_reason(
    unreachable: Unreachable,
) -> None:
    with pytest.raises(errors.ConnectionFailed) as info:
        ad.connect(unreachable.dsn, connect_timeout=CONNECT_TIMEOUT)
    assert_connection_failed(info.value, unreachable.reason)


def test_async_connect_to_an_unreachable_server_fails_fast_with_the_reason(
    unreachable: Unreachable,
) -> None:
    with pytest.raises(errors.ConnectionFailed) as info:
        asyncio.run(ad.connect_async(unreachable.dsn, connect_timeout=CONNECT_TIMEOUT))
    assert_connection_failed(info.value, unreachable.reason)


def test_the_right_password_connects(cluster: Restartable) -> None:
    """The bad-password case above fails for the password alone."""
    dsn = with_params(cluster.dsn, user="pw_user", password="right-password")
    with ad.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as db, db.pool.connection() as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("pw_user",)


def test_a_malformed_connection_string_is_connection_failed() -> None:
    with pytest.raises(errors.ConnectionFailed, match="invalid connection string"):
        ad.connect("host=127.0.0.1 port", connect_timeout=CONNECT_TIMEOUT)
    with pytest.raises(errors.ConnectionFailed, match="invalid connection string"):
        asyncio.run(ad.connect_async("host=127.0.0.1 port", connect_timeout=CONNECT_TIMEOUT))


def test_an_unreachable_standby_fails_connect_too(dsn: str) -> None:
    read_dsn = with_params(dsn, port=free_port())
    with pytest.raises(errors.ConnectionFailed, match="Connection refused"):
        ad.connect(dsn, read_dsn=read_dsn, connect_timeout=CONNECT_TIMEOUT)
    with pytest.raises(errors.ConnectionFailed, match="Connection refused"):
        asyncio.run(ad.connect_async(dsn, read_dsn=read_dsn, connect_timeout=CONNECT_TIMEOUT))


def test_a_standby_a_moment_behind_is_waited_for(dsn: str, admin: psycopg.Connection[Any]) -> None:
    """The read pool opens no connection by itself: connect() tries the standby until
    ``connect_timeout``, as the primary's pool does (a standby may lag a database just
    created on the primary); here the database appears a moment after connect() began."""
    late = f"autodoctor_pytest_{os.getpid()}_late"
    creator = threading.Timer(0.5, admin.execute, (f'CREATE DATABASE "{late}"',))
    creator.start()
    try:
        with ad.connect(dsn, read_dsn=with_params(dsn, dbname=late), connect_timeout=20) as db:
            assert db.read_pool is not None
            with db.read_pool.connection() as conn:
                assert conn.execute("SELECT current_database()").fetchone() == (late,)
    finally:
        creator.join()
        admin.execute(f'DROP DATABASE IF EXISTS "{late}" WITH (FORCE)')


def test_without_wait_connect_returns_and_the_first_call_waits_timeout(dsn: str) -> None:
    bad = with_params(dsn, port=free_port())
    db = ad.connect(bad, wait=False, timeout=1)  # no error yet: the pool connects later
    try:
        with pytest.raises(errors.DatabaseError) as info, db.as_service() as s:
            s.status()
        assert isinstance(info.value.__cause__, PoolTimeout)
        assert "after 1.00 sec" in str(info.value.__cause__)  # the pool timeout honoured
    finally:
        db.close()

    async def scenario() -> None:
        adb = await ad.connect_async(bad, wait=False, timeout=1)
        try:
            with pytest.raises(errors.DatabaseError) as info:
                async with adb.as_service() as s:
                    await s.status()
            assert isinstance(info.value.__cause__, PoolTimeout)
            assert "after 1.00 sec" in str(info.value.__cause__)
        finally:
            await adb.close()

    asyncio.run(scenario())


def test_each_connection_attempt_is_bounded_unless_the_dsn_says_otherwise(dsn: str) -> None:
    with ad.connect(dsn, connect_timeout=3) as db:
        assert isinstance(db.pool.kwargs, dict) and db.pool.kwargs["connect_timeout"] == 3
        assert db.pool.timeout == 30.0 and db.pool.min_size == 1
    with ad.connect(with_params(dsn, connect_timeout=17), timeout=7) as db:
        assert isinstance(db.pool.kwargs, dict) and "connect_timeout" not in db.pool.kwargs
        assert db.pool.timeout == 7
        with db.pool.connection() as conn:
            assert conn.info.get_parameters()["connect_timeout"] == "17"


# --- application_name -----------------------------------------------------------------------


def _pool_name(db: ad.Database) -> str:
    with db.pool.connection() as conn:
        row = conn.execute("SHOW application_name").fetchone()
    assert row is not None
    return str(row[0])


def test_the_dsns_application_name_is_kept_by_the_pool_and_the_listeners(
    dsn: str, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    with ad.connect(with_params(dsn, application_name=name)) as db:
        assert _pool_name(db) == name
        follower = threading.Thread(
            target=lambda: list(db.events(after=0, poll_interval=0.1, stop=stop.is_set)),
            daemon=True,
        )
        notifier = threading.Thread(
            target=lambda: list(db.notifications(timeout=0.1, stop=stop.is_set)), daemon=True
        )
        follower.start()
        notifier.start()
        try:
            with db.as_user(make_user()) as u:
                u.create_session_request("chat", "free")
            listeners = eventually(
                lambda: (
                    (ns := [n for n, q in application_names(admin) if is_listener(q)])
                    and len(ns) >= 2
                    and ns
                ),
                "the follower and notifications() connected",
            )
            assert set(listeners) == {name}, listeners
            assert FALLBACK_NAME not in {n for n, _ in application_names(admin)}
        finally:
            stop.set()
            follower.join(10)
            notifier.join(10)


def test_the_fallback_name_pgappname_and_an_explicit_name(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ad.connect(dsn) as db:
        assert _pool_name(db) == FALLBACK_NAME  # neither the DSN nor PGAPPNAME names it
    with ad.connect(with_params(dsn, application_name="from-dsn"), application_name="x") as db:
        assert _pool_name(db) == "x"  # an explicit argument wins
    monkeypatch.setenv("PGAPPNAME", "from-env")
    with ad.connect(dsn) as db:
        assert _pool_name(db) == "from-env"


def test_async_the_dsns_application_name_is_kept_by_the_pool_and_the_listeners(
    dsn: str, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    customer = make_user()

    async def drain(events: AsyncIterator[ad.Event]) -> None:
        async for _ in events:
            pass

    async def scenario() -> None:
        stopped = False

        def stop() -> bool:
            return stopped

        db = await ad.connect_async(with_params(dsn, application_name=name))
        try:
            async with db.pool.connection() as conn:
                row = await (await conn.execute("SHOW application_name")).fetchone()
            assert row == (name,)
            tasks = [
                asyncio.create_task(drain(db.events(after=0, poll_interval=0.1, stop=stop))),
                asyncio.create_task(drain(db.notifications(timeout=0.1, stop=stop))),
            ]
            async with db.as_user(customer) as u:
                await u.create_session_request("chat", "free")
            deadline = time.monotonic() + 20
            while True:
                listeners = [n for n, q in application_names(admin) if is_listener(q)]
                if len(listeners) >= 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert len(listeners) >= 2 and set(listeners) == {name}, listeners
            stopped = True
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        finally:
            await db.close()

    asyncio.run(scenario())


def test_async_the_fallback_name_and_an_explicit_name(dsn: str) -> None:
    async def name_of(db: ad.AsyncDatabase) -> Any:
        async with db.pool.connection() as conn:
            row = await (await conn.execute("SHOW application_name")).fetchone()
        await db.close()
        return row[0] if row else None

    async def scenario() -> None:
        assert await name_of(await ad.connect_async(dsn)) == FALLBACK_NAME
        named = with_params(dsn, application_name="from-dsn")
        assert await name_of(await ad.connect_async(named)) == "from-dsn"
        assert await name_of(await ad.connect_async(named, application_name="x")) == "x"

    asyncio.run(scenario())


# --- a malformed id is InvalidInput, and nothing is sent --------------------------------------


def id_parameters(cls: type) -> dict[str, list[str]]:
    """Every public method of ``cls`` taking an id (a ``UUID | str`` parameter)."""
    found: dict[str, list[str]] = {}
    for name, method in vars(cls).items():
        if name.startswith("_") or not callable(method):
            continue
        params = inspect.signature(method).parameters.values()
        ids = [p.name for p in params if "UUID" in str(p.annotation)]
        if ids:
            found[name] = ids
    return found


ID_METHODS = {
    "cancel_session_request": ["request_id"],
    "transition_session": ["session_id"],
    "accept_session_request": ["request_id"],
    "claim_orphaned_session": ["session_id"],
    "register_mechanic": ["user_id"],
    "get_intake": ["intake_id"],
    "get_session_request": ["request_id"],
    "get_session": ["session_id"],
}
#: The other required arguments of those methods (valid ones).
OTHER_ARGS: dict[str, dict[str, Any]] = {"transition_session": {"to_status": "live"}}
MALFORMED = ["not-a-uuid", "", "12345678-1234-1234-1234-12345678901"]


def test_every_method_taking_an_id_is_covered() -> None:
    assert id_parameters(ad.Caller) == ID_METHODS
    assert id_parameters(ad.AsyncCaller) == ID_METHODS


def assert_invalid_id(exc: errors.InvalidInput, param: str) -> None:
    assert param in str(exc) and "not a valid uuid" in str(exc)
    assert exc.sqlstate == "22P02"  # what the server would have said
    assert exc.__cause__ is None  # ... but it was never asked


@pytest.mark.parametrize("method", sorted(ID_METHODS))
def test_a_malformed_id_is_invalid_input_and_nothing_is_sent(
    method: str,
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    before = footprint(admin)
    with db.as_user(customer) as c:
        for param in ID_METHODS[method]:
            for bad in MALFORMED:
                with pytest.raises(errors.InvalidInput) as info:
                    getattr(c, method)(**{**OTHER_ARGS.get(method, {}), param: bad})
                assert_invalid_id(info.value, param)
        # Had a malformed id reached the server, its 22P02 would have aborted the block.
        assert c.my_sessions() == []
    assert footprint(admin) == before


def test_a_malformed_user_id_is_invalid_input_before_a_connection_is_taken(
    db: ad.Database, admin: psycopg.Connection[Any]
) -> None:
    before = footprint(admin)
    requests = db.pool.get_stats().get("requests_num", 0)
    for bad in MALFORMED:
        with pytest.raises(errors.InvalidInput) as info, db.as_user(bad):
            pass
        assert_invalid_id(info.value, "user_id")
    with pytest.raises(errors.InvalidInput, match="user_id must be a UUID or its text, not int"):
        db.as_user(42).__enter__()  # type: ignore[arg-type]
    assert db.pool.get_stats().get("requests_num", 0) == requests
    assert footprint(admin) == before


def test_ids_in_any_form_uuid_accepts_still_work(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with db.as_user(str(customer).upper()) as u:
        req = u.create_session_request("chat", "free")
    for form in (req.id.hex, str(req.id).upper(), f"{{{req.id}}}", req.id):
        with db.as_user(customer) as u:
            found = u.get_session_request(form)
        assert found is not None and found.id == req.id
    with db.as_user(customer) as u, pytest.raises(errors.InvalidInput, match="not int"):
        u.get_session(123)  # type: ignore[arg-type]


def test_async_a_malformed_id_is_invalid_input_and_nothing_is_sent(
    dsn: str, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    before = footprint(admin)

    async def scenario() -> None:
        db = await ad.connect_async(dsn, max_size=2)
        try:
            requests = db.pool.get_stats().get("requests_num", 0)
            for bad in MALFORMED:
                with pytest.raises(errors.InvalidInput) as info:
                    async with db.as_user(bad):
                        pass
                assert_invalid_id(info.value, "user_id")
            assert db.pool.get_stats().get("requests_num", 0) == requests
            async with db.as_user(customer) as c:
                for method, params in sorted(ID_METHODS.items()):
                    for param in params:
                        for bad in MALFORMED:
                            with pytest.raises(errors.InvalidInput) as info:
                                await getattr(c, method)(
                                    **{**OTHER_ARGS.get(method, {}), param: bad}
                                )
                            assert_invalid_id(info.value, param)
                assert await c.my_sessions() == []
        finally:
            await db.close()

    asyncio.run(scenario())
    assert footprint(admin) == before


# --- EventCursor as text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cursor", [ad.EventCursor.start(), ad.EventCursor(754, 12), ad.EventCursor(2**63, 2**63 - 1)]
)
def test_an_event_cursor_round_trips_through_its_text(cursor: ad.EventCursor) -> None:
    text = str(cursor)
    assert text == f"{cursor.txid}:{cursor.id}"
    assert ad.EventCursor.parse(text) == cursor
    assert ad.EventCursor.parse(f"  {text}\n") == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12",
        "1:2:3",
        "-1:2",
        "1:-2",
        "a:b",
        "1:",
        ":1",
        "1 : 2",
        "1.0:2",
        "\uff10:\uff11",  # full-width digits
        "EventCursor(txid=1, id=2)",
    ],
)
def test_a_malformed_cursor_text_is_invalid_input(text: str) -> None:
    with pytest.raises(errors.InvalidInput, match="not an event cursor"):
        ad.EventCursor.parse(text)


def _three_requests(db: ad.Database, customer: uuid.UUID) -> None:
    with db.as_user(customer) as u:
        for _ in range(3):
            u.create_session_request("chat", "free")


def test_a_follower_resumes_from_a_stored_cursor_text(
    db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    _three_requests(db, make_user())
    first = take(db.events(after=0, poll_interval=0.1), 3)
    assert first[1].cursor is not None
    stored = str(first[1].cursor)  # e.g. written to a file, read back after a restart
    resumed = take(db.events(after=ad.EventCursor.parse(stored), poll_interval=0.1), 1)
    assert [e.id for e in resumed] == [first[2].id]


def test_async_a_follower_resumes_from_a_stored_cursor_text(
    dsn: str, db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    _three_requests(db, make_user())

    async def scenario() -> None:
        adb = await ad.connect_async(dsn, max_size=2)
        try:
            first = await take_async(adb.events(after=0, poll_interval=0.1), 3)
            stored = str(first[1].cursor)
            resumed = await take_async(
                adb.events(after=ad.EventCursor.parse(stored), poll_interval=0.1), 1
            )
            assert [e.id for e in resumed] == [first[2].id]
        finally:
            await adb.close()

    asyncio.run(scenario())


# --- Event.event is an EventName; statuses are enums ---------------------------------------


def test_event_names_are_the_schemas(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " WHERE c.conrelid = 'autodoctor.session_events'::regclass AND c.contype = 'c'"
        " AND pg_get_constraintdef(c.oid) LIKE '%new_request%'"
    ).fetchone()
    assert row is not None
    assert set(re.findall(r"'([a-z_]+)'", row[0])) == {e.value for e in ad.EventName}


#: Which enum each event's statuses are (docs/design.md, "Events": who logs what).
STATUS_TYPES = {
    "new_request": (type(None), ad.RequestStatus),
    "request_accepted": (ad.RequestStatus, ad.RequestStatus),
    "request_cancelled": (ad.RequestStatus, ad.RequestStatus),
    "request_expired": (ad.RequestStatus, ad.RequestStatus),
    "session_assigned": (ad.SessionStatus, ad.SessionStatus),
    "session_status_changed": (ad.SessionStatus, ad.SessionStatus),
    "orphan_converted": (ad.SessionStatus, ad.RequestStatus),
    "orphan_cancelled": (ad.SessionStatus, ad.SessionStatus),
}


def _every_kind_of_event(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    customer, mechanic = make_user(), make_mechanic(max_concurrent_sessions=5)
    with db.as_user(customer) as u:
        accepted = u.create_session_request("chat", "free")
        cancelled = u.create_session_request("chat", "free")
        expired = u.create_session_request("chat", "free")
        u.cancel_session_request(cancelled.id)
    with db.as_user(mechanic) as m:
        session = m.accept_session_request(accepted.id)
        m.transition_session(session.id, ad.SessionStatus.LIVE)
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (expired.id,),
    )
    orphan = seed_orphan(customer)
    seed_orphan(None)
    with db.as_service() as s:
        s.expire_stale_requests()
        s.convert_orphaned_sessions()
    with db.as_user(mechanic) as m:
        m.claim_orphaned_session(orphan)


def _assert_typed(events: list[ad.Event]) -> None:
    assert {e.event for e in events} == set(ad.EventName)  # every kind, each an EventName
    for e in events:
        assert type(e.event) is ad.EventName
        from_type, to_type = STATUS_TYPES[e.event]
        assert type(e.to_status) is to_type, e
        assert type(e.from_status) is from_type or e.from_status is None, e
    new = next(e for e in events if e.event is ad.EventName.NEW_REQUEST)
    assert new.to_status is ad.RequestStatus.PENDING and new.from_status is None
    live = next(e for e in events if e.event is ad.EventName.SESSION_STATUS_CHANGED)
    assert (live.from_status, live.to_status) == (ad.SessionStatus.WAITING, ad.SessionStatus.LIVE)
    # str enums: equal to, and printed as, their text
    assert new.event == "new_request" and live.to_status == "live"
    assert f"{new.event:<12}|{live.from_status}" == "new_request |waiting"
    assert str(live.event) == "session_status_changed"


def test_every_event_is_typed_with_enums(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    _every_kind_of_event(db, admin, make_user, make_mechanic, seed_orphan)
    with db.as_service() as s:
        logged = s.events_after(0)
    _assert_typed(logged)
    _assert_typed(take(db.events(after=0, poll_interval=0.1), len(logged)))
    payload = '{"event_id": 1, "event": "request_expired", "request_id": null}'
    assert ad.client.event_from_payload(payload).event is ad.EventName.REQUEST_EXPIRED


def test_async_every_event_is_typed_with_enums(
    dsn: str,
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    _every_kind_of_event(db, admin, make_user, make_mechanic, seed_orphan)

    async def scenario() -> None:
        adb = await ad.connect_async(dsn, max_size=2)
        try:
            async with adb.as_service() as s:
                logged = await s.events_after(0)
            _assert_typed(logged)
            _assert_typed(await take_async(adb.events(after=0, poll_interval=0.1), len(logged)))
        finally:
            await adb.close()

    asyncio.run(scenario())


@pytest.mark.direct_only
def test_a_sound_pooled_connection_is_handed_out_without_a_round_trip(
    dsn: str, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check looks at the socket first: 20 transactions on a healthy pool run no
    check query; after pg_terminate_backend the dead connection's socket is readable, so it
    gets the round trip, fails it, and the caller still gets a working connection."""
    from psycopg_pool import ConnectionPool

    checked: list[int] = []
    real = ConnectionPool.check_connection

    def counting(conn: psycopg.Connection[Any]) -> None:
        checked.append(1)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    db = ad.connect(dsn, min_size=1, max_size=1)
    try:
        for _ in range(20):
            with db.as_service() as s:
                s.status()
        assert checked == []
        assert terminate(admin) >= 1
        with db.as_service() as s:
            s.status()
        assert len(checked) >= 1
        assert db.pool.get_stats().get("connections_lost", 0) >= 1
    finally:
        db.close()
