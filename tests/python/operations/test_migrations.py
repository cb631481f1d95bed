"""Migrations: what sqitch deploy and revert do to a database and to the cluster.

In scratch databases of the throwaway cluster (created and dropped here):
- deploy --verify, revert, deploy gives a schema identical to the first deploy (pg_dump
  --schema-only, pg_dump's random \\restrict lines stripped), and the revert in between
  leaves the database exactly as it was before the first deploy;
- PostGIS in the wrong schema, or not installed where the deploying role may not create
  it, fails the deploy with a clear message, leaving nothing behind.

In private clusters started here (a role is cluster-wide, so only a cluster of one's own
shows what deploy and revert do to roles):
- on a fresh cluster, revert removes every role, schema and extension deploy created;
  without CREATEROLE the deploying role is refused there at the first change;
- in a faithful copy of a Supabase database (its roles, schema auth with the full
  auth.users of Supabase Auth, RLS on, owned by supabase_auth_admin; schema extensions
  with PostGIS and pg_cron created by an administrator) a non-superuser owner role deploys
  with exactly the privileges README's DBA section lists; auth and the roles are not
  touched, and revert leaves them as they were. Each privilege is shown necessary by
  taking it away;
- on a server without PostGIS at all (the server binary run from a copy of the
  installation whose extension directory lacks PostGIS), the deploy fails with a clear
  message and leaves nothing behind.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import act_as, call_function, footprint, report

ROOT = Path(__file__).resolve().parents[3]
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
_names = itertools.count()


def sqitch(
    command: str, target: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run sqitch from the repository root against ``target`` (a db:pg: URI); ``env`` is
    added to the environment (PGOPTIONS, say). A revert is not asked to confirm (-y), as
    without a terminal: the package's own guards are what stands between it and the data."""
    argv = ["sqitch", command, *(["-y"] if command == "revert" else []), *args, target]
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


#: The explicit consent to lose data in a revert.
CONSENT = {"PGOPTIONS": "-c autodoctor.allow_data_loss=on"}


def must(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@dataclass
class Server:
    """A PostgreSQL server reached on 127.0.0.1 as a superuser (and other roles)."""

    host: str
    port: int
    user: str
    password: str | None = None
    databases: list[str] = field(default_factory=list)

    def connect(self, dbname: str = "postgres", user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=user or self.user,
            password=self.password if user is None else None,
            dbname=dbname,
            autocommit=True,
        )

    def target(self, dbname: str, user: str | None = None) -> str:
        who = user or self.user
        if user is None and self.password:
            who = f"{who}:{self.password}"
        return f"db:pg://{who}@{self.host}:{self.port}/{dbname}"

    def create_db(self, name: str | None = None) -> str:
        name = name or f"autodoctor_mig_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def drop_databases(self) -> None:
        with self.connect() as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()

    def dump(self, dbname: str, *args: str) -> str:
        """pg_dump --schema-only, without pg_dump's random \\restrict lines."""
        env = {**os.environ, "PGPASSWORD": self.password or ""}
        proc = subprocess.run(
            [
                str(PGBIN / "pg_dump"),
                "--schema-only",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                *args,
                dbname,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return "\n".join(
            line
            for line in proc.stdout.splitlines()
            if not line.startswith(("\\restrict", "\\unrestrict"))
        )

    def roles(self) -> list[tuple[Any, ...]]:
        """Every role with its attributes, comment and memberships."""
        with self.connect() as conn:
            return conn.execute(
                "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,"
                " r.rolcanlogin,"
                " r.rolbypassrls, shobj_description(r.oid, 'pg_authid'),"
                " ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                "       WHERE m.member = r.oid ORDER BY 1)"
                " FROM pg_roles r WHERE r.rolname NOT LIKE 'pg\\_%' ORDER BY 1"
            ).fetchall()


# --- the throwaway cluster ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[Server]:
    server = Server(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=int(os.environ.get("PGPORT", "5432")),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD") or None,
    )
    with server.connect() as conn:
        if not conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]:  # type: ignore[index]
            pytest.skip("the migration tests create databases and roles: they need a superuser")
    yield server
    server.drop_databases()


@dataclass(frozen=True)
class Cycle:
    fresh: str
    first: str
    after_revert: str
    second: str
    roles_before: list[tuple[Any, ...]]
    roles_after_revert: list[tuple[Any, ...]]
    schemas_after_revert: list[str]


@pytest.fixture(scope="module")
def cycle(shared: Server) -> Cycle:
    db = shared.create_db()
    target = shared.target(db)
    fresh = shared.dump(db)
    roles_before = shared.roles()
    must(sqitch("deploy", target, "--verify"))
    first = shared.dump(db)
    must(sqitch("verify", target))
    must(sqitch("revert", target))
    after_revert = shared.dump(db, "--exclude-schema=sqitch")
    roles_after = shared.roles()
    with shared.connect(db) as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
                " AND nspname NOT IN ('information_schema', 'public', 'sqitch') ORDER BY 1"
            ).fetchall()
        ]
    must(sqitch("deploy", target, "--verify"))
    return Cycle(fresh, first, after_revert, shared.dump(db), roles_before, roles_after, schemas)


def test_deploy_revert_deploy_gives_an_identical_schema(
    cycle: Cycle, request: pytest.FixtureRequest
) -> None:
    assert "CREATE TABLE autodoctor.sessions" in cycle.first
    assert cycle.second == cycle.first
    report(
        request,
        f"migrations: deploy -> verify -> revert -> deploy: identical pg_dump --schema-only "
        f"({len(cycle.first.splitlines())} lines)",
    )


def test_revert_leaves_the_database_as_it_was(cycle: Cycle) -> None:
    assert cycle.schemas_after_revert == []
    assert cycle.after_revert == cycle.fresh
    # The roles already existed in this cluster (other databases use them): untouched.
    assert cycle.roles_after_revert == cycle.roles_before


def _failed_deploy(server: Server, db: str, user: str | None = None) -> str:
    proc = sqitch("deploy", server.target(db, user))
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def _package_objects(server: Server, db: str) -> list[str]:
    """The package's schemas, the extensions, and the changes sqitch has recorded."""
    with server.connect(db) as conn:
        found = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname IN ('autodoctor', 'auth',"
                " 'extensions')"
                " UNION ALL SELECT 'extension ' || extname FROM pg_extension WHERE extname <>"
                " 'plpgsql'"
            ).fetchall()
        ]
        if conn.execute("SELECT to_regclass('sqitch.changes')").fetchone() != (None,):
            found += [
                f"change {r[0]}"
                for r in conn.execute("SELECT change FROM sqitch.changes").fetchall()
            ]
    return sorted(found)


def _dsn(server: Server, db: str) -> str:
    return f"host={server.host} port={server.port} user={server.user} dbname={db}" + (
        f" password={server.password}" if server.password else ""
    )


def _new_users(conn: psycopg.Connection[Any], *names: str) -> list[uuid.UUID]:
    return [
        uuid.UUID(
            str(
                conn.execute(
                    "INSERT INTO auth.users (email, raw_user_meta_data) VALUES (%s, %s::jsonb)"
                    " RETURNING id",
                    (f"{name}-{uuid.uuid4().hex[:6]}@example.test", f'{{"full_name": "{name}"}}'),
                ).fetchone()[0]  # type: ignore[index]
            )
        )
        for name in names
    ]


@pytest.mark.parametrize("layout", ["extensions", "public"])
def test_postgis_in_either_schema_gives_the_same_located_behaviour(
    shared: Server, layout: str, request: pytest.FixtureRequest
) -> None:
    """PostGIS in schema extensions (Supabase) or public (plain PostgreSQL's default):
    deploy works, every function still pins search_path = '', and located accepts, the
    radius check, incoming_requests' distance and nearest-first dispatch agree."""
    import autodoctor_db as ad
    from autodoctor_db import errors

    db = shared.create_db()
    with shared.connect(db) as conn:
        if layout == "public":
            conn.execute("CREATE EXTENSION postgis")  # PostGIS's own default schema
        else:
            conn.execute("CREATE SCHEMA extensions")
            conn.execute("CREATE EXTENSION postgis SCHEMA extensions")
    must(sqitch("deploy", shared.target(db), "--verify"))
    with shared.connect(db) as conn:
        assert conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone() == (layout,)
        assert (
            conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p"
                " WHERE p.pronamespace = 'autodoctor'::regnamespace"
                "   AND NOT coalesce(p.proconfig @> ARRAY['search_path=\"\"'], false)"
            ).fetchall()
            == []
        )
        if layout == "public":
            assert conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'extensions'"
            ).fetchone() == (0,), "deploy made a schema extensions it does not need"
        customer, near, busy_near, far, orphan_owner = _new_users(
            conn, "Cus Tomer", "Near Mechanic", "Busy Mechanic", "Far Mechanic", "Orphan Owner"
        )
    database = ad.connect(_dsn(shared, db), max_size=2)
    try:
        with database.as_service() as svc:
            # Paris (two mechanics, 10 km radius), Lyon (one, 10 km: Paris is ~390 km away).
            registered = svc.register_mechanic(
                near, latitude=48.86, longitude=2.35, service_radius_km=10
            )
            svc.register_mechanic(busy_near, latitude=48.853, longitude=2.349, service_radius_km=10)
            svc.register_mechanic(far, latitude=45.76, longitude=4.83, service_radius_km=10)
        assert (registered.latitude, registered.longitude) == pytest.approx((48.86, 2.35))
        for mechanic in (near, busy_near, far):
            with database.as_user(mechanic) as m:
                m.set_mechanic_availability(True)
        with database.as_user(customer) as c:
            req = c.submit_intake(
                "video",
                "free",
                {"make": "Ford", "model": "Focus", "year": 2012},
                "brakes squeal",
                latitude=48.853,
                longitude=2.349,
            )
        assert (req.latitude, req.longitude) == pytest.approx((48.853, 2.349))
        with database.as_user(far) as m:
            assert m.incoming_requests() == []
        with pytest.raises(errors.OutOfServiceArea), database.as_user(far) as m:
            m.accept_session_request(req.id)
        with database.as_user(near) as m:
            [seen] = m.incoming_requests()
            assert seen.id == req.id and seen.distance_km is not None
            assert float(seen.distance_km) == pytest.approx(0.8, abs=0.1)
        with database.as_user(busy_near) as m:
            session = m.accept_session_request(req.id)
        assert session.mechanic_id == busy_near
        # A legacy orphan near Paris: dispatch picks the nearest mechanic with capacity
        # (busy_near is at capacity now), never the one in Lyon.
        with shared.connect(db) as conn:
            intake = conn.execute(
                "INSERT INTO autodoctor.intakes (customer_id, vehicle_make, vehicle_model,"
                " vehicle_year, concern, location) VALUES (%s, 'Fiat', 'Panda', 2010, 'noise',"
                " autodoctor._point(48.854, 2.35)) RETURNING id",
                (orphan_owner,),
            ).fetchone()[0]  # type: ignore[index]
            orphan = conn.execute(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status,"
                " intake_id, created_at)"
                " VALUES (%s, 'free', 'video', 'pending', %s, now() - interval '1 hour')"
                " RETURNING id",
                (orphan_owner, intake),
            ).fetchone()[0]  # type: ignore[index]
        with database.as_service() as svc:
            assert svc.auto_assign_orphaned_sessions() == 1
            assigned = svc.get_session(orphan)
            assert assigned is not None and assigned.mechanic_id == near
            assert svc.check_invariants() == []
    finally:
        database.close()
    report(
        request,
        f"migrations: PostGIS in schema {layout}: deploy, located accept / radius refusal, "
        "distance_km and nearest-first dispatch as in the other layout",
    )


# --- revert never destroys data by accident -----------------------------------------------


def _data(conn: psycopg.Connection[Any], *, settings: bool = True) -> dict[str, tuple[int, int]]:
    """The footprint of the data: every table but relay_state, the relay's position, which
    a revert drops and a deploy starts afresh at the oldest running transaction. With
    settings=False, not the settings row either: a reverted change takes its settings
    column (configuration, not data) with it, and a deploy brings back its default."""
    skip = {"autodoctor.relay_state"} | (set() if settings else {"autodoctor.settings"})
    return {k: v for k, v in footprint(conn).items() if k not in skip}


def _deployed_with_data(server: Server) -> tuple[str, dict[str, tuple[int, int]]]:
    """A fresh database, the package deployed, a request accepted through the API (so
    users, profiles, a mechanic, requests, a session, events and e-mails exist)."""
    db = server.create_db()
    must(sqitch("deploy", server.target(db), "--verify"))
    with server.connect(db) as conn:
        customer, mechanic = _new_users(conn, "Cus Tomer", "Me Chanic")
        with conn.transaction():
            act_as(conn, "service_role")
            call_function(conn, "register_mechanic", {"user_id": mechanic})
        with conn.transaction():
            act_as(conn, "authenticated", mechanic)
            call_function(conn, "set_mechanic_availability", {"online": True})
        with conn.transaction():
            act_as(conn, "authenticated", customer)
            req = call_function(
                conn, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )[0][0]
        with conn.transaction():  # the worker's claim queues the request's e-mail (fan-out)
            act_as(conn, "service_role")
            call_function(conn, "claim_notifications", {"batch_size": 10})
        with conn.transaction():
            act_as(conn, "authenticated", mechanic)
            call_function(conn, "accept_session_request", {"request_id": req})
        held = _data(conn)
    assert all(held[t][0] > 0 for t in ("autodoctor.sessions", "autodoctor.notification_outbox"))
    return db, held


def test_revert_with_data_refuses_loses_nothing_and_deploy_restores_the_package(
    shared: Server, request: pytest.FixtureRequest
) -> None:
    db, held = _deployed_with_data(shared)
    target = shared.target(db)
    proc = sqitch("revert", target)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    refused = re.search(r"revert refused: it would drop (autodoctor\.\w+) \((\d+) rows?\)", out)
    assert refused, out
    assert "PGOPTIONS='-c autodoctor.allow_data_loss=on' sqitch revert" in out
    with shared.connect(db) as conn:
        assert _data(conn, settings=False) == {
            k: v for k, v in held.items() if k != "autodoctor.settings"
        }
        assert conn.execute(f"SELECT count(*) FROM {refused[1]}").fetchone() == (int(refused[2]),)
    # Whatever was reverted before the refusal comes back; the package works on the data.
    must(sqitch("deploy", target, "--verify"))
    with shared.connect(db) as conn:
        assert _data(conn) == held
        assert conn.execute("SELECT count(*) FROM autodoctor.check_invariants()").fetchone() == (0,)
        [customer] = _new_users(conn, "Later Customer")
        with conn.transaction():
            act_as(conn, "authenticated", customer)
            call_function(
                conn, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )
    # With explicit consent the revert goes through, and leaves nothing of the package.
    proc = sqitch("revert", target, env=CONSENT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "autodoctor.allow_data_loss is on: dropping" in proc.stdout + proc.stderr
    with shared.connect(db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('autodoctor', 'auth')"
        ).fetchone() == (0,)
    report(
        request,
        f"migrations: revert with data refused at {refused[1]} ({refused[2]} rows), every row "
        "kept; deploy restored the package; PGOPTIONS consent reverts it all",
    )


def test_revert_keeps_auth_users_rows_without_consent(shared: Server) -> None:
    db = shared.create_db()
    target = shared.target(db)
    must(sqitch("deploy", target))
    with shared.connect(db) as conn:
        _new_users(conn, "Only User")
    # Consent for the package's own tables (profiles), down to the auth shim...
    must(sqitch("revert", target, "--to", "auth_shim", env=CONSENT))
    # ...but the shim's auth.users still holds the user: no consent, no drop.
    proc = sqitch("revert", target)
    assert proc.returncode != 0
    assert "revert refused: it would drop auth.users (1 row)" in proc.stdout + proc.stderr
    with shared.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM auth.users").fetchone() == (1,)
    must(sqitch("revert", target, env=CONSENT))
    with shared.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('auth.users')").fetchone() == (None,)


def test_revert_never_drops_what_others_use(shared: Server) -> None:
    """PostGIS and schema extensions, and the shim's auth schema, stay where objects that
    are not the package's depend on them; the revert itself succeeds."""
    db = shared.create_db()
    target = shared.target(db)
    must(sqitch("deploy", target))
    with shared.connect(db) as conn:
        assert conn.execute(
            "SELECT obj_description(oid, 'pg_extension') FROM pg_extension"
            " WHERE extname = 'postgis'"
        ).fetchone() == ("autodoctor-db: created by sqitch change extensions",)
        conn.execute("CREATE TABLE public.places (id int, g extensions.geography)")
        conn.execute("CREATE TABLE public.audit (user_id uuid REFERENCES auth.users (id))")
    proc = sqitch("revert", target)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PostGIS left in place" in out
    assert "schema auth left in place" in out
    with shared.connect(db) as conn:
        assert conn.execute(
            "SELECT extname FROM pg_extension WHERE extname = 'postgis'"
        ).fetchall() == [("postgis",)]
        assert conn.execute("SELECT to_regclass('auth.users') IS NOT NULL").fetchone() == (True,)
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'autodoctor'"
        ).fetchone() == (0,)
        conn.execute("INSERT INTO public.places VALUES (1, 'POINT(2 48)')")


def _make(target: str, server: Server, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`make` as a user runs it against their own server (PGHOST), without a terminal."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AUTODOCTOR_LOCAL_DB", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PGOPTIONS")
    }
    env |= {
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGDATABASE": db,
    }
    return subprocess.run(
        ["make", "--no-print-directory", "-s", target, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_revert_asks_keeps_data_and_drops_it_only_when_told(shared: Server) -> None:
    db, held = _deployed_with_data(shared)
    proc = _make("revert", shared, db)
    assert proc.returncode != 0
    assert "no terminal to ask on; run it in one, or pass CONFIRM=yes" in proc.stderr
    with shared.connect(db) as conn:
        assert _data(conn) == held
        assert conn.execute("SELECT count(*) FROM sqitch.changes").fetchone()[0] > 30  # type: ignore[index]
    proc = _make("revert", shared, db, "CONFIRM=yes")
    assert proc.returncode != 0
    assert "revert refused: it would drop" in proc.stdout + proc.stderr
    with shared.connect(db) as conn:
        assert _data(conn, settings=False) == {
            k: v for k, v in held.items() if k != "autodoctor.settings"
        }
    proc = _make("deploy", shared, db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _make("revert", shared, db, "CONFIRM=yes", "ALLOW_DATA_LOSS=yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with shared.connect(db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'autodoctor'"
        ).fetchone() == (0,)


@pytest.fixture(scope="module")
def unprivileged_deploy(shared: Server) -> tuple[str, list[str]]:
    """A deploy by a role with CREATE on the database only, PostGIS not installed (the
    roles exist, created by another deploy in this cluster): its output and what it left."""
    db = shared.create_db()
    role = f"deployer_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
    with shared.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CREATE ON DATABASE "{db}" TO "{role}"')
    try:
        out = _failed_deploy(shared, db, role)
        return out, _package_objects(shared, db)
    finally:
        with shared.connect() as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            shared.databases.remove(db)
            conn.execute(f'DROP ROLE "{role}"')


def test_a_role_that_may_not_create_postgis_is_told_what_to_ask_for(
    unprivileged_deploy: tuple[str, list[str]],
) -> None:
    out, _ = unprivileged_deploy
    assert "the deploying role may not create the PostGIS extension" in out
    assert "CREATE EXTENSION postgis SCHEMA extensions" in out


def test_a_failed_unprivileged_deploy_leaves_nothing_behind(
    unprivileged_deploy: tuple[str, list[str]],
) -> None:
    _, left = unprivileged_deploy
    assert left == []


def _release_tags() -> list[str]:
    return re.findall(r"^@(\S+)", (ROOT / "sqitch.plan").read_text(), flags=re.M)


def _columns(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every table of the package (and auth.users) with its columns, as they are now."""
    rows = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname), array_agg(quote_ident(a.attname)"
        "       ORDER BY a.attnum)"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE ((n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p'))"
        "        OR (n.nspname = 'auth' AND c.relname = 'users'))"
        "   AND NOT c.relispartition"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(r[0]): list(r[1]) for r in rows}


def _rows(conn: psycopg.Connection[Any], columns: dict[str, list[str]]) -> dict[str, Any]:
    """Per table, the sorted text of every row over the given columns: equal before and
    after an upgrade iff every row survived with the same values in those columns."""
    return {
        table: sorted(
            r[0]
            for r in conn.execute(f"SELECT ROW({', '.join(cols)})::text FROM {table}").fetchall()
        )
        for table, cols in columns.items()
    }


@pytest.mark.parametrize("tag", _release_tags() or ["no-tag"])
def test_upgrade_from_a_release_keeps_every_row_and_equals_a_fresh_deploy(
    shared: Server, tag: str, request: pytest.FixtureRequest
) -> None:
    """`sqitch deploy --to @TAG` (the plan of today, with its reworked NAME@TAG files), data
    written through that release's API in every state, then `sqitch deploy --verify` to
    HEAD: every row of every table is still there with the values it had (in the columns
    the release had), the invariants hold, the old rows keep working through the new API,
    and the schema is exactly that of a fresh deploy of HEAD (pg_dump --schema-only)."""
    assert tag != "no-tag", "sqitch.plan has no release tag to upgrade from"
    db = shared.create_db()
    target = shared.target(db)
    must(sqitch("deploy", target, "--to", f"@{tag}", "--verify"))
    with shared.connect(db) as conn:
        customer, other, near, far, legacy = _new_users(
            conn, "Cus Tomer", "Other Customer", "Near Mechanic", "Far Mechanic", "Legacy Owner"
        )
        with conn.transaction():
            act_as(conn, "service_role")
            for uid, lat in ((near, 48.86), (far, 45.76)):
                call_function(
                    conn,
                    "register_mechanic",
                    {
                        "user_id": uid,
                        "latitude": lat,
                        "longitude": 2.35,
                        "service_radius_km": 20,
                        "max_concurrent_sessions": 3,
                    },
                )
        for uid in (near, far):
            with conn.transaction():
                act_as(conn, "authenticated", uid)
                call_function(conn, "set_mechanic_availability", {"online": True})
        # A located intake, accepted, and its session taken to completion.
        with conn.transaction():
            act_as(conn, "authenticated", customer)
            located = call_function(
                conn,
                "submit_intake",
                {
                    "session_type": "video",
                    "plan_code": "free",
                    "vehicle": '{"make": "Ford", "model": "Focus", "year": 2012}',
                    "concern": "brakes squeal",
                    "latitude": 48.853,
                    "longitude": 2.349,
                },
            )[0][0]
        with conn.transaction():
            act_as(conn, "authenticated", near)
            done = call_function(conn, "accept_session_request", {"request_id": located})[0][0]
        for status in ("live", "completed"):
            with conn.transaction():
                act_as(conn, "authenticated", near)
                call_function(conn, "transition_session", {"session_id": done, "to_status": status})
        # A request left pending, one cancelled, and a legacy orphan repaired by maintenance.
        with conn.transaction():
            act_as(conn, "authenticated", other)
            pending = call_function(
                conn,
                "create_session_request",
                {"session_type": "chat", "plan_code": "standard", "notes": "still waiting"},
            )[0][0]
            cancelled = call_function(
                conn, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )[0][0]
            call_function(conn, "cancel_session_request", {"request_id": cancelled})
        conn.execute(
            "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, created_at)"
            " VALUES (%s, 'free', 'chat', 'pending', now() - interval '1 hour')",
            (legacy,),
        )
        conn.execute("SELECT autodoctor.run_maintenance()")
        assert conn.execute("SELECT count(*) FROM autodoctor.check_invariants()").fetchone() == (0,)
        columns = _columns(conn)
        before = _rows(conn, columns)
    assert all(before[t] for t in ("autodoctor.sessions", "autodoctor.session_events")), before

    must(sqitch("deploy", target, "--verify"))

    with shared.connect(db) as conn:
        assert _rows(conn, columns) == before
        assert conn.execute("SELECT count(*) FROM autodoctor.check_invariants()").fetchone() == (0,)
        # The release's rows mean the same to HEAD's API: the pending request is accepted.
        with conn.transaction():
            act_as(conn, "authenticated", near)
            session = call_function(conn, "accept_session_request", {"request_id": pending})
        assert session[0][0] is not None
    fresh = shared.create_db()
    must(sqitch("deploy", shared.target(fresh), "--verify"))
    upgraded_schema = shared.dump(db, "--exclude-schema=sqitch")
    assert upgraded_schema == shared.dump(fresh, "--exclude-schema=sqitch")
    report(
        request,
        f"migrations: upgrade @{tag} -> HEAD: {sum(len(v) for v in before.values())} rows in "
        f"{len(before)} tables kept value for value; schema identical to a fresh deploy "
        f"({len(upgraded_schema.splitlines())} lines of pg_dump)",
    )


def test_an_owner_role_without_pg_read_all_settings_can_deploy(shared: Server) -> None:
    db = shared.create_db()
    role = f"deployer_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
    with shared.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CREATE ON DATABASE "{db}" TO "{role}"')
    with shared.connect(db) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role")
        conn.execute(f'GRANT USAGE ON SCHEMA extensions TO "{role}"')
        conn.execute("CREATE EXTENSION postgis SCHEMA extensions")
    try:
        proc = sqitch("deploy", shared.target(db, role))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        with shared.connect() as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            shared.databases.remove(db)
            conn.execute(f'DROP ROLE "{role}"')


# --- private clusters ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv


CLUSTER_SH = ROOT / "scripts" / "cluster.sh"


def _cluster(*args: str) -> None:
    """scripts/cluster.sh: the project's one way to make, start and stop a throwaway cluster."""
    proc = subprocess.run(
        [str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=180, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/cluster.sh {' '.join(args)}: {proc.stdout}{proc.stderr}")


class PrivateCluster(Server):
    """A cluster of our own in a temporary directory, on a free port (trust auth), made and
    started by scripts/cluster.sh (as the postgres OS user when root)."""

    def __init__(self, *, postgres_binary: Path | None = None, conf: str = "") -> None:
        if not (PGBIN / "initdb").exists():
            pytest.skip(f"no PostgreSQL server binaries in {PGBIN}")
        if os.getuid() == 0 and shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start a cluster")
        self.base = Path(tempfile.mkdtemp(prefix="autodoctor-mig-"))
        super().__init__(host="127.0.0.1", port=_free_port(), user="postgres")
        base = str(self.base)
        settings = f"max_connections = 40\nfsync = off\n{conf}"
        _cluster("init", "--dir", base, "--port", str(self.port), "--conf", settings)
        # pg_ctl of this cluster, for the tests that stop, start or restart it themselves.
        self.pg_ctl = [
            str(PGBIN / "pg_ctl"),
            "-D",
            str(self.base / "data"),
            "-l",
            str(self.base / "postgresql.log"),
            "-w",
            "-t",
            "60",
        ]
        start = ["start", "--dir", base]
        if postgres_binary is not None:
            self.pg_ctl += ["-p", str(postgres_binary)]
            start += ["--postgres", str(postgres_binary)]
        _cluster(*start)

    def stop(self) -> None:
        subprocess.run(
            [str(CLUSTER_SH), "destroy", "--dir", str(self.base), "--mode", "immediate"],
            capture_output=True,
            check=False,
            timeout=180,
        )
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(
        conf="shared_preload_libraries = 'pg_cron'\ncron.database_name = 'cronbox'"
    )
    yield cluster
    cluster.stop()


def _package_roles(server: Server) -> list[str]:
    return [r[0] for r in server.roles() if r[0] in ("anon", "authenticated", "service_role")]


def test_revert_on_a_fresh_cluster_removes_every_role_schema_and_extension(
    private: PrivateCluster,
) -> None:
    db = private.create_db()
    roles_before, fresh = private.roles(), private.dump(db)
    assert _package_roles(private) == []
    must(sqitch("deploy", private.target(db), "--verify"))
    assert _package_roles(private) == ["anon", "authenticated", "service_role"]
    must(sqitch("revert", private.target(db)))
    assert private.roles() == roles_before
    assert private.dump(db, "--exclude-schema=sqitch") == fresh
    private.drop_databases()


@dataclass(frozen=True)
class PlainOwnerRun:
    refused_without_createrole: str
    left_after_refusal: tuple[list[str], list[str]]
    roles_after_deploy: list[str]
    roles_after_revert: list[str]
    objects_after_revert: list[str]


@pytest.fixture(scope="module")
def plain_owner(private: PrivateCluster) -> PlainOwnerRun:
    """A plain PostgreSQL (no API roles, no auth) where an administrator created the
    extensions; a non-superuser owner deploys, first without CREATEROLE, then with it,
    then reverts."""
    db = private.create_db()
    with private.connect() as conn:
        conn.execute("CREATE ROLE plain_deployer LOGIN")
        conn.execute(f'GRANT CREATE ON DATABASE "{db}" TO plain_deployer')
        conn.execute("GRANT pg_read_all_settings TO plain_deployer")  # pg_cron is installed
    with private.connect(db) as conn:
        conn.execute("CREATE SCHEMA extensions")
        # WITH GRANT OPTION: the API roles do not exist yet, so the administrator cannot
        # grant them USAGE beforehand; deploy grants it once it has created them.
        conn.execute("GRANT USAGE ON SCHEMA extensions TO plain_deployer WITH GRANT OPTION")
        conn.execute("CREATE EXTENSION postgis SCHEMA extensions")
    target = private.target(db, "plain_deployer")
    try:
        refused = _failed_deploy(private, db, "plain_deployer")
        left = (_package_roles(private), _package_objects(private, db))
        with private.connect() as conn:
            conn.execute("ALTER ROLE plain_deployer CREATEROLE")
        must(sqitch("deploy", target, "--verify"))
        deployed = _package_roles(private)
        must(sqitch("revert", target))
        return PlainOwnerRun(
            refused, left, deployed, _package_roles(private), _package_objects(private, db)
        )
    finally:
        private.drop_databases()
        with private.connect() as conn:
            for role in _package_roles(private):  # whatever revert left behind
                conn.execute(f"DROP ROLE {role}")
            conn.execute("DROP ROLE plain_deployer")


def test_a_non_superuser_owner_needs_createrole_only_where_the_roles_are_missing(
    plain_owner: PlainOwnerRun,
) -> None:
    assert "permission denied to create role" in plain_owner.refused_without_createrole
    assert plain_owner.left_after_refusal == ([], ["extension postgis", "extensions"])
    assert plain_owner.roles_after_deploy == ["anon", "authenticated", "service_role"]
    assert plain_owner.objects_after_revert == ["extension postgis", "extensions"]


def test_revert_removes_the_roles_it_created_where_an_admin_made_the_extensions(
    plain_owner: PlainOwnerRun,
) -> None:
    assert plain_owner.roles_after_revert == []


# A faithful copy of what a Supabase project has before this package is deployed: its API
# roles, and schema auth as Supabase Auth's migrations leave it (auth.users with its full
# column set, constraints and indexes, RLS enabled, owned by supabase_auth_admin; the
# auth.uid/role/email/jwt functions), schema extensions with PostGIS, and pg_cron.
SUPABASE_ROLES = """
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
CREATE ROLE supabase_auth_admin LOGIN NOINHERIT CREATEROLE;
"""
SUPABASE_AUTH = """
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
SET ROLE supabase_auth_admin;
CREATE TABLE auth.users (
    instance_id uuid,
    id uuid NOT NULL,
    aud character varying(255),
    role character varying(255),
    email character varying(255),
    encrypted_password character varying(255),
    email_confirmed_at timestamp with time zone,
    invited_at timestamp with time zone,
    confirmation_token character varying(255),
    confirmation_sent_at timestamp with time zone,
    recovery_token character varying(255),
    recovery_sent_at timestamp with time zone,
    email_change_token_new character varying(255),
    email_change character varying(255),
    email_change_sent_at timestamp with time zone,
    last_sign_in_at timestamp with time zone,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    phone text DEFAULT NULL::character varying,
    phone_confirmed_at timestamp with time zone,
    phone_change text DEFAULT ''::character varying,
    phone_change_token character varying(255) DEFAULT ''::character varying,
    phone_change_sent_at timestamp with time zone,
    confirmed_at timestamp with time zone
        GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current character varying(255) DEFAULT ''::character varying,
    email_change_confirm_status smallint DEFAULT 0,
    banned_until timestamp with time zone,
    reauthentication_token character varying(255) DEFAULT ''::character varying,
    reauthentication_sent_at timestamp with time zone,
    is_sso_user boolean DEFAULT false NOT NULL,
    deleted_at timestamp with time zone,
    is_anonymous boolean DEFAULT false NOT NULL,
    CONSTRAINT users_email_change_confirm_status_check
        CHECK (email_change_confirm_status >= 0 AND email_change_confirm_status <= 2),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';
COMMENT ON COLUMN auth.users.is_sso_user IS
    'Auth: Set this column to true when the account comes from SSO. '
    'These accounts can have duplicate emails.';
CREATE UNIQUE INDEX confirmation_token_idx ON auth.users (confirmation_token)
    WHERE confirmation_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX email_change_token_current_idx ON auth.users (email_change_token_current)
    WHERE email_change_token_current !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX email_change_token_new_idx ON auth.users (email_change_token_new)
    WHERE email_change_token_new !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX reauthentication_token_idx ON auth.users (reauthentication_token)
    WHERE reauthentication_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX recovery_token_idx ON auth.users (recovery_token)
    WHERE recovery_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false;
COMMENT ON INDEX auth.users_email_partial_key IS
    'Auth: A partial unique index that applies only when is_sso_user is false';
CREATE INDEX users_instance_id_email_idx ON auth.users (instance_id, lower(email));
CREATE INDEX users_instance_id_idx ON auth.users (instance_id);
CREATE INDEX users_is_anonymous_idx ON auth.users (is_anonymous);
ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
                 )::uuid $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
                 )::text $$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
                 )::text $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;
COMMENT ON FUNCTION auth.uid() IS 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
RESET ROLE;
-- A user who signed up before the package arrived.
INSERT INTO auth.users (id, aud, role, email, raw_user_meta_data, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
        'early@example.test',
        '{"full_name": "Early Bird"}', now());
CREATE SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
CREATE EXTENSION postgis SCHEMA extensions;
"""

#: The privileges README's DBA section lists for the deploying role, on a Supabase-like
#: database where an administrator created the extensions ({db} and {role} filled in).
DEPLOYER_GRANTS = {
    "connect and create schemas": 'GRANT CONNECT, CREATE ON DATABASE "{db}" TO {role}',
    "usage on auth": "GRANT USAGE ON SCHEMA auth TO {role}",
    "select on auth.users": "GRANT SELECT (id, email, raw_user_meta_data, created_at) ON"
    " auth.users TO {role}",
    "references auth.users": "GRANT REFERENCES (id) ON auth.users TO {role}",
    "trigger on auth.users": "GRANT TRIGGER ON auth.users TO {role}",
    "usage on extensions": "GRANT USAGE ON SCHEMA extensions TO {role}",
    # Where pg_cron serves this database: reading cron.database_name (superuser-only) is how
    # deploy knows it may schedule maintenance; without it deploy schedules nothing (tested
    # by test_an_owner_role_without_pg_read_all_settings_can_deploy).
    "read server settings": "GRANT pg_read_all_settings TO {role}",
}


@pytest.fixture(scope="module")
def supabase(private: PrivateCluster) -> Iterator[PrivateCluster]:
    """The private cluster with Supabase's roles (after the fresh-cluster tests)."""
    with private.connect() as conn:
        conn.execute(SUPABASE_ROLES)
    yield private


def _supabase_db(
    server: Server, name: str | None = None, *, role: str = "deployer", omit: str | None = None
) -> str:
    db = server.create_db(name)
    with server.connect(db) as conn:
        conn.execute(SUPABASE_AUTH)
        if db == "cronbox":
            conn.execute("CREATE EXTENSION pg_cron")
            conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
        for what, grant in DEPLOYER_GRANTS.items():
            if what != omit:
                conn.execute(grant.format(db=db, role=role))
    return db


def _auth_state(server: Server, db: str) -> str:
    """Schema auth as pg_dump shows it, without the package's own triggers on auth.users."""
    chunks = re.split(r"(?m)^(?=--\n-- Name: )", server.dump(db, "--schema=auth"))
    return "".join(
        c
        for c in chunks
        if "autodoctor_on_auth_user_created" not in c and "autodoctor_on_auth_user_deleted" not in c
    )


def test_supabase_non_superuser_deploy_leaves_auth_and_roles_untouched(
    supabase: PrivateCluster, request: pytest.FixtureRequest
) -> None:
    with supabase.connect() as conn:
        conn.execute("CREATE ROLE deployer LOGIN BYPASSRLS")
    db = _supabase_db(supabase, "cronbox")
    target = supabase.target(db, "deployer")
    auth_before, roles_before = _auth_state(supabase, db), supabase.roles()
    must(sqitch("deploy", target, "--verify"))

    assert _auth_state(supabase, db) == auth_before
    assert supabase.roles() == roles_before
    with supabase.connect(db) as conn:
        assert conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'auth.users'::regclass"
            " AND NOT tgisinternal ORDER BY 1"
        ).fetchall() == [("autodoctor_on_auth_user_created",), ("autodoctor_on_auth_user_deleted",)]
        # Every object of the package belongs to the deploying role.
        assert conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " WHERE c.relnamespace = 'autodoctor'::regnamespace"
        ).fetchall() == [("deployer",)]
        # The user who signed up earlier got a profile; a new sign-up gets one too.
        assert conn.execute("SELECT full_name FROM autodoctor.profiles").fetchall() == [
            ("Early Bird",)
        ]
        customer, mechanic = uuid.uuid4(), uuid.uuid4()
        for uid, name in ((customer, "Cus Tomer"), (mechanic, "Me Chanic")):
            conn.execute(
                "INSERT INTO auth.users (id, aud, role, email, raw_user_meta_data, created_at)"
                " VALUES (%s, 'authenticated', 'authenticated', %s, %s, now())",
                (uid, f"{uid}@example.test", f'{{"full_name": "{name}"}}'),
            )
        # The contract works end to end as PostgREST would call it.
        with conn.transaction():
            act_as(conn, "service_role")
            call_function(conn, "register_mechanic", {"user_id": mechanic})
        with conn.transaction():
            act_as(conn, "authenticated", customer)
            req = call_function(
                conn, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )[0][0]
        with conn.transaction():
            act_as(conn, "authenticated", mechanic)
            assert conn.execute("SELECT id FROM autodoctor.incoming_requests").fetchall() == [
                (req,)
            ]
            call_function(conn, "accept_session_request", {"request_id": req})
        assert conn.execute("SELECT count(*) FROM autodoctor.check_invariants()").fetchone() == (0,)
        # pg_cron: maintenance is scheduled, and runs as the deploying role.
        assert conn.execute(
            "SELECT username FROM cron.job WHERE jobname = 'autodoctor-maintenance'"
        ).fetchall() == [("deployer",)]

        # Necessary at run time: bypassing RLS on auth.users (Supabase enables it, with no
        # policy), else the definer functions cannot see the caller's auth.users row...
        conn.execute("ALTER ROLE deployer NOBYPASSRLS")
        # (In a new session: the old one keeps plans cached with the bypass.)
        with (
            supabase.connect(db) as fresh,
            pytest.raises(psycopg.errors.InsufficientPrivilege) as info,
            fresh.transaction(),
        ):
            act_as(fresh, "authenticated", customer)
            call_function(
                fresh, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )
        assert info.value.diag.message_detail == "not_authenticated"
        conn.execute("ALTER ROLE deployer BYPASSRLS")
        # ...and USAGE on schema extensions for the API roles (Supabase grants it), which the
        # deploying role cannot grant itself: policies and views call PostGIS as the caller.
        conn.execute("REVOKE USAGE ON SCHEMA extensions FROM authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            act_as(conn, "authenticated", mechanic)
            conn.execute("SELECT * FROM autodoctor.session_requests")
        conn.execute("GRANT USAGE ON SCHEMA extensions TO authenticated")

    # Necessary for the change scheduling maintenance in the pg_cron database: USAGE on
    # schema cron. (Reverting down to it passes user_erasure, which drops its trigger on
    # auth.users: only auth.users' owner may, as for every revert there.)
    with supabase.connect() as conn:
        conn.execute("GRANT supabase_auth_admin TO deployer")
    must(sqitch("revert", target, "--to", "run_maintenance"))
    with supabase.connect() as conn:
        conn.execute("REVOKE supabase_auth_admin FROM deployer")
    with supabase.connect(db) as conn:
        conn.execute("REVOKE USAGE ON SCHEMA cron FROM deployer")
    out = _failed_deploy(supabase, db, "deployer")
    assert "permission denied for schema cron" in out
    with supabase.connect(db) as conn:
        conn.execute("GRANT USAGE ON SCHEMA cron TO deployer")
    must(sqitch("deploy", target))

    # Revert must drop the package's triggers on auth.users: only auth.users' owner may.
    proc = sqitch("revert", target, env=CONSENT)
    assert proc.returncode != 0 and "must be owner of relation users" in proc.stdout + proc.stderr
    must(sqitch("deploy", target))
    with supabase.connect() as conn:
        conn.execute("GRANT supabase_auth_admin TO deployer")
    # Without consent the revert keeps the rows written above (and stops)...
    proc = sqitch("revert", target)
    assert proc.returncode != 0 and "revert refused: it would drop" in proc.stdout + proc.stderr
    must(sqitch("deploy", target))
    # ...with it, everything goes.
    must(sqitch("revert", target, env=CONSENT))
    with supabase.connect() as conn:
        conn.execute("REVOKE supabase_auth_admin FROM deployer")
    assert _auth_state(supabase, db) == auth_before
    assert supabase.roles() == roles_before
    with supabase.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
        assert conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall() == [
            ("pg_cron",),
            ("plpgsql",),
            ("postgis",),
        ]
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'autodoctor'"
        ).fetchone() == (0,)
    report(
        request,
        "migrations: Supabase-like database, non-superuser owner: deploy, run, revert; "
        "auth.users and the roles untouched; privileges needed: "
        + ", ".join(DEPLOYER_GRANTS)
        + ", BYPASSRLS, USAGE on cron (pg_cron's database), "
        "membership in auth.users' owner (revert only)",
    )


@pytest.mark.parametrize(
    "omit",
    [
        "connect and create schemas",
        "usage on auth",
        "select on auth.users",
        "references auth.users",
        "trigger on auth.users",
        "usage on extensions",
    ],
)
def test_supabase_deploy_needs_each_listed_privilege(supabase: PrivateCluster, omit: str) -> None:
    role = "deployer_" + re.sub(r"\W+", "_", omit)
    with supabase.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN BYPASSRLS")
    db = _supabase_db(supabase, role=role, omit=omit)
    try:
        if omit == "connect and create schemas":
            # CONNECT comes from PUBLIC; what is missing is CREATE on the database.
            out = _failed_deploy(supabase, db, role)
            assert "permission denied for database" in out
        else:
            out = _failed_deploy(supabase, db, role)
            assert re.search(
                r"permission denied for (schema|table|relation) (auth|users|extensions)", out
            ), out
        assert _package_objects(supabase, db) == ["auth", "extension postgis", "extensions"]
    finally:
        supabase.drop_databases()
        with supabase.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _relocated_without_postgis(base: Path) -> Path:
    """A copy of the server binary whose installation lacks PostGIS; its path."""

    def pg_config(flag: str) -> Path:
        return Path(
            subprocess.run(
                [str(PGBIN / "pg_config"), flag], capture_output=True, text=True, check=True
            ).stdout.strip()
        )

    bindir, sharedir, pkglibdir = (
        pg_config("--bindir"),
        pg_config("--sharedir"),
        pg_config("--pkglibdir"),
    )
    new_bin, new_share, new_lib = (base / p.relative_to("/") for p in (bindir, sharedir, pkglibdir))
    new_bin.mkdir(parents=True)
    shutil.copy2(bindir / "postgres", new_bin / "postgres")
    new_lib.parent.mkdir(parents=True, exist_ok=True)
    if not new_lib.exists():
        new_lib.symlink_to(pkglibdir)
    (new_share / "extension").mkdir(parents=True)
    for entry in sharedir.iterdir():
        if entry.name != "extension":
            (new_share / entry.name).symlink_to(entry)
    for entry in (sharedir / "extension").iterdir():
        if not entry.name.startswith("postgis"):
            (new_share / "extension" / entry.name).symlink_to(entry)
    return new_bin / "postgres"


def test_a_server_without_postgis_fails_the_deploy_clearly_and_leaves_nothing(
    request: pytest.FixtureRequest,
) -> None:
    if not (PGBIN / "pg_config").exists():
        pytest.skip("no pg_config to find the installation's layout")
    base = Path(tempfile.mkdtemp(prefix="autodoctor-nopostgis-"))
    try:
        binary = _relocated_without_postgis(base)
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres:", str(base)], check=True)
        cluster = PrivateCluster(postgres_binary=binary)
        try:
            db = cluster.create_db()
            with cluster.connect(db) as conn:
                if conn.execute(
                    "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"
                ).fetchone() != (0,):
                    pytest.skip(
                        "this PostgreSQL build is not relocatable: PostGIS could not be hidden"
                    )
            out = _failed_deploy(cluster, db)
            assert (
                "autodoctor-db needs the PostGIS extension, which this server does not have" in out
            )
            assert "postgresql-15-postgis-3" in out
            assert _package_objects(cluster, db) == []
            assert _package_roles(cluster) == []
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(
        request,
        "migrations: a server without PostGIS: deploy refused with the clear message, "
        "nothing left behind (roles included)",
    )


def test_relay_mode_stays_consistent_across_a_revert_and_redeploy(shared: Server) -> None:
    """In relay mode, revert the relay (down to maintenance_schedule) and deploy again: the
    setting and the NOTIFY trigger agree, and no old event is announced again."""
    db = shared.create_db()
    target = shared.target(db)
    must(sqitch("deploy", target))
    with shared.connect(db) as conn:
        [customer] = _new_users(conn, "Relay Customer")
        with conn.transaction():
            act_as(conn, "service_role")
            call_function(conn, "set_notify_mode", {"mode": "relay"})
        with conn.transaction():
            act_as(conn, "authenticated", customer)
            call_function(
                conn, "create_session_request", {"session_type": "chat", "plan_code": "free"}
            )
    must(sqitch("revert", target, "--to", "maintenance_schedule"))
    must(sqitch("deploy", target, "--verify"))
    with shared.connect(db) as conn:
        state = conn.execute(
            "SELECT s.notify_mode, t.tgenabled FROM autodoctor.settings s, pg_trigger t"
            " WHERE t.tgname = 'session_events_notify'"
        ).fetchone()
        assert state == ("transaction", "O")
        conn.execute("LISTEN autodoctor")
        with conn.transaction():
            act_as(conn, "service_role")
            call_function(conn, "set_notify_mode", {"mode": "relay"})
            assert call_function(conn, "relay_events", {}) == [(0,)]  # nothing old again
        assert list(conn.notifies(timeout=0.3)) == []
