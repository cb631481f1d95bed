"""The driver's API, every test run twice: on the sync driver and on the async one.

The async driver is driven through :class:`Blocking`, which awaits (on an event loop in a
thread of its own) whatever the async objects return, so one test body exercises
``Database``/``Caller`` and ``AsyncDatabase``/``AsyncCaller`` alike.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from support import Follower

# The driver against the contract: also run through pgbouncer (conftest.py).
pytestmark = pytest.mark.pooler

CAR = {"make": "Peugeot", "model": "208", "year": 2019, "vin": "VF3CCHMZ6KW012345"}


class Loop:
    """An asyncio event loop running in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Blocking:
    """An async driver object used through the sync API: each result is awaited."""

    def __init__(self, target: Any, loop: Loop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: wrap(value(*args, **kwargs), self._loop)

    def __enter__(self) -> Blocking:
        wrap(self._target.__aenter__(), self._loop)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.run(self._target.__aexit__(*exc))


class BlockingContext(AbstractContextManager[Any]):
    def __init__(self, target: Any, loop: Loop) -> None:
        self._target = target
        self._loop = loop

    def __enter__(self) -> Any:
        return wrap(self._target.__aenter__(), self._loop)

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._loop.run(self._target.__aexit__(*exc)))


class BlockingIterator(Iterator[Any]):
    def __init__(self, target: Any, loop: Loop) -> None:
        self._target = target
        self._loop = loop

    def __next__(self) -> Any:
        try:
            return self._loop.run(self._target.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._loop.run(self._target.aclose())


def wrap(result: Any, loop: Loop) -> Any:
    if inspect.isawaitable(result):
        return wrap(loop.run(result), loop)
    if hasattr(result, "__aenter__") and not isinstance(result, ad.AsyncDatabase):
        return BlockingContext(result, loop)
    if hasattr(result, "__anext__"):
        return BlockingIterator(result, loop)
    if isinstance(result, ad.AsyncDatabase | ad.AsyncCaller):
        return Blocking(result, loop)
    return result


class Driver:
    """One of the two drivers, with the sync API either way."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.loop = Loop() if kind == "async" else None

    def connect(self, dsn: str, **kwargs: Any) -> Any:
        if self.loop is None:
            return ad.connect(dsn, **kwargs)
        return wrap(ad.connect_async(dsn, **kwargs), self.loop)

    def open_pool(self, dsn: str) -> Any:
        """A psycopg_pool pool of the driver's kind, open (the caller closes it)."""
        if self.loop is None:
            return ConnectionPool(dsn, min_size=1, max_size=2, open=True)

        async def opened() -> AsyncConnectionPool[Any]:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                dsn, min_size=1, max_size=2, open=False
            )
            await pool.open(wait=True)
            return pool

        return self.loop.run(opened())

    def from_pool(self, pool: Any, **kwargs: Any) -> Any:
        if self.loop is None:
            return ad.from_pool(pool, **kwargs)
        return wrap(ad.from_async_pool(pool, **kwargs), self.loop)

    def close_pool(self, pool: Any) -> None:
        if self.loop is None:
            pool.close()
        else:
            self.loop.run(pool.close())

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    d = Driver(request.param)
    yield d
    d.close()


@pytest.fixture
def api(driver: Driver, dsn: str) -> Iterator[Any]:
    """The driver under test on this test's database (``Database`` or ``AsyncDatabase``)."""
    database = driver.connect(dsn, max_size=6)
    yield database
    database.close()


def _online_mechanic(api: Any, make_mechanic: Callable[..., uuid.UUID]) -> uuid.UUID:
    mechanic = make_mechanic()
    with api.as_user(mechanic) as m:
        assert m.set_mechanic_availability(True).online is True
    return mechanic


# --- connect, pools, transactions -----------------------------------------------------------


def test_connect_opens_a_pool_of_the_drivers_kind_and_closes_it(driver: Driver, dsn: str) -> None:
    with driver.connect(dsn, max_size=2) as db:
        kind = AsyncConnectionPool if driver.kind == "async" else ConnectionPool
        assert isinstance(db.pool, kind)
        with db.as_service() as svc:
            assert svc.status().pending_requests == 0
    assert db.pool.closed


def test_connect_to_a_refusing_server_is_connection_failed(driver: Driver) -> None:
    with pytest.raises(errors.ConnectionFailed):
        driver.connect("host=127.0.0.1 port=1 dbname=nowhere", connect_timeout=2)


def test_from_pool_uses_the_callers_pool_and_leaves_it_open(
    driver: Driver, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    pool = driver.open_pool(dsn)
    try:
        db = driver.from_pool(pool)
        with db.as_user(make_user()) as u:
            req = u.create_session_request("chat", "free")
            got = u.get_session_request(req.id)
            assert got is not None and got.id == req.id
        db.close()
        assert not pool.closed
        with db.as_service() as svc:  # still usable: the pool is the caller's
            assert [r.id for r in svc.pending_requests()] == [req.id]
    finally:
        driver.close_pool(pool)


def test_an_error_caught_inside_the_block_still_rolls_it_back(
    api: Any, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    customer = make_user()
    with api.as_user(customer) as u:
        u.create_session_request("chat", "free")
        with pytest.raises(errors.InvalidInput):
            u.create_session_request("chat", "no-such-plan")
        assert u.failed
    with api.as_user(customer) as u:  # the pooled connection is clean again
        u.create_session_request("video", "free")
    rows = admin.execute("SELECT session_type::text FROM autodoctor.session_requests").fetchall()
    assert rows == [("video",)]


def test_read_only_transactions_refuse_writes(
    api: Any, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with api.as_user(customer, read_only=True) as u:
        assert u.my_sessions() == []
    with pytest.raises(errors.ReadOnly), api.as_user(customer, read_only=True) as u:
        u.create_session_request("chat", "free")


def test_a_malformed_id_is_invalid_input(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    with pytest.raises(errors.InvalidInput), api.as_user("not-a-uuid"):
        pass
    with pytest.raises(errors.InvalidInput) as info, api.as_user(make_user()) as u:
        u.get_session("nope")
    assert "session_id" in str(info.value)


def test_replication_lists_replicas(api: Any) -> None:
    assert all(isinstance(r, ad.Replica) for r in api.replication())


# --- the customer -----------------------------------------------------------------------------


def test_create_session_request_and_its_idempotency_key(
    api: Any, make_user: Callable[..., uuid.UUID]
) -> None:
    with api.as_user(make_user("Cleo Customer")) as u:
        req = u.create_session_request("video", "free", notes="brakes", idempotency_key="k1")
        again = u.create_session_request("video", "free", notes="brakes", idempotency_key="k1")
    assert isinstance(req, ad.SessionRequest) and again.id == req.id
    assert req.status is ad.RequestStatus.PENDING and req.session_type is ad.SessionType.VIDEO
    with pytest.raises(errors.InvalidInput) as info, api.as_user(make_user()) as u:
        u.create_session_request("chat", "nope")
    assert info.value.reason == "unknown_plan"


def test_submit_intake_and_get_intake(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    with api.as_user(make_user()) as u:
        req = u.submit_intake(
            "diagnostic", "free", CAR, "Engine light", latitude=48.85, longitude=2.35
        )
        assert req.intake_id is not None and req.session_id is None
        intake = u.get_intake(req.intake_id)
    assert intake is not None and intake.vehicle_model == "208"
    with api.as_user(make_user()) as other:
        assert other.get_intake(req.intake_id) is None  # row-level security
    with pytest.raises(errors.InvalidInput), api.as_user(make_user()) as u:
        u.submit_intake("diagnostic", "free", {"make": "X"}, "Engine light")


def test_cancel_session_request(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    customer = make_user()
    with api.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
        assert u.cancel_session_request(req.id).status is ad.RequestStatus.CANCELLED
    with pytest.raises(errors.Conflict), api.as_user(customer) as u:
        u.cancel_session_request(req.id)


# --- the mechanic -----------------------------------------------------------------------------


@pytest.mark.direct_only  # prepared statements: the pooler pass runs with prepare=False
def test_incoming_requests_runs_one_cached_plan_and_checks_its_limit(
    dsn: str, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    """The limit is a literal, so psycopg's prepared statement runs one generic plan: no
    planning per call (with LIMIT $1 every call got a custom plan: planned anew, which at
    50,000 pending requests cost more than running it)."""
    with ad.connect(dsn, min_size=1, max_size=1) as one:
        mechanic = _online_mechanic(one, make_mechanic)
        with one.as_user(make_user()) as u:
            u.create_session_request("chat", "free")
        for _ in range(8):  # psycopg prepares on the 5th execution
            with one.as_user(mechanic) as m:
                assert len(m.incoming_requests(limit=10)) == 1
        with one.as_user(mechanic) as m:
            plans = m._conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%%autodoctor.incoming_requests%%'"
            ).fetchall()
        assert len(plans) == 1 and plans[0][0] >= 3 and plans[0][1] == 0, plans
        for bad in (-1, True, 2.5, "10; SELECT 1"):
            with pytest.raises(errors.InvalidInput) as info, one.as_user(mechanic) as m:
                m.incoming_requests(limit=bad)  # type: ignore[arg-type]
            assert info.value.sqlstate == "22023"


def test_accept_transition_and_reads(
    api: Any, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    mechanic, rival = _online_mechanic(api, make_mechanic), _online_mechanic(api, make_mechanic)
    with api.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    with api.as_user(mechanic) as m:
        assert [r.id for r in m.incoming_requests()] == [req.id]
        session = m.accept_session_request(req.id)
    assert session.request_id == req.id and session.status is ad.SessionStatus.WAITING
    with pytest.raises(errors.RequestNotPending), api.as_user(rival) as r:
        r.accept_session_request(req.id)
    with api.as_user(mechanic) as m:
        assert m.transition_session(session.id, "live").status is ad.SessionStatus.LIVE
        done = m.transition_session(session.id, ad.SessionStatus.COMPLETED)
    assert done.status is ad.SessionStatus.COMPLETED
    with pytest.raises(errors.InvalidTransition), api.as_user(mechanic) as m:
        m.transition_session(session.id, "live")
    with api.as_user(customer) as u:
        assert [s.id for s in u.my_sessions()] == [session.id]
        got = u.get_session(session.id)
        assert got is not None and got.status is ad.SessionStatus.COMPLETED
        seen = u.get_session_request(req.id)
        assert seen is not None and seen.status is ad.RequestStatus.ACCEPTED
    with api.as_user(rival) as r:
        assert r.get_session(session.id) is None and r.my_sessions() == []


def test_set_mechanic_availability_is_for_mechanics_only(
    api: Any, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    with api.as_user(make_mechanic()) as m:
        me = m.set_mechanic_availability(True, latitude=48.85, longitude=2.35)
        assert me.online is True
        assert m.set_mechanic_availability(False).online is False
    with pytest.raises(errors.NotMechanic), api.as_user(make_user()) as u:
        u.set_mechanic_availability(True)


@pytest.mark.allow_orphans
def test_orphans_listed_converted_claimed_assigned_and_cancelled(
    api: Any,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    claimed, assigned = seed_orphan(customer), seed_orphan(customer)
    old = seed_orphan(customer, age="3 days")
    with api.as_service() as svc:
        assert {o.id for o in svc.orphaned_sessions()} == {claimed, assigned, old}
        assert svc.cancel_orphaned_sessions(timedelta(days=1)) == 1
        assert svc.convert_orphaned_sessions() == 2
        assert svc.convert_orphaned_sessions() == 0
    with api.as_user(make_mechanic()) as m:
        session = m.claim_orphaned_session(claimed)
    assert session.id == claimed and session.status is ad.SessionStatus.WAITING
    with pytest.raises(errors.Forbidden), api.as_user(customer) as u:
        u.claim_orphaned_session(assigned)
    _online_mechanic(api, make_mechanic)
    with api.as_service() as svc:
        assert svc.auto_assign_orphaned_sessions(10) == 1
        assert svc.orphaned_sessions() == []
    with pytest.raises(errors.Forbidden), api.as_user(customer) as u:
        u.orphaned_sessions()


# --- operations (service role) ----------------------------------------------------------------


def test_register_mechanic(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    user = make_user()
    with api.as_service() as svc:
        mechanic = svc.register_mechanic(user, expertise=["chat"], max_concurrent_sessions=2)
    assert isinstance(mechanic, ad.Mechanic) and mechanic.user_id == user
    with pytest.raises(errors.Forbidden), api.as_user(make_user()) as u:
        u.register_mechanic(user)


def test_expiry_status_pending_requests_maintenance_and_invariants(
    api: Any, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    with api.as_user(make_user()) as u:
        stale = u.create_session_request("chat", "free")
        fresh = u.create_session_request("video", "free")
    with api.as_service() as svc:
        assert [r.id for r in svc.pending_requests()] == [stale.id, fresh.id]
        assert svc.status().pending_requests == 2
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (stale.id,),
    )
    with api.as_service() as svc:
        assert svc.expire_stale_requests() == 1
        assert svc.expire_stale_requests() == 0
        assert [r.id for r in svc.pending_requests(limit=10)] == [fresh.id]
        report = svc.run_maintenance()
        assert isinstance(report, ad.MaintenanceReport) and report.expired_requests == 0
        assert svc.check_invariants() == []
        assert svc.status().expired_today == 1
    with pytest.raises(errors.Forbidden), api.as_user(make_user()) as u:
        u.run_maintenance()


def test_claim_and_complete_notifications(
    api: Any, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    _online_mechanic(api, make_mechanic)
    with api.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    with api.as_service() as svc:
        (note,) = svc.claim_notifications(10)
        assert isinstance(note, ad.Notification)
        assert svc.complete_notification(note.id).status == "sent"
    with pytest.raises(errors.Conflict), api.as_service() as svc:
        svc.complete_notification(note.id)
    with pytest.raises(errors.InvalidInput), api.as_service() as svc:
        svc.claim_notifications(0)


def test_notify_mode_and_relay_events(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    with api.as_service() as svc:
        assert svc.set_notify_mode("relay") == "relay"
    try:
        with api.as_user(make_user()) as u:
            u.create_session_request("chat", "free")
        with api.as_service() as svc:
            assert svc.relay_events() == 1
            assert svc.relay_events() == 0
    finally:
        with api.as_service() as svc:
            assert svc.set_notify_mode("transaction") == "transaction"
    with pytest.raises(errors.InvalidInput), api.as_service() as svc:
        svc.set_notify_mode("carrier-pigeon")


def test_event_watermark_is_a_transaction_id_for_every_follower(
    api: Any, make_user: Callable[..., uuid.UUID]
) -> None:
    with api.as_user(make_user()) as u:
        req = u.create_session_request("chat", "free")
    with api.as_service() as svc:
        mark = svc.event_watermark()
        assert isinstance(mark, int)
        # The request's transaction has ended: its events are below the mark.
        (event,) = [e for e in svc.events_after(0, limit=1000) if e.request_id == req.id]
        assert event.txid is not None and event.txid < mark
    with api.as_user(make_user()) as u:  # a user's own follower reads it too
        assert u.event_watermark() >= event.txid + 1


# --- events -----------------------------------------------------------------------------------


def test_events_after_is_a_snapshot_the_caller_may_see(
    api: Any, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with api.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
        u.cancel_session_request(req.id)
        mine = u.events_after(0)
    assert [e.event for e in mine] == ["new_request", "request_cancelled"]
    with api.as_user(customer) as u:
        assert u.events_after(mine[0].id) == mine[1:]
        assert u.events_after(0, limit=1) == mine[:1]


def test_events_catch_up_without_gaps_across_a_late_older_writer(
    api: Any, make_user: Callable[..., uuid.UUID]
) -> None:
    with api.as_user(make_user()) as u:
        first = u.create_session_request("chat", "free")
    follower = Follower(api)
    try:
        follower.wait_for(1)
        with api.as_user(make_user()) as older:
            low = older.create_session_request("chat", "free")  # lower event id, older xid
            with api.as_user(make_user()) as younger:
                high = younger.create_session_request("chat", "free")
            time.sleep(0.5)  # the younger one has committed: it must wait for the older
            assert len(follower.events) == 1, "delivered while an older writer was running"
        follower.wait_for(3)
        time.sleep(0.3)
    finally:
        follower.stop()
    assert [e.request_id for e in follower.events] == [first.id, low.id, high.id]
    # Resuming from the first event's cursor replays exactly the rest.
    resumed = Follower(api, after=follower.events[0].cursor)
    try:
        resumed.wait_for(2)
        time.sleep(0.3)
    finally:
        resumed.stop()
    assert [e.id for e in resumed.events] == [e.id for e in follower.events[1:]]


def test_events_reject_an_unknown_event_id(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    with api.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    events = api.events(after=10**9, reconnect=False)
    try:
        with pytest.raises(errors.InvalidInput):
            next(events)
    finally:
        events.close()


def test_notifications_stream_live_events(api: Any, make_user: Callable[..., uuid.UUID]) -> None:
    stop = threading.Event()
    got: list[ad.Event] = []

    def listen() -> None:
        for event in api.notifications(timeout=0.1, stop=stop.is_set):
            got.append(event)
            stop.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    customer = make_user()
    deadline = time.monotonic() + 15
    req = None
    while not got and time.monotonic() < deadline:  # LISTEN may not have started yet
        with api.as_user(customer) as u:
            req = u.create_session_request("chat", "free", idempotency_key=str(uuid.uuid4()))
        time.sleep(0.2)
    stop.set()
    listener.join(10)
    assert got and req is not None and got[0].event is ad.EventName.NEW_REQUEST
