"""``make dashboard``: the reference dashboard on the demo's data, on 127.0.0.1 only.

    python -m examples.fastapi_app.serve_dashboard [--port 8765] [--yes]

Connects with libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE: ``make`` sets them
for the throwaway cluster) as an administrator, and:

1. refuses unless the database is a throwaway one (``autodoctor.throwaway = on``, as the
   throwaway cluster's is), or ``--yes`` was given: it writes fake users and requests,
   and its sign-in is a development picker that lets anyone act as any user;
2. seeds the demo's scenario (``autodoctor-db demo``) when the database has no mechanic
   yet, and lets the demo's mechanics hold three sessions at once, so that they can still
   accept requests after the race the demo ran;
3. serves the dashboard (``examples.fastapi_app.dashboard``) logged in as the
   ``authenticator`` role where it exists (as the README's service does), and prints its
   URL; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("DASHBOARD_PORT", DEFAULT_PORT))
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run on a database that is not a throwaway one (writes fake data; "
        "anyone reaching the port can act as any user)",
    )
    args = parser.parse_args(argv)
    admin_dsn = os.environ.get("AUTODOCTOR_ADMIN_DSN", "")

    try:
        with psycopg.connect(admin_dsn, connect_timeout=5, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('autodoctor.throwaway', true) = 'on', current_database(),"
                " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator' AND rolcanlogin),"
                " (SELECT count(*) FROM autodoctor.mechanics)"
            ).fetchone()
    except psycopg.Error as exc:
        print(f"dashboard: cannot read the database: {exc}".strip(), file=sys.stderr)
        print(
            "dashboard: `make dashboard` starts and deploys the throwaway cluster", file=sys.stderr
        )
        return 1
    assert row is not None
    throwaway, name, has_authenticator, mechanics = bool(row[0]), str(row[1]), row[2], row[3]
    if not throwaway and not args.yes:
        print(
            f"dashboard: database {name!r} is not a throwaway database; the dashboard seeds"
            " fake data there and signs anyone in as any user (a development picker).\n"
            "dashboard: run it on the throwaway cluster (`make dashboard`), or pass --yes"
            " (DASHBOARD_ARGS=--yes) to do it anyway",
            file=sys.stderr,
        )
        return 1

    if not mechanics:
        seed(admin_dsn)

    params = conninfo_to_dict(admin_dsn)
    params.pop("password", None)
    app_dsn = (
        make_conninfo("", **{**params, "user": "authenticator"}) if has_authenticator else admin_dsn
    )
    os.environ["DATABASE_URL"] = app_dsn
    if args.yes:
        os.environ["AUTODOCTOR_DEV_LOGIN"] = "1"

    import uvicorn

    from . import dashboard

    url = f"http://127.0.0.1:{args.port}/dashboard/"
    print(f"dashboard: database {name!r}; development sign-in (fake users, no password)")
    print(f"dashboard: open {url}   (Ctrl-C stops it)", flush=True)
    uvicorn.run(
        dashboard.app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    return 0


def seed(admin_dsn: str) -> None:
    """The demo's scenario, quietly; then its mechanics may take three sessions each."""
    from autodoctor_db import connect, demo

    print("dashboard: seeding the demo's data (the `make demo` scenario)...", flush=True)
    result = demo.run(admin_dsn, out=lambda _line: None)
    db = connect(admin_dsn)
    try:
        with db.as_service() as svc:
            for i, mechanic in enumerate(result["results"]):
                svc.register_mechanic(
                    mechanic, latitude=48.85 + i / 100, longitude=2.35, max_concurrent_sessions=3
                )
    finally:
        db.close()
    print("dashboard: seeded a customer, three mechanics, their requests and sessions")


if __name__ == "__main__":
    sys.exit(main())
