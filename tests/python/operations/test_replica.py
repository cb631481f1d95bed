"""A hot standby for dashboard reads: what the primary writes shows up there, writes fail."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import autodoctor_db as ad
import pytest
from autodoctor_db import errors
from autodoctor_db.calls import Call

REPLICA_PORT = os.environ.get("AUTODOCTOR_TEST_REPLICA_PORT")


@pytest.fixture
def replicated(dsn: str) -> Iterator[ad.Database]:
    if not REPLICA_PORT:
        pytest.skip("no replica: `make pytest` starts one (scripts/db.sh replica-start)")
    read_dsn = dsn.replace(f"port={os.environ.get('PGPORT', '5432')}", f"port={REPLICA_PORT}")
    database = ad.connect(dsn, read_dsn=read_dsn, max_size=4)
    yield database
    database.close()


def test_request_created_on_primary_is_visible_on_standby_within_bounded_wait(
    replicated: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    with replicated.as_user(customer) as u:
        req = u.create_session_request("video", "free")
    deadline = time.monotonic() + 10
    seen: list[ad.IncomingRequest] = []
    while time.monotonic() < deadline:
        with replicated.as_user(mechanic, read_only=True) as m:
            seen = m.incoming_requests()
        if seen:
            break
        time.sleep(0.05)
    assert [r.id for r in seen] == [req.id]
    with replicated.as_user(mechanic, read_only=True) as m:
        in_recovery = m._run(Call("SELECT pg_is_in_recovery()", {}, None, lambda rows: rows[0][0]))
    assert in_recovery is True


def test_write_on_standby_raises_read_only(
    replicated: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with (
        pytest.raises(errors.ReadOnly) as info,
        replicated.as_user(make_user(), read_only=True) as u,
    ):
        u.create_session_request("chat", "free")
    assert info.value.sqlstate == "25006"


def test_status_reports_replication_lag(replicated: ad.Database) -> None:
    replicas = replicated.replication()
    assert replicas and replicas[0].state == "streaming"
    assert replicas[0].lag_bytes is not None and replicas[0].lag_bytes >= 0
