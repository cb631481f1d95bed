"""The worker against a real SMTP server on loopback (aiosmtpd), and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from aiosmtpd.controller import Controller
from autodoctor_db.worker import SmtpSettings, Worker


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.fail_next = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 Requested action aborted: try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _queue(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    n_mechanics: int = 2,
) -> uuid.UUID:
    mechanics = [make_mechanic() for _ in range(n_mechanics)]
    for m in mechanics:
        with db.as_user(m) as c:
            c.set_mechanic_availability(True)
    with db.as_user(make_user("Secret Name")) as u:
        return u.create_session_request("chat", "free", notes="secret notes").id


def _fan_out(admin: psycopg.Connection[Any]) -> None:
    """Queue the new requests' e-mails now, as the next claim would (the fan-out)."""
    admin.execute("SELECT autodoctor._fan_out_new_requests(1000)")


def test_worker_sends_each_queued_email_once(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    request_id = _queue(db, make_user, make_mechanic)
    # The create queued nothing: the worker's claim fans the request out, then sends.
    assert admin.execute("SELECT count(*) FROM autodoctor.notification_outbox").fetchone() == (0,)
    worker = Worker(
        db, SmtpSettings(port=port, sender="dispatch@example.test"), maintenance="never"
    )
    assert worker.drain_once() == ad.worker.RoundResult(sent=2)
    assert worker.drain_once() == ad.worker.RoundResult()
    assert len(inbox.messages) == 2
    for msg in inbox.messages:
        body = msg.get_payload()
        assert str(request_id) in body
        assert "Secret Name" not in body and "secret notes" not in body
        assert msg["From"] == "dispatch@example.test"
    rows = admin.execute(
        "SELECT status, attempts, sent_at IS NOT NULL FROM autodoctor.notification_outbox"
    ).fetchall()
    assert rows == [("sent", 1, True)] * 2


def test_worker_retries_with_backoff_then_fails_for_good(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    inbox.fail_next = 10
    worker = Worker(db, SmtpSettings(port=port), maintenance="never", max_attempts=3)
    assert worker.drain_once() == ad.worker.RoundResult(retried=1)
    row = admin.execute(
        "SELECT status, attempts, last_error, next_attempt_at > now() + interval '20 seconds'"
        " FROM autodoctor.notification_outbox"
    ).fetchone()
    assert row is not None and row[0:2] == ("pending", 1) and "451" in row[2] and row[3]
    assert worker.drain_once() == ad.worker.RoundResult()  # not due yet
    for expected in (ad.worker.RoundResult(retried=1), ad.worker.RoundResult(failed=1)):
        admin.execute("UPDATE autodoctor.notification_outbox SET next_attempt_at = now()")
        assert worker.drain_once() == expected
    assert admin.execute(
        "SELECT status, attempts FROM autodoctor.notification_outbox"
    ).fetchone() == (
        "failed",
        3,
    )
    assert inbox.messages == []


def test_worker_recovers_when_smtp_server_is_down(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    down = Worker(db, SmtpSettings(port=1, timeout=2), maintenance="never")
    assert down.drain_once() == ad.worker.RoundResult(retried=1)
    admin.execute("UPDATE autodoctor.notification_outbox SET next_attempt_at = now()")
    up = Worker(db, SmtpSettings(port=port), maintenance="never")
    assert up.drain_once() == ad.worker.RoundResult(sent=1)
    assert len(inbox.messages) == 1


def test_two_workers_never_send_the_same_row(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    for _ in range(3):
        _queue(db, make_user, make_mechanic, n_mechanics=2)
    _fan_out(admin)  # the six e-mails are queued (the fan-out races are in test_fan_out.py)
    a = Worker(db, SmtpSettings(port=port), maintenance="never", batch_size=2)
    b = Worker(db, SmtpSettings(port=port), maintenance="never", batch_size=2)
    with db.as_service() as hold:
        held = hold.claim_notifications(2)  # another worker holds two rows meanwhile
        ra, rb = a.drain_once(), b.drain_once()
        assert ra.sent + rb.sent == 4
    assert len(held) == 2
    ids = [m["X-Autodoctor-Notification"] for m in inbox.messages]
    assert len(ids) == len(set(ids)) == 4
    assert not {str(n.id) for n in held} & set(ids)


def _cli_env(dsn: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AUTODOCTOR_DSN"] = dsn
    return env


def test_cli_worker_runs_maintenance_sends_mail_and_stops_on_sigterm(
    dsn: str,
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    mechanic = make_mechanic()
    with db.as_user(mechanic) as m:
        m.set_mechanic_availability(True)
    orphan = seed_orphan(make_user())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autodoctor_db",
            "worker",
            "--smtp-port",
            str(port),
            "--poll",
            "0.2",
        ],
        env=_cli_env(dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not inbox.messages:
            time.sleep(0.1)
        assert inbox.messages, "the worker sent nothing"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "worker stopped" in out
    row = admin.execute(
        "SELECT mechanic_id FROM autodoctor.sessions WHERE id = %s", (orphan,)
    ).fetchone()
    assert row == (mechanic,)
    assert inbox.messages[0]["Subject"] == "A session was assigned to you"


def test_cli_status_requests_and_listen(
    dsn: str, db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user("Cli Customer")) as u:
        req = u.create_session_request("video", "free")
    status = subprocess.run(
        [sys.executable, "-m", "autodoctor_db", "status"],
        env=_cli_env(dsn),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.returncode == 0, status.stderr
    assert "pending requests   1" in status.stdout
    requests = subprocess.run(
        [sys.executable, "-m", "autodoctor_db", "requests"],
        env=_cli_env(dsn),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert str(req.id) in requests.stdout and "Cli Customer" in requests.stdout
    listen = subprocess.Popen(
        [sys.executable, "-m", "autodoctor_db", "listen", "--after", "0", "--poll", "0.1"],
        env=_cli_env(dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stdout is not None
        line = listen.stdout.readline()
    finally:
        listen.send_signal(signal.SIGTERM)
        listen.communicate(timeout=20)
    assert "new_request" in line and str(req.id) in line


def test_cli_says_clearly_when_the_database_is_unreachable_or_not_deployed(dsn: str) -> None:
    down = subprocess.run(
        [sys.executable, "-m", "autodoctor_db", "--dsn", "host=127.0.0.1 port=1", "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 3 and "cannot connect" in down.stderr
    other = dsn.replace(dsn.split("dbname=")[1].split()[0], "postgres")
    missing = subprocess.run(
        [sys.executable, "-m", "autodoctor_db", "--dsn", other, "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 4 and "not deployed" in missing.stderr


def test_outbox_functions_refuse_bad_input_and_unknown_or_done_rows(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    with pytest.raises(ad.errors.InvalidInput) as info, db.as_service() as svc:
        svc.claim_notifications(0)
    assert (info.value.sqlstate, info.value.reason) == ("22023", "invalid_batch_size")
    with db.as_service() as svc:
        (note,) = svc.claim_notifications(10)
        with pytest.raises(ad.errors.InvalidInput) as info:
            svc.complete_notification(note.id, max_attempts=0)
    assert info.value.reason == "invalid_max_attempts"
    with db.as_service() as svc:
        (note,) = svc.claim_notifications(10)
        assert svc.complete_notification(note.id).status == "sent"
    with pytest.raises(ad.errors.Conflict) as info, db.as_service() as svc:
        svc.complete_notification(note.id)
    assert (info.value.sqlstate, info.value.reason) == ("PT409", "notification_not_pending")
    with pytest.raises(ad.errors.NotFound) as info, db.as_service() as svc:
        svc.complete_notification(10**12)
    assert (info.value.sqlstate, info.value.reason) == ("PT404", "notification_not_found")
    with pytest.raises(ad.errors.Forbidden), db.as_user(make_user()) as u:
        u.claim_notifications(1)
    # Nothing else changed: the one row is sent once, with one attempt.
    assert admin.execute(
        "SELECT status, attempts FROM autodoctor.notification_outbox"
    ).fetchall() == [("sent", 1)]


class SilentServer:
    """A TCP server that accepts connections and never greets (a stalled mail server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conns = []
        self.sock.settimeout(30)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conns.append(conn)
        self.accepted.set()
        self.release.wait(60)
        for c in conns:
            c.close()

    def close(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.sock.close()


def test_a_silent_mail_server_holds_nothing_in_the_database(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """While the worker waits on a mail server that never answers, it has no transaction
    open, and an event follower gets a new event at once (before the send gives up)."""
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    last = admin.execute("SELECT max(id) FROM autodoctor.session_events").fetchone()
    assert last is not None
    silent = SilentServer()
    worker = Worker(db, SmtpSettings(port=silent.port, timeout=60), maintenance="never")
    sending = threading.Thread(target=worker.drain_once)
    sending.start()
    try:
        assert silent.accepted.wait(30), "the worker never reached the mail server"
        in_transaction = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
        ).fetchone()
        assert in_transaction == (0,)
        with db.as_user(make_user()) as u:
            later = u.create_session_request("video", "free")
        follower = db.events(after=int(last[0]), poll_interval=0.05, reconnect=False)
        seen = None
        for ev in follower:
            if ev.request_id == later.id:
                seen = ev
                break
        assert seen is not None
        assert sending.is_alive(), "the send gave up before the follower saw the event"
    finally:
        silent.close()
        sending.join(60)
    row = admin.execute(
        "SELECT status, attempts, last_error IS NOT NULL FROM autodoctor.notification_outbox"
        " WHERE kind = 'new_request' ORDER BY id LIMIT 1"
    ).fetchone()
    assert row == ("pending", 1, True)  # the attempt is recorded, to be retried


def test_the_worker_fans_out_in_short_transactions(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """A backlog of 12 new requests is fanned out 5 per transaction (each request stamped
    by the transaction that fanned it out: its row's xmin), not in the claim's single
    transaction: a writing transaction holds every event's delivery back while it runs."""
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    for _ in range(11):
        with db.as_user(make_user()) as u:
            u.create_session_request("chat", "free")
    worker = Worker(db, SmtpSettings(port=1), maintenance="never")
    assert worker.fan_out() == 12
    groups = [
        int(r[0])
        for r in admin.execute(
            "SELECT count(*) FROM autodoctor.session_requests"
            " WHERE notification_sent_at IS NOT NULL GROUP BY xmin::text ORDER BY 1 DESC"
        )
    ]
    assert sum(groups) == 12 and max(groups) <= 5 and len(groups) >= 3, groups
    assert worker.fan_out() == 0
    # The round does the same before it claims; nothing is left for the claim to fan out.
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    worker.drain_once()
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.session_requests WHERE notification_sent_at IS NULL"
    ).fetchone() == (0,)


def test_relay_mode_broadcasts_while_the_mail_server_stalls(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """In relay mode the worker relays on a thread of its own: while its outbox round waits
    on a mail server that never answers, a plain LISTEN client still gets a new event's
    NOTIFY (the relay used to run only between outbox rounds)."""
    _queue(db, make_user, make_mechanic, n_mechanics=1)
    silent = SilentServer()
    with db.as_service() as svc:
        svc.set_notify_mode("relay")
    worker = Worker(
        db, SmtpSettings(port=silent.port, timeout=60), maintenance="never", poll_interval=0.1
    )
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        assert silent.accepted.wait(30), "the worker never reached the mail server"
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute("LISTEN autodoctor")
            with db.as_user(make_user()) as u:
                later = u.create_session_request("video", "free")
            notes = list(listener.notifies(timeout=10, stop_after=1))
        assert [json.loads(n.payload)["request_id"] for n in notes] == [str(later.id)]
        # The send is still stalled: no attempt of the leased e-mail is recorded yet.
        assert admin.execute(
            "SELECT max(attempts) FROM autodoctor.notification_outbox"
        ).fetchone() == (0,)
    finally:
        worker.stop()
        silent.close()
        running.join(60)
        with db.as_service() as svc:
            svc.set_notify_mode("transaction")
    assert not running.is_alive()


def test_new_request_mail_goes_to_mechanics_who_could_accept_now(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
) -> None:
    """The nearest mechanic is at capacity (they could only get capacity_reached): the
    e-mail goes to the free one slightly farther away."""
    busy = make_mechanic(latitude=48.853, longitude=2.349, service_radius_km=20)
    free = make_mechanic(latitude=48.90, longitude=2.35, service_radius_km=20)
    for m in (busy, free):
        with db.as_user(m) as c:
            c.set_mechanic_availability(True)
    with db.as_user(make_user()) as u:
        first = u.create_session_request("chat", "free")
    with db.as_user(busy) as m:
        m.accept_session_request(first.id)  # busy is now at capacity (1)
    with db.as_user(make_user()) as u:
        u.submit_intake(
            "chat",
            "free",
            {"make": "Ford", "model": "Focus", "year": 2012},
            "noise",
            latitude=48.853,
            longitude=2.349,
        )
    # Neither request e-mailed anyone in its transaction; the fan-out skips the accepted one.
    assert admin.execute("SELECT count(*) FROM autodoctor.notification_outbox").fetchone() == (0,)
    _fan_out(admin)
    rows = admin.execute(
        "SELECT mechanic_id FROM autodoctor.notification_outbox WHERE kind = 'new_request'"
    ).fetchall()
    assert rows == [(free,)]


def test_mail_for_a_request_no_longer_pending_is_dropped_not_sent(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    admin: psycopg.Connection[Any],
    smtp: tuple[Inbox, int],
) -> None:
    """200 create-and-cancel cycles: the 100 cancelled before the fan-out ran get no mail;
    the 100 cancelled after it have their mail queued, and dropped, never sent."""
    inbox, port = smtp
    for _ in range(2):
        with db.as_user(make_mechanic()) as m:
            m.set_mechanic_availability(True)
    customer = make_user()
    for i in range(200):
        with db.as_user(customer) as u:
            request_id = u.create_session_request("chat", "free").id
        if i % 2:
            _fan_out(admin)
        with db.as_user(customer) as u:
            u.cancel_session_request(request_id)
    with db.as_user(customer) as u:
        kept = u.create_session_request("video", "free")
    worker = Worker(db, SmtpSettings(port=port), maintenance="never", batch_size=100)
    for _ in range(10):
        worker.drain_once()
    counts = dict(
        admin.execute(
            "SELECT status, count(*) FROM autodoctor.notification_outbox GROUP BY status"
        ).fetchall()
    )
    assert counts == {"dropped": 200, "sent": 2}
    assert len(inbox.messages) == 2
    assert {m["X-Autodoctor-Notification"] for m in inbox.messages} == {
        str(r[0])
        for r in admin.execute(
            "SELECT id FROM autodoctor.notification_outbox WHERE request_id = %s", (kept.id,)
        ).fetchall()
    }
