"""The worker: drains the e-mail outbox, and runs maintenance where pg_cron does not.

    autodoctor-db worker --smtp-host 127.0.0.1 --smtp-port 25 --sender dispatch@example.com

Each round, as ``service_role``: ``fan_out_new_requests`` queues the e-mails of the new
requests (a request's own transaction queues none), ``fan_out_batch`` requests per short
transaction of its own until none is left (bounded per round), because a writing
transaction holds every event's delivery back while it runs; then ``claim_notifications``
(whose own fan-out finds nothing left) leases a batch of
due e-mails for five minutes, in one short transaction (``FOR UPDATE SKIP LOCKED``, so
several workers can run side by side); each is then sent over SMTP with no transaction
open, and recorded with ``complete_notification`` in a short transaction of its own (sent,
or retried with exponential backoff, or failed after ``max_attempts``; rows are never
deleted). A slow or silent mail server therefore holds nothing in the database. Delivery
is at-least-once: if the worker dies after the SMTP server took a mail but before it
recorded the attempt, the lease runs out and that mail is sent again. Where pg_cron is
not installed in the database, ``run_maintenance()`` runs every ``maintenance_interval``
seconds. In relay notify mode a thread of its own calls ``relay_events()`` every
``relay_interval`` seconds (10 ms), so neither a slow mail server nor a long maintenance run
delays a broadcast; it reads the mode every ``mode_check_interval`` seconds and follows a
switch at run time. SIGTERM (or ``stop``) ends the loop after the current round.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import psycopg

from .client import Database
from .errors import AutodoctorError, Conflict, from_psycopg
from .models import Notification

log = logging.getLogger("autodoctor_db.worker")

MaintenanceMode = Literal["auto", "always", "never"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how the worker sends mail (standard library ``smtplib``)."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "autodoctor@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What one round of the worker did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def compose(note: Notification, sender: str) -> EmailMessage:
    """The e-mail for one outbox row: ids only, no customer names, e-mails or notes."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = note.recipient or ""
    if note.kind == "new_request":
        msg["Subject"] = "New session request near you"
        msg.set_content(
            "A customer is asking for a session you can take.\n\n"
            f"Request: {note.request_id}\n\n"
            "Open your incoming requests to accept it; the first mechanic to accept wins.\n"
        )
    else:
        msg["Subject"] = "A session was assigned to you"
        msg.set_content(
            "A waiting customer's session was assigned to you.\n\n"
            f"Session: {note.session_id}\n\n"
            "Open your sessions to start it.\n"
        )
    msg["X-Autodoctor-Notification"] = str(note.id)
    return msg


class Worker:
    """Drains ``notification_outbox`` and (optionally) runs maintenance on an interval."""

    def __init__(
        self,
        db: Database,
        smtp: SmtpSettings,
        *,
        batch_size: int = 20,
        max_attempts: int = 8,
        poll_interval: float = 2.0,
        maintenance: MaintenanceMode = "auto",
        maintenance_interval: float = 60.0,
        relay_interval: float = 0.01,
        mode_check_interval: float = 1.0,
        fan_out_batch: int = 5,
        fan_out_per_round: int = 200,
    ) -> None:
        self.db = db
        self.smtp = smtp
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.maintenance = maintenance
        self.maintenance_interval = maintenance_interval
        self.relay_interval = relay_interval
        self.mode_check_interval = mode_check_interval
        self.fan_out_batch = fan_out_batch
        self.fan_out_per_round = fan_out_per_round
        self.stop_event = threading.Event()

    def _send(self, note: Notification) -> str | None:
        """Send one mail; the error text, or ``None`` when the server accepted it."""
        if not note.recipient:
            return "no recipient address"
        try:
            with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout) as smtp:
                if self.smtp.starttls:
                    smtp.starttls()
                if self.smtp.username:
                    smtp.login(self.smtp.username, self.smtp.password or "")
                smtp.send_message(compose(note, self.smtp.sender))
        except (OSError, smtplib.SMTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def fan_out(self) -> int:
        """Queue the e-mails of the new requests, ``fan_out_batch`` per transaction, until
        none is left or ``fan_out_per_round`` requests are done; how many were fanned out."""
        done = 0
        while done < self.fan_out_per_round and not self.stop_event.is_set():
            with self.db.as_service() as svc:
                n = svc.fan_out_new_requests(self.fan_out_batch)
            done += n
            if n < self.fan_out_batch:
                break
        return done

    def drain_once(self) -> RoundResult:
        """One round: fan out the new requests (short transactions), lease a batch (one
        short transaction), send each with no transaction open, record each attempt (one
        short transaction each)."""
        sent = retried = failed = 0
        self.fan_out()
        with self.db.as_service() as svc:
            batch = svc.claim_notifications(self.batch_size)
        for note in batch:
            error = self._send(note)
            try:
                with self.db.as_service() as svc:
                    done = svc.complete_notification(
                        note.id, error=error, max_attempts=self.max_attempts
                    )
            except Conflict:
                # The lease ran out and another worker took it and finished it.
                log.warning("e-mail %s was completed by another worker meanwhile", note.id)
                continue
            if done.status == "sent":
                sent += 1
            elif done.status == "failed":
                failed += 1
                log.error("e-mail %s failed for good: %s", note.id, error)
            else:
                retried += 1
                log.warning("e-mail %s will be retried: %s", note.id, error)
        return RoundResult(sent, retried, failed)

    def pg_cron_present(self) -> bool:
        """Whether pg_cron is installed in this database (then it schedules maintenance)."""
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')"
            ).fetchone()
        return bool(row and row[0])

    def notify_mode(self) -> str:
        """'transaction' or 'relay' (then this worker relays every ``relay_interval``)."""
        # As service_role, like every other call: the login may be a NOINHERIT authenticator.
        try:
            with self.db.pool.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL ROLE service_role")
                row = conn.execute(
                    "SELECT notify_mode FROM autodoctor.settings WHERE id"
                ).fetchone()
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc
        return str(row[0]) if row else "transaction"

    def relay_loop(self) -> None:
        """Until :meth:`stop`: in relay mode, ``relay_events()`` every ``relay_interval``.

        Runs on a thread of its own (``run`` starts it), with its own pooled connection per
        call: a send stalled on the mail server, a backlog of e-mails or a maintenance run
        on the main loop never holds a broadcast back. The mode is read every
        ``mode_check_interval``, so a switch is followed at run time.
        """
        relay = False
        next_check = 0.0
        while not self.stop_event.is_set():
            try:
                if _now() >= next_check:
                    now_relay = self.notify_mode() == "relay"
                    next_check = _now() + self.mode_check_interval
                    if now_relay != relay:
                        relay = now_relay
                        log.info(
                            "notify mode %s",
                            f"relay: relaying broadcasts every {self.relay_interval:g}s"
                            if relay
                            else "transaction: each event's transaction broadcasts it",
                        )
                if relay:
                    with self.db.as_service() as svc:
                        svc.relay_events()
            except AutodoctorError as exc:
                log.error("relay failed: %s", exc)
                self.stop_event.wait(1.0)  # the database is away: one line a second, not 50
                continue
            wait = self.relay_interval if relay else next_check - _now()
            self.stop_event.wait(max(wait, 0.0))

    def run(self) -> None:
        """Loop until :meth:`stop`: drain the outbox, run maintenance when it is due; the
        relay runs beside it on its own thread."""
        run_maintenance = self.maintenance == "always" or (
            self.maintenance == "auto" and not self.pg_cron_present()
        )
        log.info(
            "worker started (smtp %s:%s, maintenance %s)",
            self.smtp.host,
            self.smtp.port,
            f"every {self.maintenance_interval:g}s" if run_maintenance else "by pg_cron / off",
        )
        relay = threading.Thread(target=self.relay_loop, name="autodoctor-relay", daemon=True)
        relay.start()
        next_maintenance = 0.0
        try:
            while not self.stop_event.is_set():
                try:
                    if run_maintenance and _now() >= next_maintenance:
                        with self.db.as_service() as svc:
                            report = svc.run_maintenance()
                        log.info("maintenance: %s", report)
                        next_maintenance = _now() + self.maintenance_interval
                    result = self.drain_once()
                    if result.sent or result.retried or result.failed:
                        log.info("outbox: %s", result)
                        if result.sent + result.retried + result.failed >= self.batch_size:
                            continue  # more may be due: no pause
                except AutodoctorError as exc:
                    log.error("worker round failed: %s", exc)
                self.stop_event.wait(self.poll_interval)
        finally:
            self.stop_event.set()
            relay.join(30)
        log.info("worker stopped")

    def stop(self) -> None:
        """Ask the loop to end after the current round (what SIGTERM does)."""
        self.stop_event.set()


def _now() -> float:
    return time.monotonic()
