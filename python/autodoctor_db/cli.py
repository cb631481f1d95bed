"""The ``autodoctor-db`` command line.

    autodoctor-db schema deploy|verify|status|revert|plan   sqitch on the package's SQL
    autodoctor-db schema sql [--from TAG]     the deploy (or upgrade) as plain SQL for psql
    autodoctor-db demo                 the scripted scenario (what ``make demo`` runs)
    autodoctor-db listen [--after ID]  the event stream, replayed from ID, then live
    autodoctor-db worker               send the outbox's e-mails; maintenance without pg_cron
    autodoctor-db status [--json]      pending, waiting, live, orphans, expired today, ...
    autodoctor-db requests [--json]    the pending requests, oldest first

The database comes from ``--dsn`` (before or after the sub-command), else
``$AUTODOCTOR_DSN``, else ``$DATABASE_URL``, else the libpq ``PG*`` variables. The login
only needs to be able to act as ``service_role``, as PostgREST's NOINHERIT
``authenticator`` can: every command takes that role for its transactions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from importlib import metadata
from types import FrameType
from typing import Any
from uuid import UUID

import psycopg

from . import demo, schema
from .client import Database, connect
from .errors import AutodoctorError
from .models import Event
from .worker import SmtpSettings, Worker

#: Exit codes (documented in --help and the README).
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed (a refused call, a failed sqitch step, ...)
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_CONNECT = 3  # cannot connect: bad DSN, server unreachable, no such database, login refused
EXIT_NOT_DEPLOYED = 4  # the package is not deployed in that database
EXIT_PRIVILEGE = 5  # the login lacks a privilege (cannot act as service_role, ...)
EXIT_TOOL = 6  # a required program is missing (sqitch)
EXIT_INTERRUPTED = 130  # Ctrl-C

NOT_DEPLOYED = ("3F000", "42P01", "42883")  # no schema, no table, no function
NO_DATABASE = "3D000"
LOGIN_REFUSED = ("28000", "28P01")

ENVIRONMENT = """\
environment:
  AUTODOCTOR_DSN, DATABASE_URL   the database (libpq DSN or URI), in that order, when no --dsn
  PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...   libpq's own, filling the gaps
  AUTODOCTOR_SMTP_HOST, AUTODOCTOR_SMTP_PORT, AUTODOCTOR_SMTP_FROM   worker: the mail server
  AUTODOCTOR_SMTP_USER, AUTODOCTOR_SMTP_PASSWORD   worker: SMTP login (never on the command line)

exit codes:
  0 ok   1 failed   2 usage   3 cannot connect   4 package not deployed
  5 missing privilege   6 sqitch missing   130 interrupted
"""


class CliError(Exception):
    """An expected failure: one line on stderr, a hint, an exit code; no traceback."""

    def __init__(self, message: str, hint: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code


def version() -> str:
    try:
        return metadata.version("autodoctor-db")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _deploy_hint() -> str:
    if schema.in_checkout():
        return "Deploy it: `make deploy` (the throwaway cluster) or `autodoctor-db schema deploy`."
    return (
        "Deploy it: `autodoctor-db schema deploy --dsn ...` (or apply `autodoctor-db schema sql`)."
    )


def _connect_error(exc: psycopg.Error) -> CliError:
    """The CliError for a failure to connect, by what libpq or the server said."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == NO_DATABASE or ("does not exist" in text and "database" in text):
        return CliError(
            f"cannot connect: {text}",
            "Create the database (`createdb NAME`), or name another with --dsn / DATABASE_URL.",
            EXIT_CONNECT,
        )
    if sqlstate in LOGIN_REFUSED or "password authentication failed" in text:
        return CliError(
            f"cannot connect: {text}", "Check the user and password in the DSN.", EXIT_CONNECT
        )
    hint = "Is the server running and reachable? Name it with --dsn, DATABASE_URL or PGHOST/PGPORT."
    if schema.in_checkout():
        hint += " `make db-start` starts this checkout's throwaway cluster."
    return CliError(f"cannot connect: {text}", hint, EXIT_CONNECT)


def _resolve_dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn
    if dsn is None:
        dsn = os.environ.get("AUTODOCTOR_DSN") or os.environ.get("DATABASE_URL") or ""
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise CliError(
            f"invalid connection string: {str(exc).strip()}",
            "Use a libpq DSN ('host=... dbname=...') or URI (postgresql://user@host/db).",
            EXIT_CONNECT,
        ) from exc
    return str(dsn)


def _age(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _json_default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, default=_json_default, indent=2, sort_keys=True))


def format_event(ev: Event) -> str:
    """One readable line per event."""
    at = ev.at.strftime("%H:%M:%S") if ev.at else "--:--:--"
    move = f" {ev.from_status or '-'} -> {ev.to_status}" if ev.to_status else ""
    name = getattr(ev.event, "value", ev.event)
    parts = [f"#{ev.id:<6} {at} {name:<22}{move}"]
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
    for ev in db.events(after=args.after, poll_interval=args.poll, stop=stop.is_set):
        print(format_event(ev), flush=True)
    return EXIT_OK


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
        relay_interval=args.relay_interval,
    )
    _on_sigterm(worker.stop)
    try:
        worker.run()
    except KeyboardInterrupt:
        worker.stop()
        raise
    return EXIT_OK


def cmd_status(db: Database, args: argparse.Namespace) -> int:
    with db.as_service() as svc:
        st = svc.status()
    try:
        replicas = db.replication()
    except AutodoctorError:
        replicas = []  # the login may not read pg_stat_replication (needs pg_monitor)
    if args.json:
        _print_json({**asdict(st), "replicas": [asdict(r) for r in replicas]})
        return EXIT_OK
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
    for r in replicas:
        if r.state is None:  # pg_stat_replication hides the details without pg_monitor
            rows.append((f"replica {r.name}", "connected (details need pg_monitor)"))
            continue
        lag = f"{r.lag_bytes} bytes" if r.lag_bytes is not None else "-"
        if r.replay_lag is not None:
            lag += f", {r.replay_lag.total_seconds() * 1000:.0f} ms"
        rows.append((f"replica {r.name}", f"{r.state}, lag {lag}"))
    for name, value in rows:
        print(f"{name:<18} {value}")
    return EXIT_OK


def cmd_requests(db: Database, args: argparse.Namespace) -> int:
    with db.as_service() as svc:
        pending = svc.pending_requests(limit=args.limit)
    if args.json:
        _print_json([asdict(r) for r in pending])
        return EXIT_OK
    if not pending:
        print("no pending requests")
        return EXIT_OK
    now = datetime.now(timezone.utc)
    print(f"{'id':<36}  {'type':<10} {'plan':<9} {'waiting':>7}  {'expires':<16}  customer")
    for r in pending:
        print(
            f"{r.id!s:<36}  {r.session_type.value:<10} {r.plan_code:<9} "
            f"{_age(now - r.created_at):>7}  {r.expires_at:%Y-%m-%d %H:%M}  {r.customer_name or ''}"
        )
    return EXIT_OK


def cmd_demo(dsn: str, args: argparse.Namespace) -> int:
    """The scenario writes permanent rows: only into a throwaway database, or with --yes."""
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('autodoctor.throwaway', true) = 'on', current_database()"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise _connect_error(exc) from exc
    throwaway, name = (bool(row[0]), str(row[1])) if row else (False, "?")
    leaves = (
        "4 users (auth.users, profiles), 3 mechanics, 2 requests and their sessions, 3 repaired"
        " legacy sessions, their events and queued e-mails"
    )
    if not throwaway and not args.yes:
        raise CliError(
            f"demo writes permanent fake data into database {name!r} ({leaves}),"
            " which is not a throwaway database",
            "Run it against the throwaway cluster (`make demo`), or pass --yes to write anyway.",
            EXIT_FAILED,
        )
    print(f"demo: writing into database {name!r}; it leaves {leaves}", file=sys.stderr)
    result = demo.run(dsn)
    return EXIT_OK if len(result["winners"]) == 1 else EXIT_FAILED


def cmd_schema(dsn: str, args: argparse.Namespace) -> int:
    if args.schema_command == "sql":
        try:
            sys.stdout.write(schema.deploy_sql(since=args.since))
        except schema.SchemaError as exc:
            raise CliError(str(exc), exc.hint, exc.exit_code) from exc
        return EXIT_OK
    extra: dict[str, str] = {}
    argv: list[str] = []
    if args.schema_command == "deploy":
        argv = ["--verify", *(["--to", args.to] if args.to else [])]
    elif args.schema_command == "revert":
        argv = ["-y", *(["--to", args.to] if args.to else [])]
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError(
                    "revert needs confirmation, and there is no terminal to ask on",
                    "Pass --yes. Tables holding rows are kept anyway, unless --allow-data-loss.",
                    EXIT_USAGE,
                )
            what = "its data is DROPPED" if args.allow_data_loss else "tables holding rows are kept"
            answer = input(f"Revert autodoctor-db in this database ({what})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("revert: nothing reverted", file=sys.stderr)
                return EXIT_FAILED
        if args.allow_data_loss:
            extra["PGOPTIONS"] = (
                os.environ.get("PGOPTIONS", "") + " -c autodoctor.allow_data_loss=on"
            ).strip()
    try:
        if args.schema_command == "plan":
            code = schema.run_plan()
        else:
            code = schema.run_sqitch(args.schema_command, *argv, dsn=dsn, extra_env=extra)
    except schema.SchemaError as exc:
        raise CliError(str(exc), exc.hint, exc.exit_code) from exc
    return EXIT_OK if code == 0 else EXIT_FAILED


def _on_sigterm(handler: Callable[[], None]) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)


def _preflight(dsn: str) -> None:
    """Fail fast, with a clear message, when the server is down, the package missing, or
    the login cannot act as service_role. Reads only catalogs, which any login may."""
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
                "               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                "              WHERE n.nspname = 'autodoctor' AND p.proname = 'run_maintenance'),"
                "       CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles"
                "                          WHERE rolname = 'service_role')"
                "            THEN pg_catalog.pg_has_role(current_user, 'service_role', 'MEMBER')"
                "       END,"
                "       current_user, current_database()"
            ).fetchone()
    except psycopg.Error as exc:
        raise _connect_error(exc) from exc
    assert row is not None
    deployed, may_act, user, dbname = row
    if not deployed:
        raise CliError(
            f"the package is not deployed in database {dbname!r}", _deploy_hint(), EXIT_NOT_DEPLOYED
        )
    if not may_act:
        raise CliError(
            f"login {user!r} cannot act as service_role in database {dbname!r}",
            f"An administrator grants it: GRANT service_role TO {user};"
            " (as PostgREST's authenticator has it).",
            EXIT_PRIVILEGE,
        )


def build_parser() -> argparse.ArgumentParser:
    # --dsn is accepted before and after the sub-command (SUPPRESS: an omitted one after
    # does not overwrite one given before).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help="libpq DSN or URI (default: $AUTODOCTOR_DSN, $DATABASE_URL, then PG* variables)",
    )
    parser = argparse.ArgumentParser(
        prog="autodoctor-db",
        description="autodoctor-db: deploy, operate and watch the package.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--dsn",
        default=None,
        help="libpq DSN or URI (default: $AUTODOCTOR_DSN, $DATABASE_URL, then PG* variables)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=ENVIRONMENT,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add("schema", "the package's SQL: deploy, verify, status, revert, plan, sql")
    ssub = p.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    sp = ssub.add_parser(
        "deploy", parents=[common], help="deploy or upgrade (sqitch deploy --verify)"
    )
    sp.add_argument("--to", help="stop at this change or @tag")
    ssub.add_parser("verify", parents=[common], help="check the deployed schema (sqitch verify)")
    ssub.add_parser("status", parents=[common], help="what is deployed (sqitch status)")
    sp = ssub.add_parser(
        "revert",
        parents=[common],
        help="remove the package; tables holding rows are kept unless --allow-data-loss",
    )
    sp.add_argument("--to", help="revert down to this change or @tag (kept)")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sp.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="consent to drop tables holding rows (sets autodoctor.allow_data_loss = on)",
    )
    ssub.add_parser("plan", parents=[common], help="the changes and release tags (sqitch plan)")
    sp = ssub.add_parser(
        "sql",
        parents=[common],
        help="print the deploy (or, with --from, the upgrade) as plain SQL for psql",
    )
    sp.add_argument("--from", dest="since", metavar="TAG", help="only what comes after @TAG")

    p = add("demo", "run the scripted race scenario (writes fake data: a throwaway database)")
    p.add_argument(
        "--yes", action="store_true", help="write into a database that is not a throwaway one"
    )

    p = add("listen", "print the event stream: replay, then live")
    p.add_argument("--after", type=int, default=0, help="replay events after this id (default 0)")
    p.add_argument("--poll", type=float, default=1.0, help="poll interval in seconds")

    p = add("worker", "send queued e-mails; run maintenance where pg_cron is absent")
    p.add_argument(
        "--smtp-host",
        default=os.environ.get("AUTODOCTOR_SMTP_HOST", "127.0.0.1"),
        help="mail server (default: $AUTODOCTOR_SMTP_HOST or 127.0.0.1)",
    )
    p.add_argument(
        "--smtp-port",
        type=int,
        default=int(os.environ.get("AUTODOCTOR_SMTP_PORT", "25")),
        help="its port (default: $AUTODOCTOR_SMTP_PORT or 25)",
    )
    p.add_argument(
        "--sender",
        default=os.environ.get("AUTODOCTOR_SMTP_FROM", "autodoctor@localhost"),
        help="From: address (default: $AUTODOCTOR_SMTP_FROM or autodoctor@localhost)",
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
    p.add_argument(
        "--relay-interval",
        type=float,
        default=0.01,
        help="seconds between relay_events() calls in relay notify mode (default 0.01)",
    )

    p = add("status", "operational counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("requests", "the pending requests, oldest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _run(args: argparse.Namespace) -> int:
    dsn = _resolve_dsn(args)
    if args.command == "schema":
        return cmd_schema(dsn, args)
    if args.command == "demo":
        return cmd_demo(dsn, args)
    _preflight(dsn)
    db = connect(dsn, min_size=1, max_size=4, application_name=f"autodoctor-db {args.command}")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autodoctor-db`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CliError as exc:
        _complain(str(exc), exc.hint)
        return exc.code
    except AutodoctorError as exc:
        cause = exc.__cause__
        sqlstate = getattr(cause, "sqlstate", None) or exc.sqlstate
        if sqlstate in NOT_DEPLOYED:
            _complain(f"the package is not deployed here ({exc})", _deploy_hint())
            return EXIT_NOT_DEPLOYED
        if sqlstate == "42501" and exc.reason is None:
            _complain(f"missing privilege: {exc}", "Ask an administrator for the grant it names.")
            return EXIT_PRIVILEGE
        if isinstance(cause, psycopg.OperationalError):
            error = _connect_error(cause)
            _complain(str(error), error.hint)
            return error.code
        _complain(str(exc), None)
        return EXIT_FAILED
    except psycopg.OperationalError as exc:
        error = _connect_error(exc)
        _complain(str(error), error.hint)
        return error.code


def _complain(message: str, hint: str | None) -> None:
    print(f"autodoctor-db: {message}", file=sys.stderr)
    if hint:
        print(f"  {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
