"""The async twin: the same surface, awaited; and the layers kept in step."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors

# The driver against the contract: also run through pgbouncer (conftest.py).
pytestmark = pytest.mark.pooler


def _public(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}


def test_async_caller_has_the_same_methods_and_signatures() -> None:
    assert _public(ad.AsyncCaller) == _public(ad.Caller)
    for name in _public(ad.Caller):
        sync_sig = inspect.signature(getattr(ad.Caller, name))
        async_sig = inspect.signature(getattr(ad.AsyncCaller, name))
        assert list(sync_sig.parameters) == list(async_sig.parameters), name
        assert inspect.iscoroutinefunction(getattr(ad.AsyncCaller, name)), name
        assert getattr(getattr(ad.AsyncCaller, name), "__maps_errors__", False), name


def test_async_database_has_the_same_surface() -> None:
    assert _public(ad.Database) - {"notifications"} <= _public(ad.AsyncDatabase) | {"close"}


def test_async_flow_create_accept_conflict_and_events(
    dsn: str, make_user: Callable[..., uuid.UUID], make_mechanic: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    m1, m2 = make_mechanic(), make_mechanic()

    async def scenario() -> None:
        db = await ad.connect_async(dsn, max_size=4)
        try:
            async with db.as_user(customer) as u:
                req = await u.create_session_request("video", "free", notes="async")
            async with db.as_user(m1) as m:
                session = await m.accept_session_request(req.id)
            assert session.request_id == req.id
            with pytest.raises(errors.RequestNotPending):
                async with db.as_user(m2) as m:
                    await m.accept_session_request(req.id)
            async with db.as_user(customer) as u:
                mine = await u.my_sessions()
            assert [s.id for s in mine] == [session.id]
            seen: list[ad.Event] = []
            async for ev in db.events(after=0, poll_interval=0.1):
                seen.append(ev)
                if len(seen) == 2:
                    break
            assert [e.event for e in seen] == ["new_request", "request_accepted"]
        finally:
            await db.close()

    asyncio.run(scenario())


def test_async_errors_are_mapped(dsn: str, make_user: Callable[..., uuid.UUID]) -> None:
    user = make_user()

    async def scenario() -> None:
        db = await ad.connect_async(dsn, max_size=2)
        try:
            with pytest.raises(errors.InvalidInput) as info:
                async with db.as_user(user) as u:
                    await u.create_session_request("chat", "nope")
            assert info.value.reason == "unknown_plan"
        finally:
            await db.close()

    asyncio.run(scenario())


def test_async_error_caught_inside_the_block_rolls_back(
    dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()

    async def scenario() -> int:
        db = await ad.connect_async(dsn, max_size=2)
        try:
            async with db.as_user(customer) as u:
                await u.create_session_request("chat", "free")
                with pytest.raises(errors.InvalidInput):
                    await u.create_session_request("chat", "no-such-plan")
            async with db.as_user(customer) as u:  # the pooled connection is clean again
                await u.create_session_request("video", "free")
        finally:
            await db.close()
        return 0

    asyncio.run(scenario())
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT session_type::text FROM autodoctor.session_requests").fetchall()
    assert rows == [("video",)], "the failed block's first request must be rolled back"
