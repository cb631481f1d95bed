"""The command line as scripts and operators use it: conventions, the authenticator login,
expected failures without tracebacks, exit codes, the demo's consent, `schema`."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import cli

CLI = [sys.executable, "-m", "autodoctor_db"]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """The CLI with a clean environment: no DSN variable unless ``env`` gives one."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AUTODOCTOR_DSN", "DATABASE_URL", "PGDATABASE")
    }
    return subprocess.run(
        [*CLI, *args],
        env={**base, **(env or {})},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


def as_login(dsn: str, user: str) -> str:
    parts = [p for p in dsn.split() if not p.startswith(("user=", "password="))]
    return " ".join([*parts, f"user={user}"])


@pytest.fixture
def authenticator(dsn: str, admin: psycopg.Connection[Any]) -> str:
    """The DSN of the NOINHERIT `authenticator` login the README recommends."""
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'authenticator'").fetchone() is None:
        pytest.skip("no authenticator role on this server (the throwaway cluster creates it)")
    row = admin.execute(
        "SELECT rolinherit, pg_has_role('authenticator', 'service_role', 'MEMBER')"
        " FROM pg_roles WHERE rolname = 'authenticator'"
    ).fetchone()
    assert row == (False, True)
    return as_login(dsn, "authenticator")


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"autodoctor-db {cli.version()}"
    assert cli.version() != "unknown"


def test_help_documents_every_environment_variable_and_exit_code() -> None:
    out = run("--help").stdout + run("worker", "--help").stdout
    names = {
        "AUTODOCTOR_DSN",
        "DATABASE_URL",
        "PGHOST",
        "AUTODOCTOR_SMTP_HOST",
        "AUTODOCTOR_SMTP_PORT",
        "AUTODOCTOR_SMTP_FROM",
        "AUTODOCTOR_SMTP_USER",
        "AUTODOCTOR_SMTP_PASSWORD",
    }
    assert {n for n in names if n in out} == names
    for code in ("3 cannot connect", "4 package not deployed", "5 missing privilege"):
        assert code in out
    # Every variable the package reads is among them.
    package = pathlib.Path(cli.__file__).parent
    sources = "".join(
        (package / name).read_text()
        for name in ("cli.py", "demo.py", "schema.py", "worker.py", "client.py", "events.py")
    )
    read = set(re.findall(r"os\.environ\.get\(\"([A-Z_]+)\"", sources))
    assert read <= names | {"PGOPTIONS"}, read - names


def test_status_and_requests_as_authenticator_in_json(
    authenticator: str, db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user("Json Customer")) as u:
        req = u.create_session_request("video", "free")
    status = run("status", "--json", "--dsn", authenticator)  # --dsn after the command
    no_traceback(status)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pending_requests"] == 1
    listed = run("--dsn", authenticator, "requests", "--json")  # ...and before it
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["id"] == str(req.id) and row["session_type"] == "video"


def test_database_url_is_honoured(
    dsn: str, db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    url = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    proc = run("status", "--json", env={"DATABASE_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pending_requests"] == 1


def test_listen_and_worker_as_authenticator(
    authenticator: str, db: ad.Database, make_user: Callable[..., uuid.UUID]
) -> None:
    with db.as_user(make_user()) as u:
        req = u.create_session_request("video", "free")
    listen = subprocess.Popen(
        [*CLI, "listen", "--poll", "0.1", "--dsn", authenticator],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stdout is not None
        line = listen.stdout.readline()
    finally:
        listen.send_signal(signal.SIGTERM)
        _, err = listen.communicate(timeout=20)
    assert "new_request" in line and str(req.id) in line, err
    assert "Traceback" not in err
    worker = subprocess.Popen(
        [*CLI, "worker", "--dsn", authenticator, "--smtp-port", "1", "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=20)
    assert worker.returncode == 0, first + out
    assert "Traceback" not in first + out


@pytest.mark.parametrize(
    ("what", "code", "words"),
    [
        ("garbage dsn", 3, "invalid connection string"),
        ("unreachable", 3, "cannot connect"),
        ("missing database", 3, "does not exist"),
        ("not deployed", 4, "not deployed"),
        ("no service_role", 5, "cannot act as service_role"),
    ],
)
def test_expected_failures_say_one_thing_with_a_hint_and_a_distinct_code(
    dsn: str, admin: psycopg.Connection[Any], what: str, code: int, words: str
) -> None:
    target = {
        "garbage dsn": "garbage=1",
        "unreachable": "host=127.0.0.1 port=1",
        "missing database": as_login(dsn, admin.info.user).replace(
            f"dbname={admin.info.dbname}", "dbname=no_such_database_here"
        ),
        "not deployed": dsn.replace(f"dbname={admin.info.dbname}", "dbname=postgres"),
        "no service_role": "",
    }[what]
    role = None
    if what == "no service_role":
        role = f"nobody_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE ROLE {role} LOGIN")
        target = as_login(dsn, role)
    try:
        proc = run("status", "--dsn", target)
    finally:
        if role:
            admin.execute(f"DROP ROLE {role}")
    no_traceback(proc)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("autodoctor-db: ") and words in lines[0], proc.stderr
    assert len(lines) == 2 and lines[1].startswith("  "), proc.stderr  # the hint


def test_demo_refuses_a_database_that_is_not_throwaway(dsn: str, admin: Any) -> None:
    before = admin.execute("SELECT count(*) FROM auth.users").fetchone()
    proc = run("demo", "--dsn", dsn)
    no_traceback(proc)
    assert proc.returncode == 1
    assert "not a throwaway database" in proc.stderr and "--yes" in proc.stderr
    assert "4 users" in proc.stderr  # says what it would leave behind
    assert admin.execute("SELECT count(*) FROM auth.users").fetchone() == before


def test_schema_sql_applied_with_psql_equals_a_sqitch_deploy(
    dsn: str, admin: psycopg.Connection[Any], tmp_path: Any
) -> None:
    """`schema sql` as teams keeping their own migrations use it: psql, no sqitch."""
    from operations.test_migrations import Server, must, sqitch

    server = Server(host=admin.info.host, port=admin.info.port, user=admin.info.user, password=None)
    plain, reference = server.create_db(), server.create_db()
    try:
        script = tmp_path / "deploy.sql"
        out = run("schema", "sql")
        assert out.returncode == 0, out.stderr
        script.write_text(out.stdout)
        psql = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", plain, "-f", str(script)],
            env={**os.environ, "PGHOST": server.host, "PGPORT": str(server.port)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert psql.returncode == 0, psql.stderr
        must(sqitch("deploy", server.target(reference)))
        assert server.dump(plain) == server.dump(reference, "--exclude-schema=sqitch")
        upgrade = run("schema", "sql", "--from", "v0.1.0")
        assert upgrade.returncode == 0 and "upgrade from @v0.1.0" in upgrade.stdout
        unknown = run("schema", "sql", "--from", "v9.9.9")
        assert unknown.returncode == 1 and "no release tag" in unknown.stderr
        no_traceback(unknown)
    finally:
        server.drop_databases()


def test_schema_revert_needs_consent_and_keeps_data(
    dsn: str, db: ad.Database, make_user: Callable[..., uuid.UUID], admin: Any
) -> None:
    with db.as_user(make_user()) as u:
        u.create_session_request("chat", "free")
    asked = run("schema", "revert", "--dsn", dsn)
    no_traceback(asked)
    assert asked.returncode == 2 and "--yes" in asked.stderr
    refused = run("schema", "revert", "--yes", "--dsn", dsn)
    assert refused.returncode == 1
    assert "revert refused: it would drop" in refused.stdout + refused.stderr
    assert admin.execute("SELECT count(*) FROM autodoctor.session_requests").fetchone() == (1,)
    again = run("schema", "deploy", "--dsn", dsn)
    assert again.returncode == 0, again.stdout + again.stderr
    verified = run("schema", "verify", "--dsn", dsn)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_schema_without_sqitch_says_how_to_get_it(dsn: str) -> None:
    proc = run("schema", "status", "--dsn", dsn, env={"PATH": os.path.dirname(sys.executable)})
    no_traceback(proc)
    assert proc.returncode == 6
    assert "sqitch is not installed" in proc.stderr and "schema sql" in proc.stderr


def test_listen_says_when_it_reconnects_and_catches_up(
    dsn: str, db: ad.Database, admin: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    listen = subprocess.Popen(
        [*CLI, "listen", "--poll", "0.1", "--dsn", dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stdout is not None
        with db.as_user(make_user()) as u:
            first = u.create_session_request("chat", "free")
        assert str(first.id) in listen.stdout.readline()
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name LIKE 'autodoctor-db%%'"
        )
        with db.as_user(make_user()) as u:
            second = u.create_session_request("video", "free")
        assert str(second.id) in listen.stdout.readline()  # caught up after reconnecting
    finally:
        listen.send_signal(signal.SIGTERM)
        _, err = listen.communicate(timeout=20)
    assert "connection lost" in err and "reconnected; catching up after event" in err, err
    assert "Traceback" not in err
