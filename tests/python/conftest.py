"""Shared fixtures: every test gets a fresh clone of a template database where the
package was deployed once per run by sqitch (pytest-postgresql, no-process mode, against
the server the Makefile started or the one PG* variables name)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest
from pytest_postgresql import factories

ROOT = Path(__file__).resolve().parents[2]


def deploy(
    host: str, port: int, user: str, dbname: str, password: str | None = None, **_: Any
) -> None:
    """Deploy the sqitch project into the template database."""
    auth = user if not password else f"{user}:{password}"
    target = f"db:pg://{auth}@{host}:{port}/{dbname}"
    proc = subprocess.run(
        ["sqitch", "deploy", "--verify", target], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sqitch deploy failed:\n{proc.stdout}\n{proc.stderr}")


postgresql_noproc = factories.postgresql_noproc(
    host=os.environ.get("PGHOST", "127.0.0.1"),
    port=int(os.environ.get("PGPORT", "5432")),
    user=os.environ.get("PGUSER", "postgres"),
    password=os.environ.get("PGPASSWORD") or None,
    # Unique per run: the run creates (and drops) only databases it named itself, even on
    # a server that holds other databases (PGHOST), and never the demo's.
    dbname=f"autodoctor_pytest_{os.getpid()}",
    load=[deploy],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    """libpq connection string of this test's own database (an administrator's)."""
    info = postgresql.info
    parts = [f"host={info.host}", f"port={info.port}", f"user={info.user}", f"dbname={info.dbname}"]
    if info.password:
        parts.append(f"password={info.password}")
    return " ".join(parts)


@pytest.fixture
def admin(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit administrator connection to this test's database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


#: Set by `make test` for its second pass: the driver then talks to the database through
#: pgbouncer in transaction-pooling mode (prepared statements off), LISTEN stays direct.
VIA_POOLER = os.environ.get("AUTODOCTOR_TEST_POOLER_PORT")


#: The tests are laid out by kind, one folder each; a test is marked with its folder's name
#: (``pytest -m contract``). Every contract test also runs through pgbouncer (``pooler``),
#: as do the driver modules that mark themselves ``pytest.mark.pooler``.
KINDS = ("contract", "driver", "operations", "reliability", "meta")
THROUGH_POOLER = ("contract",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        kind = item.path.resolve().relative_to(here).parts[0]
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
        if kind in THROUGH_POOLER:
            item.add_marker(pytest.mark.pooler)
    if VIA_POOLER:
        skip = pytest.mark.skip(reason="needs direct connections (runs in the direct pass)")
        for item in items:
            if item.get_closest_marker("direct_only"):
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def pooler_is_transaction_pooling() -> None:
    """In the pooler pass, prove the pooler is there and pools transactions."""
    if not VIA_POOLER:
        return
    with psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=int(VIA_POOLER),
        user=os.environ.get("PGUSER", "postgres"),
        dbname="pgbouncer",
        autocommit=True,
        prepare_threshold=None,
    ) as console:
        config = {row[0]: row[1] for row in console.execute("SHOW CONFIG")}
    assert config["pool_mode"] == "transaction", config["pool_mode"]


@pytest.fixture
def db(dsn: str) -> Iterator[ad.Database]:
    """The driver on this test's database, with room for the race tests' connections."""
    if VIA_POOLER:
        pooled = dsn.replace(f"port={os.environ.get('PGPORT', '5432')}", f"port={VIA_POOLER}")
        assert pooled != dsn, "the pooler pass needs PGPORT to match the test database's port"
        database = ad.connect(pooled, min_size=1, max_size=40, prepare=False, listen_dsn=dsn)
    else:
        database = ad.connect(dsn, min_size=1, max_size=40)
    yield database
    database.close()


@pytest.fixture
def make_user(admin: psycopg.Connection[Any]) -> Callable[..., uuid.UUID]:
    """Create an auth user (as Supabase Auth's sign-up would); returns its id."""

    def make(name: str = "Test User", email: str | None = None, **meta: Any) -> uuid.UUID:
        row = admin.execute(
            "INSERT INTO auth.users (email, raw_user_meta_data)"
            " VALUES (%s, %s::jsonb || jsonb_build_object('full_name', %s::text)) RETURNING id",
            (
                email or f"{uuid.uuid4().hex[:12]}@example.test",
                psycopg.types.json.Jsonb(meta),
                name,
            ),
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    return make


@pytest.fixture
def make_mechanic(db: ad.Database, make_user: Callable[..., uuid.UUID]) -> Callable[..., uuid.UUID]:
    """Create a user and register them as a mechanic; returns the user id."""

    def make(name: str = "Test Mechanic", **kwargs: Any) -> uuid.UUID:
        uid = make_user(name)
        with db.as_service() as svc:
            svc.register_mechanic(uid, **kwargs)
        return uid

    return make


@pytest.fixture
def seed_orphan(admin: psycopg.Connection[Any]) -> Callable[..., uuid.UUID]:
    """Insert a legacy orphaned session directly, as the old intake code path did."""

    def seed(
        customer: uuid.UUID | None,
        *,
        status: str = "pending",
        session_type: str = "video",
        plan: str = "free",
        age: str = "1 hour",
        latitude: float | None = None,
        longitude: float | None = None,
    ) -> uuid.UUID:
        intake_id = None
        if latitude is not None and longitude is not None and customer is not None:
            row = admin.execute(
                "INSERT INTO autodoctor.intakes (customer_id, vehicle_make, vehicle_model,"
                " vehicle_year, concern, location) VALUES (%s, 'Ford', 'Focus', 2012,"
                " 'noise', extensions.st_makepoint(%s, %s)::extensions.geography) RETURNING id",
                (customer, longitude, latitude),
            ).fetchone()
            assert row is not None
            intake_id = row[0]
        row = admin.execute(
            "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, intake_id,"
            " created_at, metadata) VALUES (%s, %s, %s, %s, %s, now() - %s::interval,"
            " jsonb_build_object('source', 'intake'))  RETURNING id",
            (customer, plan, session_type, status, intake_id, age),
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    return seed


def pytest_report_header(config: pytest.Config) -> str:
    server = f"{os.environ.get('PGHOST', '127.0.0.1')}:{os.environ.get('PGPORT', '5432')}"
    return (
        f"databases: autodoctor_pytest_{os.getpid()}* and autodoctor_mig_* on {server}, created"
        " and dropped by this run (never $PGDATABASE: the demo's or yours stays untouched)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_orphans: the test leaves legacy orphans unrepaired on purpose"
    )
    config.addinivalue_line(
        "markers",
        "bulk_loaded: rows loaded behind the functions' backs (no events); no invariant check",
    )
    config.addinivalue_line(
        "markers",
        "direct_only: needs more simultaneous transactions than the pooler's server pool",
    )
    for kind in KINDS:
        config.addinivalue_line("markers", f"{kind}: in tests/python/{kind}/ (set by folder)")
    config.addinivalue_line(
        "markers", "pooler: runs again through pgbouncer in `make pytest`'s second pass"
    )


@pytest.fixture(autouse=True)
def invariants_hold(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used a database: autodoctor.check_invariants() is empty."""
    dsn_value = request.getfixturevalue("dsn") if "dsn" in request.fixturenames else None
    yield
    if dsn_value is None or request.node.get_closest_marker("bulk_loaded"):
        return
    allowed = (
        {"orphan_without_pending_request"}
        if request.node.get_closest_marker("allow_orphans")
        else set()
    )
    with psycopg.connect(dsn_value, autocommit=True) as conn:
        bad = [
            row
            for row in conn.execute("SELECT invariant, detail FROM autodoctor.check_invariants()")
            if row[0] not in allowed
        ]
    assert not bad, f"invariants violated: {bad}"
