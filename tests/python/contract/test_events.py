"""Following the event log without gaps: replay, live, commit order, disconnects."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors
from psycopg.conninfo import make_conninfo
from support import Follower, act_as


@pytest.fixture
def follow(db: ad.Database) -> Iterator[Callable[..., Follower]]:
    started: list[Follower] = []

    def start(after: int | ad.EventCursor = 0, **kwargs: Any) -> Follower:
        f = Follower(db, after, **kwargs)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def _logged_ids(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM autodoctor.session_events ORDER BY id")]


def test_events_replays_history_then_follows_live(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        for _ in range(3):
            u.create_session_request("chat", "free")
    f = follow(0)
    f.wait_for(3)
    with db.as_user(customer) as u:
        req = u.create_session_request("video", "free")
        u.cancel_session_request(req.id)
    f.wait_for(5)
    assert f.ids() == _logged_ids(dsn)
    assert [e.event for e in f.events[-2:]] == ["new_request", "request_cancelled"]
    assert f.events[-1].request_id == req.id and f.events[-1].txid is not None


def test_events_resume_after_an_event_id_yields_only_later_events(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    customer = make_user()
    with db.as_user(customer) as u:
        for _ in range(4):
            u.create_session_request("chat", "free")
    ids = _logged_ids(dsn)
    f = follow(ids[1])
    f.wait_for(2)
    time.sleep(0.3)
    assert f.ids() == ids[2:]


def test_lower_event_id_committed_later_by_older_transaction_is_not_skipped(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    a, b = make_user(), make_user()
    f = follow(0)
    with db.as_user(a) as older:
        low = older.create_session_request("chat", "free")  # lower event id, older xid
        with db.as_user(b) as younger:
            younger.create_session_request("chat", "free")  # higher event id
        # The younger transaction has committed; its event must wait for the older one.
        time.sleep(0.5)
        assert f.events == [], "an event was delivered while an older writer was running"
    f.wait_for(2)
    assert f.events[0].request_id == low.id
    assert sorted(f.ids()) == _logged_ids(dsn) and len(set(f.ids())) == 2


def test_lower_event_id_of_younger_transaction_is_not_skipped(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    a, b = make_user(), make_user()
    f = follow(0)
    with db.as_user(a) as older:
        older._conn.execute("SELECT pg_current_xact_id()")  # older gets its xid first
        with db.as_user(b) as younger:
            younger_req = younger.create_session_request("chat", "free")  # lower event id
            older_req = older.create_session_request("chat", "free")  # higher event id
        time.sleep(0.5)
        assert f.events == []
    f.wait_for(2)
    # Delivered in transaction order: the older transaction's (higher-id) event first.
    assert [e.request_id for e in f.events] == [older_req.id, younger_req.id]
    assert f.events[0].id > f.events[1].id


def _hold_a_transaction_id(conn: psycopg.Connection[Any]) -> int:
    """Gives conn's open transaction a transaction id (as any writer has) and returns it."""
    row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def _snapshot_xmin(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_a_writer_in_another_database_does_not_hold_back_followers(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    """A transaction of another database (a migration, a batch job) cannot log an event
    here: the follower delivers while it stays open. v0.1.0's cluster-wide mark
    (pg_snapshot_xmin) stayed below the event until that transaction ended."""
    customer = make_user()
    f = follow(0)
    elsewhere = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(elsewhere) as unrelated:
        unrelated_xid = _hold_a_transaction_id(unrelated)
        with db.as_user(customer) as u:
            req = u.create_session_request("chat", "free")
        f.wait_for(1, timeout=10)
        assert f.events[0].request_id == req.id
        assert f.events[0].txid is not None and f.events[0].txid > unrelated_xid
        # The control: the cluster-wide mark is still held below the delivered event.
        assert _snapshot_xmin(dsn) <= unrelated_xid < f.events[0].txid
        unrelated.rollback()


def _create_request_in(
    conn: psycopg.Connection[Any], user: uuid.UUID
) -> tuple[uuid.UUID, tuple[int, int]]:
    """Creates a request as user inside conn's open transaction; returns its id and the
    place of the event it logged in the log, (txid, id)."""
    act_as(conn, "authenticated", user)
    row = conn.execute(
        "SELECT id FROM autodoctor.create_session_request('chat', 'free')"
    ).fetchone()
    assert row is not None
    conn.execute("RESET role")
    pos = conn.execute(
        "SELECT txid::text::bigint, id FROM autodoctor.session_events WHERE request_id = %s",
        (row[0],),
    ).fetchone()
    assert pos is not None
    return row[0], (int(pos[0]), int(pos[1]))


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_a_writer_of_this_database_that_has_logged_nothing_does_not_hold_back(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    follow: Callable[..., Follower],
    isolation: str,
) -> None:
    """A running transaction of this database that holds a transaction id but has logged
    no event (a data migration, a batch job, a caller that wrote first) is passed: later
    events are delivered while it stays open. When it does log an event afterwards, the
    event is positioned after everything already delivered, so the follower still gets it
    (under its own id, as before 0.2, it would land behind the follower's cursor and be
    skipped). In REPEATABLE READ and SERIALIZABLE the transaction's snapshot is older than
    the event, so the position cannot come from it."""
    customer, other = make_user(), make_user()
    f = follow(0)
    with psycopg.connect(dsn) as older:
        older.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        older.execute("SELECT count(*) FROM autodoctor.plans").fetchone()  # its snapshot
        older_xid = _hold_a_transaction_id(older)
        with db.as_user(customer) as u:
            later = u.create_session_request("chat", "free")
        f.wait_for(1, timeout=10)
        assert [e.request_id for e in f.events] == [later.id]
        delivered = f.events[0].cursor
        assert delivered is not None and delivered.txid > older_xid
        # The control: the snapshot's xmin is still held at the open transaction.
        assert _snapshot_xmin(dsn) <= older_xid
        late_request, late_place = _create_request_in(older, other)
        assert late_place > (delivered.txid, delivered.id), (
            "logged late at or before an event already delivered: a follower skips it"
        )
        older.commit()
    f.wait_for(2, timeout=10)
    assert [e.request_id for e in f.events] == [later.id, late_request]


def test_a_writer_that_has_logged_an_event_holds_back_later_ones(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    """A running transaction that has logged an event may commit it at any time, so
    events positioned after it wait for it, and its own event is delivered first once it
    commits: the log is delivered in (txid, id) order, never with a gap."""
    customer, other = make_user(), make_user()
    f = follow(0)
    with psycopg.connect(dsn) as older:
        first, _ = _create_request_in(older, other)
        with db.as_user(customer) as u:
            later = u.create_session_request("chat", "free")
        time.sleep(0.5)
        assert f.events == [], "delivered past a running transaction that has logged an event"
        older.commit()
    f.wait_for(2)
    assert [e.request_id for e in f.events] == [first, later.id]


def test_an_event_logged_late_at_the_marks_last_position_is_not_skipped(
    dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    """Two transactions hold ids and log nothing, a later one ends, so the mark passes both
    (to the snapshot's xmax); then both log an event, the younger first, and nothing else
    ends meanwhile: both events sit at the mark's last position (the newest ended id, above
    both their ids), ordered by id. The older
    commits first. A reader that took the mark in a statement of its own would now read the
    older's event and move its cursor past the younger's, which commits later: skipped. The
    package's read takes the mark in its own statement: it waits for the younger (it has
    logged an event), then returns both, in (txid, id) order."""
    users = [make_user(), make_user()]
    for _ in range(5):
        with (
            psycopg.connect(dsn) as older,
            psycopg.connect(dsn) as younger,
            psycopg.connect(dsn, autocommit=True) as reader,
        ):
            _hold_a_transaction_id(older)
            _hold_a_transaction_id(younger)
            reader.execute("SELECT pg_current_xact_id()")  # a later transaction ends
            row = reader.execute("SELECT autodoctor.event_watermark()::text::bigint").fetchone()
            assert row is not None
            mark = int(row[0])
            young_req, young = _create_request_in(younger, users[1])
            old_req, old = _create_request_in(older, users[0])
            older.commit()
            if not old[0] == young[0] == mark - 1:  # something else ended meanwhile: again
                younger.rollback()
                continue
            assert young < old
            mine = {young_req, old_req}
            stale = [
                (int(r[0]), int(r[1]))
                for r in reader.execute(
                    "SELECT txid::text::bigint, id, request_id FROM autodoctor.session_events"
                    " WHERE txid < %s::text::xid8 ORDER BY txid, id",
                    (str(mark),),
                )
                if r[2] in mine
            ]
            assert stale == [old], "the scenario: a stale mark shows the older's event only"

            def read(mine: set[uuid.UUID] = mine) -> list[tuple[int, int]]:
                return [
                    (int(r[0]), int(r[1]))
                    for r in reader.execute(
                        "SELECT e.txid::text::bigint, e.id, e.request_id"
                        " FROM autodoctor.session_events e"
                        " WHERE e.txid < (SELECT autodoctor.event_watermark())"
                        " ORDER BY e.txid, e.id"
                    )
                    if r[2] in mine
                ]

            assert read() == [], "read past a transaction that has logged an event"
            younger.commit()
            assert read() == [young, old]
            return
    pytest.fail("5 attempts, and each time another transaction ended between the steps")


def test_followers_and_the_relay_deliver_every_committed_event_once_while_writers_log_late(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    """Bounded stress, with real connections: prompt writers, and late writers that take a
    transaction id first (in READ COMMITTED, REPEATABLE READ or SERIALIZABLE), wait, then
    log an event or not and commit or roll back, all at once for 3 s, in relay mode with the
    relay polling every few milliseconds. A cursor follower and a plain LISTEN client both
    end with exactly the committed events, each once; the LISTEN client in (txid, id) order."""
    customers = [make_user() for _ in range(6)]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("UPDATE autodoctor.settings SET max_pending_requests = 1000")
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    f = follow(0)
    stop_writers, stop_all = threading.Event(), threading.Event()
    errors_seen: list[BaseException] = []
    heard: list[int] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported by the test
                errors_seen.append(exc)

        return run

    def prompt(customer: uuid.UUID) -> Callable[[], None]:
        def write() -> None:
            while not stop_writers.is_set():
                with db.as_user(customer) as u:
                    u.create_session_request("chat", "free")

        return write

    def late(customer: uuid.UUID, seed: int) -> Callable[[], None]:
        levels = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]

        def write() -> None:
            n = seed
            with psycopg.connect(dsn) as conn:
                while not stop_writers.is_set():
                    n += 1
                    conn.execute(f"SET TRANSACTION ISOLATION LEVEL {levels[n % 3]}")
                    _hold_a_transaction_id(conn)
                    time.sleep((n % 5) * 0.01)
                    try:
                        if n % 4:
                            _create_request_in(conn, customer)
                        if n % 7 == 0:
                            conn.rollback()
                        else:
                            conn.commit()
                    except psycopg.errors.SerializationFailure:
                        conn.rollback()

        return write

    def relay() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop_all.is_set():
                conn.execute("SELECT autodoctor.relay_events()")
                time.sleep(0.005)

    def listen() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("LISTEN autodoctor")
            while not stop_all.is_set():
                for note in conn.notifies(timeout=0.2, stop_after=100):
                    heard.append(int(json.loads(note.payload)["event_id"]))

    listener = threading.Thread(target=guarded(listen))
    listener.start()
    time.sleep(0.2)
    writers = [threading.Thread(target=guarded(prompt(c))) for c in customers[:3]]
    writers += [threading.Thread(target=guarded(late(c, i))) for i, c in enumerate(customers[3:])]
    relayer = threading.Thread(target=guarded(relay))
    for t in [*writers, relayer]:
        t.start()
    time.sleep(3)
    stop_writers.set()
    for t in writers:
        t.join(30)
    expected = _logged_ids(dsn)
    f.wait_for(len(expected), timeout=30)
    deadline = time.monotonic() + 30
    while len(heard) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything announced twice arrives too
    stop_all.set()
    relayer.join(30)
    listener.join(30)
    assert not errors_seen, errors_seen
    assert len(expected) > 50, "the writers barely wrote: the test proved nothing"
    assert len(f.ids()) == len(set(f.ids())), "the follower yielded an event twice"
    assert sorted(f.ids()) == expected
    assert len(heard) == len(set(heard)), "the relay announced an event twice"
    assert sorted(heard) == expected
    with psycopg.connect(dsn) as conn:
        order = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM autodoctor.session_events WHERE id = ANY(%s) ORDER BY txid, id",
                (heard,),
            )
        ]
    assert heard == order, "the relay announced out of (txid, id) order"


def test_an_idle_relay_only_reads(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    """relay_events() with nothing final to announce takes no row lock: no transaction id,
    so no WAL and no commit flush for a relay polling every few milliseconds."""
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    try:
        with db.as_user(make_user()) as u:
            u.create_session_request("chat", "free")
        with psycopg.connect(dsn) as conn:
            conn.execute("SET ROLE service_role")
            assert conn.execute("SELECT autodoctor.relay_events()").fetchone() == (1,)
            assert conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() != (None,)
            conn.commit()
            assert conn.execute("SELECT autodoctor.relay_events()").fetchone() == (0,)
            assert conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)
            conn.commit()
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_the_relay_is_not_held_back_by_a_writer_in_another_database(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    try:
        elsewhere = make_conninfo(dsn, dbname="postgres")
        with (
            psycopg.connect(dsn, autocommit=True) as listener,
            psycopg.connect(elsewhere) as unrelated,
        ):
            listener.execute("LISTEN autodoctor")
            unrelated_xid = _hold_a_transaction_id(unrelated)
            with db.as_user(make_user()) as u:
                req = u.create_session_request("chat", "free")
            with db.as_service() as svc:
                assert svc.relay_events() == 1
            payloads = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=1)]
            assert [(p["event"], p["request_id"]) for p in payloads] == [
                ("new_request", str(req.id))
            ]
            assert _snapshot_xmin(dsn) <= unrelated_xid
            unrelated.rollback()
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_events_committed_while_disconnected_are_replayed_once(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    a, b = make_user(), make_user()
    first = follow(0)
    with db.as_user(a) as u:
        u.create_session_request("chat", "free")
    first.wait_for(1)
    first.stop()
    cursor = first.events[-1].cursor
    assert cursor is not None
    # While nobody listens: a younger transaction logs a lower id and commits first.
    with db.as_user(a) as older:
        older._conn.execute("SELECT pg_current_xact_id()")
        with db.as_user(b) as younger:
            younger.create_session_request("chat", "free")
            older.create_session_request("chat", "free")
    again = follow(cursor)
    again.wait_for(2)
    time.sleep(0.3)
    assert sorted(first.ids() + again.ids()) == _logged_ids(dsn)
    assert len(set(again.ids())) == len(again.ids()) == 2


def test_listener_killed_mid_stream_ends_with_exactly_the_committed_events(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    customers = [make_user() for _ in range(3)]
    with psycopg.connect(dsn, autocommit=True) as admin:  # each writes 40 requests
        admin.execute("UPDATE autodoctor.settings SET max_pending_requests = 1000")
    f = follow(0)
    stop_writers = threading.Event()

    def write(customer: uuid.UUID) -> None:
        for i in range(40):
            if stop_writers.is_set():
                return
            with db.as_user(customer) as u:
                req = u.create_session_request("chat", "free")
                if i % 3 == 0:
                    u.cancel_session_request(req.id)

    writers = [threading.Thread(target=write, args=(c,)) for c in customers]
    for w in writers:
        w.start()
    with psycopg.connect(dsn, autocommit=True) as admin:
        for _ in range(5):
            time.sleep(0.15)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE '%session_events AS e%'"
                " AND pid <> pg_backend_pid()"
            )
    for w in writers:
        w.join(60)
    expected = _logged_ids(dsn)
    f.wait_for(len(expected), timeout=30)
    time.sleep(0.3)
    assert len(f.ids()) == len(set(f.ids())), "an event was yielded twice"
    assert sorted(f.ids()) == expected


def test_listener_keeps_the_callers_application_name(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    f = follow(0)
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    f.wait_for(1)  # the listener is connected and has read the log
    with psycopg.connect(dsn, autocommit=True) as admin:
        names = [
            r[0]
            for r in admin.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND (query LIKE 'LISTEN%' OR query LIKE '%session_events AS e%'"
                "      OR query LIKE '%relay_events%')"
            )
        ]
    assert "autodoctor-db" in names, names


def test_events_after_an_unknown_event_id_is_invalid_input(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    gen = db.events(after=10**9, poll_interval=0.1, reconnect=False)
    with pytest.raises(errors.InvalidInput):
        next(gen)


def test_events_require_resync_below_oldest_retained(
    db: ad.Database, make_user: Callable[..., uuid.UUID], admin: psycopg.Connection[Any]
) -> None:
    with db.as_user(make_user()) as u:
        for _ in range(3):
            u.create_session_request("chat", "free")
    # Simulate retention: the first events are gone (the owner bypasses the append-only
    # trigger only with triggers disabled, as a retention job dropping a partition would).
    admin.execute(
        "ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_append_only"
    )
    admin.execute(
        "DELETE FROM autodoctor.session_events"
        " WHERE id < (SELECT max(id) FROM autodoctor.session_events)"
    )
    admin.execute("ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_append_only")
    oldest = admin.execute("SELECT min(id) FROM autodoctor.session_events").fetchone()
    assert oldest is not None
    gen = db.events(after=oldest[0] - 1, poll_interval=0.1, reconnect=False)
    with pytest.raises(errors.ResyncNeeded) as info:
        next(gen)
    assert info.value.reason == "cursor_too_old"


def test_relay_mode_writers_do_not_notify_and_one_relay_notifies_per_batch(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    customer = make_user()
    with db.as_service() as svc:
        assert svc.set_notify_mode("relay") == "relay"
    try:
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute("LISTEN autodoctor")
            with db.as_user(customer) as u:
                for _ in range(3):
                    u.create_session_request("chat", "free")
            assert list(listener.notifies(timeout=0.5)) == []  # the hot path is silent
            with db.as_service() as svc:
                assert svc.relay_events() == 3
                assert svc.relay_events() == 0
            notes = list(listener.notifies(timeout=2, stop_after=3))
        # The same ids-only payloads as transaction mode, all from one relay transaction.
        payloads = [json.loads(n.payload) for n in notes]
        assert [p["event"] for p in payloads] == ["new_request"] * 3
        assert len({n.pid for n in notes}) == 1
        assert set(payloads[0]) == {
            "event_id",
            "event",
            "request_id",
            "session_id",
            "session_type",
            "plan_code",
            "at",
        }
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_relay_mode_followers_still_get_every_event(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    customer = make_user()
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    try:
        f = follow(0)
        with db.as_user(customer) as u:
            for _ in range(5):
                u.create_session_request("chat", "free")
        f.wait_for(5)
        assert f.ids() == _logged_ids(dsn)
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_set_notify_mode_rejects_unknown_modes(db: ad.Database) -> None:
    with pytest.raises(errors.InvalidInput) as info, db.as_service() as svc:
        svc.set_notify_mode("carrier-pigeon")  # type: ignore[arg-type]
    assert info.value.reason == "invalid_notify_mode"


def test_relay_events_rejects_a_bad_batch_size_and_is_service_only(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE service_role")
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT autodoctor.relay_events(0)")
    assert info.value.sqlstate == "22023"
    assert info.value.diag.message_detail == "invalid_batch_size"
    with pytest.raises(errors.Forbidden), db.as_user(make_user()) as u:
        u.relay_events()


def test_relay_announces_an_event_that_commits_after_a_later_one(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    """Out-of-order commits, 20 times: the earlier transaction's event is announced to a
    plain LISTEN client too (v0.1.0 announced 0 of 20), each event exactly once."""
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    try:
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute("LISTEN autodoctor")
            announced: list[int] = []
            for _ in range(20):
                # New customers each round: one may hold only a few pending requests.
                early_customer, late_customer = make_user(), make_user()
                with psycopg.connect(dsn) as early:
                    # The early transaction logs its event first and commits last.
                    early.execute(
                        "SELECT set_config('role', 'authenticated', true),"
                        " set_config('request.jwt.claims', %s, true)",
                        (json.dumps({"role": "authenticated", "sub": str(early_customer)}),),
                    )
                    early.execute("SELECT autodoctor.create_session_request('chat', 'free')")
                    with db.as_user(late_customer) as u:
                        u.create_session_request("chat", "free")
                    with db.as_service() as svc:
                        svc.relay_events()  # the late event is not final yet: held back
                    early.commit()
                with db.as_service() as svc:
                    svc.relay_events()
                announced += [
                    json.loads(n.payload)["event_id"] for n in listener.notifies(timeout=0.3)
                ]
            # An event is final once every older transaction of the cluster has ended:
            # relay until all are announced (bounded), as the worker would every 100 ms.
            logged = _logged_ids(dsn)
            for _ in range(100):
                if sorted(announced) == logged:
                    break
                with db.as_service() as svc:
                    svc.relay_events()
                announced += [
                    json.loads(n.payload)["event_id"] for n in listener.notifies(timeout=0.2)
                ]
        assert sorted(announced) == logged  # every event, once
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_the_worker_follows_a_switch_to_relay_mode_at_run_time(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID]
) -> None:
    from autodoctor_db.worker import SmtpSettings, Worker

    worker = Worker(db, SmtpSettings(port=1), maintenance="never", poll_interval=0.1)
    running = threading.Thread(target=worker.run)
    running.start()  # in transaction mode
    try:
        time.sleep(0.3)
        with db.as_service() as svc:
            svc.set_notify_mode("relay")
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute("LISTEN autodoctor")
            with db.as_user(make_user()) as u:
                req = u.create_session_request("video", "free")
            notes = list(listener.notifies(timeout=10, stop_after=1))
        assert [json.loads(n.payload)["request_id"] for n in notes] == [str(req.id)]
    finally:
        worker.stop()
        running.join(30)
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")


def test_a_follower_started_in_transaction_mode_relays_after_a_switch(
    db: ad.Database, dsn: str, make_user: Callable[..., uuid.UUID], follow: Callable[..., Follower]
) -> None:
    """No worker: the service follower itself relays for plain LISTEN clients, though the
    mode was 'transaction' when it started."""
    f = follow(0)
    time.sleep(0.3)
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    try:
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute("LISTEN autodoctor")
            with db.as_user(make_user()) as u:
                req = u.create_session_request("chat", "free")
            notes = list(listener.notifies(timeout=10, stop_after=1))
        assert [json.loads(n.payload)["request_id"] for n in notes] == [str(req.id)]
        f.wait_for(1)
    finally:
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")
