"""The ``autodoctor-db`` command line.

    autodoctor-db demo                 the scripted scenario (what ``make demo`` runs)
    autodoctor-db listen [--after ID]  the event stream, replayed from ID, then live
    autodoctor-db worker               send the outbox's e-mails; maintenance without pg_cron
    autodoctor-db status               pending, waiting, live, orphans, expired today, ...
    autodoctor-db requests             the pending requests, oldest first

The database comes from ``--dsn`` or the libpq ``PG*`` environment variables; the login
must be able to act as ``service_role`` (as PostgREST's ``authenticator`` can).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import FrameType

import psycopg

from . import demo
from .client import Database, connect
from .errors import AutodoctorError, DatabaseError
from .models import Event
from .worker import SmtpSettings, Worker

NOT_DEPLOYED = ("3F000", "42P01", "42883")  # no schema, no table, no function


def _age(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def format_event(ev: Event) -> str:
    """One readable line per event."""
    at = ev.at.strftime("%H:%M:%S") if ev.at else "--:--:--"
    move = f" {ev.from_status or '-'} -> {ev.to_status}" if ev.to_status else ""
    parts = [f"#{ev.id:<6} {at} {ev.event:<22}{move}"]
    if ev.request_id:
        parts.append(f"request={ev.request_id}")
    if ev.session_id:
        parts.append(f"session={ev.session_id}")
    if ev.session_type:
        parts.append(f"type={ev.session_type.value}")
    return "  ".join(parts)


def cmd_listen(db: Database, args: argparse.Namespace) -> int:
    stop = threading.Event()
    _on_sigterm(stop.set)
    print(
        f"listening on channel autodoctor (replaying after event {args.after}); Ctrl-C stops",
        file=sys.stderr,
    )
    try:
        for ev in db.events(after=args.after, poll_interval=args.poll, stop=stop.is_set):
            print(format_event(ev), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_worker(db: Database, args: argparse.Namespace) -> int:
    worker = Worker(
        db,
        SmtpSettings(
            host=args.smtp_host,
            port=args.smtp_port,
            sender=args.sender,
            username=os.environ.get("AUTODOCTOR_SMTP_USER"),
            password=os.environ.get("AUTODOCTOR_SMTP_PASSWORD"),
            starttls=args.starttls,
        ),
        batch_size=args.batch_size,
        poll_interval=args.poll,
        maintenance=args.maintenance,
        maintenance_interval=args.maintenance_interval,
    )
    _on_sigterm(worker.stop)
    try:
        worker.run()
    except KeyboardInterrupt:
        worker.stop()
    return 0


def cmd_status(db: Database, args: argparse.Namespace) -> int:
    with db.as_service() as svc:
        st = svc.status()
    rows = [
        ("pending requests", str(st.pending_requests)),
        ("oldest pending", _age(st.oldest_pending_age)),
        ("waiting sessions", str(st.waiting_sessions)),
        ("live sessions", str(st.live_sessions)),
        ("orphaned sessions", str(st.orphaned_sessions)),
        ("expired today", str(st.expired_today)),
        ("e-mails queued", str(st.outbox_pending)),
        ("mechanics online", str(st.mechanics_online)),
    ]
    try:
        replicas = db.replication()
    except AutodoctorError:
        replicas = []  # the login may not read pg_stat_replication (needs pg_monitor)
    for r in replicas:
        lag = f"{r.lag_bytes} bytes" if r.lag_bytes is not None else "-"
        if r.replay_lag is not None:
            lag += f", {r.replay_lag.total_seconds() * 1000:.0f} ms"
        rows.append((f"replica {r.name}", f"{r.state}, lag {lag}"))
    for name, value in rows:
        print(f"{name:<18} {value}")
    return 0


def cmd_requests(db: Database, args: argparse.Namespace) -> int:
    with db.as_service() as svc:
        pending = svc.pending_requests(limit=args.limit)
    if not pending:
        print("no pending requests")
        return 0
    now = datetime.now(timezone.utc)
    print(f"{'id':<36}  {'type':<10} {'plan':<9} {'waiting':>7}  {'expires':<16}  customer")
    for r in pending:
        print(
            f"{r.id!s:<36}  {r.session_type.value:<10} {r.plan_code:<9} "
            f"{_age(now - r.created_at):>7}  {r.expires_at:%Y-%m-%d %H:%M}  {r.customer_name or ''}"
        )
    return 0


def _on_sigterm(handler: Callable[[], None]) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)


def _preflight(dsn: str) -> bool:
    """Fail fast, with a clear message, when the server is down or the package missing."""
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            row = conn.execute("SELECT to_regprocedure('autodoctor.run_maintenance()')").fetchone()
    except psycopg.OperationalError as exc:
        print(f"autodoctor-db: cannot reach the database: {str(exc).strip()}", file=sys.stderr)
        print(
            "  Is it running? `make db-start` starts the throwaway cluster; --dsn or PG* "
            "variables name another.",
            file=sys.stderr,
        )
        return False
    if row is None or row[0] is None:
        print("autodoctor-db: the package is not deployed in this database.", file=sys.stderr)
        print(
            "  Deploy it: `make deploy`, or `sqitch deploy --verify db:pg://...`.", file=sys.stderr
        )
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodoctor-db", description="autodoctor-db: operate and watch the package."
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("AUTODOCTOR_DSN", ""),
        help="libpq connection string (default: $AUTODOCTOR_DSN, then PG* variables)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("demo", help="run the scripted race scenario against the database")

    p = sub.add_parser("listen", help="print the event stream: replay, then live")
    p.add_argument("--after", type=int, default=0, help="replay events after this id (default 0)")
    p.add_argument("--poll", type=float, default=1.0, help="poll interval in seconds")

    p = sub.add_parser(
        "worker", help="send queued e-mails; run maintenance where pg_cron is absent"
    )
    p.add_argument("--smtp-host", default=os.environ.get("AUTODOCTOR_SMTP_HOST", "127.0.0.1"))
    p.add_argument(
        "--smtp-port", type=int, default=int(os.environ.get("AUTODOCTOR_SMTP_PORT", "25"))
    )
    p.add_argument(
        "--sender", default=os.environ.get("AUTODOCTOR_SMTP_FROM", "autodoctor@localhost")
    )
    p.add_argument(
        "--starttls", action="store_true", help="upgrade the SMTP connection with STARTTLS"
    )
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--poll", type=float, default=2.0, help="seconds between outbox rounds")
    p.add_argument(
        "--maintenance",
        choices=["auto", "always", "never"],
        default="auto",
        help="run run_maintenance(): auto = only where pg_cron is not installed",
    )
    p.add_argument("--maintenance-interval", type=float, default=60.0)

    sub.add_parser("status", help="operational counts")

    p = sub.add_parser("requests", help="the pending requests, oldest first")
    p.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autodoctor-db`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "demo":
            result = demo.run(args.dsn)
            return 0 if len(result["winners"]) == 1 else 1
        if not _preflight(args.dsn):
            return 2
        db = connect(
            args.dsn, min_size=1, max_size=4, application_name=f"autodoctor-db {args.command}"
        )
        try:
            handler = {
                "listen": cmd_listen,
                "worker": cmd_worker,
                "status": cmd_status,
                "requests": cmd_requests,
            }[args.command]
            return handler(db, args)
        finally:
            db.close()
    except (psycopg.OperationalError, DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, DatabaseError) else exc
        code = getattr(cause, "sqlstate", None)
        if code in NOT_DEPLOYED:
            print(
                f"autodoctor-db: the package is not deployed in this database ({cause})",
                file=sys.stderr,
            )
            print(
                "  Deploy it: `make deploy`, or `sqitch deploy --verify db:pg://...`.",
                file=sys.stderr,
            )
        else:
            print(
                f"autodoctor-db: cannot reach the database: {str(cause).strip()}", file=sys.stderr
            )
            print(
                "  Is it running? `make db-start` starts the throwaway cluster; --dsn or PG* "
                "variables name another.",
                file=sys.stderr,
            )
        return 2
    except psycopg.Error as exc:
        if exc.sqlstate in NOT_DEPLOYED:
            print(
                f"autodoctor-db: the package is not deployed in this database ({exc})",
                file=sys.stderr,
            )
            return 2
        raise
    except AutodoctorError as exc:
        print(f"autodoctor-db: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
