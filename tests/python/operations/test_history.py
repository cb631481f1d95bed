"""Bounded history: monthly partitions ahead, retention that drops old months."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors


def _partitions(admin: psycopg.Connection[Any], table: str) -> list[str]:
    rows = admin.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (f"autodoctor.{table}",),
    ).fetchall()
    return [r[0] for r in rows]


def test_history_tables_have_this_and_next_months_partitions(
    admin: psycopg.Connection[Any],
) -> None:
    this_month = admin.execute("SELECT to_char(now(), 'YYYY\"m\"MM')").fetchone()
    assert this_month is not None
    for table in ("session_events", "notification_outbox"):
        parts = _partitions(admin, table)
        assert f"{table}_{this_month[0]}" in parts
        assert len(parts) >= 13


def test_retention_drops_old_months_but_keeps_pending_mail_and_needs_resync(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    mechanic = make_mechanic()
    for table, month in (
        ("session_events", "2020-01"),
        ("notification_outbox", "2020-01"),
        ("notification_outbox", "2020-02"),
    ):
        name = f"{table}_{month.replace('-', 'm')}"
        admin.execute(
            f"CREATE TABLE autodoctor.{name} PARTITION OF autodoctor.{table}"
            f" FOR VALUES FROM ('{month}-01') TO (('{month}-01'::date + interval '1 month'))"
        )
    admin.execute(
        "INSERT INTO autodoctor.session_events (event, at) VALUES ('new_request', '2020-01-15')"
    )
    admin.execute(
        "INSERT INTO autodoctor.notification_outbox (kind, mechanic_id, created_at, status)"
        " VALUES ('new_request', %s, '2020-01-10', 'sent'),"
        " ('new_request', %s, '2020-02-10', 'pending')",
        (mechanic, mechanic),
    )
    old_event = admin.execute("SELECT min(id) FROM autodoctor.session_events").fetchone()
    assert old_event is not None
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")

    with db.as_service() as svc:
        report = svc.run_maintenance()
    assert report.partitions_dropped == 2
    assert "session_events_2020m01" not in _partitions(admin, "session_events")
    outbox = _partitions(admin, "notification_outbox")
    assert "notification_outbox_2020m01" not in outbox
    assert "notification_outbox_2020m02" in outbox  # still holds a pending e-mail

    gen = db.events(after=old_event[0], poll_interval=0.1, reconnect=False)
    with pytest.raises(errors.ResyncNeeded):
        next(gen)


def test_event_log_refuses_update_delete_and_truncate(
    db: ad.Database, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    for statement in (
        "UPDATE autodoctor.session_events SET event = 'request_expired'",
        "DELETE FROM autodoctor.session_events",
        "TRUNCATE autodoctor.session_events",
    ):
        with pytest.raises(psycopg.Error) as info:
            admin.execute(statement)
        assert info.value.sqlstate == "42501"
        assert info.value.diag.message_detail == "append_only"
