"""A customer holds at most settings.max_pending_requests pending requests (PT429)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors

CAR = {"make": "Ford", "model": "Focus", "year": 2012}


@pytest.mark.direct_only
def test_concurrent_creates_never_exceed_the_cap(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    admin.execute("UPDATE autodoctor.settings SET max_pending_requests = 2")
    customer = make_user()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def create(i: int) -> None:
        start.wait(10)
        try:
            with db.as_user(customer) as u:
                if i % 2:
                    u.submit_intake("chat", "free", CAR, f"noise {i}")
                else:
                    u.create_session_request("chat", "free")
            outcomes.append("created")
        except errors.TooManyRequests as exc:
            assert exc.reason == "too_many_pending_requests" and exc.sqlstate == "PT429"
            outcomes.append("429")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["429"] * 6 + ["created"] * 2
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.session_requests WHERE customer_id = %s", (customer,)
    ).fetchone() == (2,)
    # Nothing of the refused calls stayed: no intake without its request, no event.
    assert admin.execute("SELECT count(*) FROM autodoctor.intakes").fetchone()[0] <= 2  # type: ignore[index]
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.session_events WHERE event = 'new_request'"
    ).fetchone() == (2,)


def test_a_retry_at_the_cap_returns_the_first_request_and_a_freed_slot_is_usable(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    admin.execute("UPDATE autodoctor.settings SET max_pending_requests = 1")
    customer = make_user()
    with db.as_user(customer) as u:
        first = u.create_session_request("video", "free", idempotency_key="k1")
    with db.as_user(customer) as u:  # the same call again: not a new request
        assert u.create_session_request("video", "free", idempotency_key="k1").id == first.id
    with pytest.raises(errors.TooManyRequests) as info, db.as_user(customer) as u:
        u.create_session_request("chat", "free")
    assert "at most 1 pending" in (info.value.hint or "")
    with db.as_user(customer) as u:
        u.cancel_session_request(first.id)
        u.create_session_request("chat", "free")  # the slot is free again
