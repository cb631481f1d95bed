"""The package as people install it: an sdist and a wheel built from it, installed into a
fresh virtualenv outside the checkout, deploying and running a database on its own.

Builds with `python -m build` (the sdist, then the wheel from the sdist, so both must
carry the SQL), installs the wheel with pip into a new venv in a temporary directory, and
runs everything from a directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[3]
SQL_FILES = ("sqitch.plan", "sqitch.conf", "deploy/accept_session_request.sql", "releases/")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel installed; its bin directory."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    [wheel] = dist.glob("*.whl")
    proc = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return bin_dir


@pytest.fixture
def fresh_db(admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A new, empty database of its own (nothing deployed); its DSN (as the admin)."""
    name = f"autodoctor_wheel_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    info = admin.info
    yield f"host={info.host} port={info.port} user={info.user} dbname={name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def outside(bin_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a program of the venv from a directory outside the checkout."""
    base = {k: v for k, v in os.environ.items() if k not in ("AUTODOCTOR_DSN", "DATABASE_URL")}
    base["PATH"] = f"{bin_dir}{os.pathsep}{base.get('PATH', '')}"
    base.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(bin_dir / argv[0]), *argv[1:]],
        cwd=bin_dir.parent.parent,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sdist_and_wheel_carry_the_sql(dist: Path) -> None:
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for f in SQL_FILES:
        assert any(n.split("/", 1)[1].startswith(f) for n in names if "/" in n), f
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        inside = zf.namelist()
    for f in SQL_FILES:
        assert any(n.startswith(f"autodoctor_db/sqitch/{f}") for n in inside), f
    # One source in git: no copy of the SQL under python/.
    assert not (ROOT / "python" / "autodoctor_db" / "sqitch").exists()


def test_a_wheel_user_deploys_verifies_and_runs_the_package(
    installed: Path, fresh_db: str, admin: psycopg.Connection[Any], request: Any
) -> None:
    version = outside(installed, "autodoctor-db", "--version")
    assert version.returncode == 0 and version.stdout.startswith("autodoctor-db 0."), version
    deploy = outside(installed, "autodoctor-db", "schema", "deploy", "--dsn", fresh_db)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "notify_relay" in deploy.stdout
    assert (
        str(installed.parent)
        in outside(
            installed, "python", "-c", "import autodoctor_db.schema as s; print(s.project_dir())"
        ).stdout
    ), "the installed package must read its own copy of the SQL"
    verify = outside(installed, "autodoctor-db", "schema", "verify", "--dsn", fresh_db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The installed driver: users sign up, a mechanic registers, a request is created and
    # accepted, through the API only.
    script = """
import sys, psycopg, autodoctor_db as ad
dsn = sys.argv[1]
with psycopg.connect(dsn, autocommit=True) as conn:
    ids = [conn.execute("INSERT INTO auth.users (email) VALUES (%s) RETURNING id",
                        (f"wheel{i}@example.test",)).fetchone()[0] for i in range(2)]
db = ad.connect(dsn)
with db.as_service() as s:
    s.register_mechanic(ids[1])
with db.as_user(ids[0]) as c:
    req = c.create_session_request("chat", "free")
with db.as_user(ids[1]) as m:
    session = m.accept_session_request(req.id)
print(session.status.value)
db.close()
"""
    flow = outside(installed, "python", "-c", script, fresh_db)
    assert flow.returncode == 0, flow.stderr
    assert flow.stdout.strip() == "waiting"
    # Status as the NOINHERIT authenticator the README recommends.
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'authenticator'").fetchone():
        login = fresh_db.replace(f"user={admin.info.user}", "user=authenticator")
        status = outside(installed, "autodoctor-db", "status", "--json", "--dsn", login)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["waiting_sessions"] == 1
    # An expected failure from the wheel: one line and a hint for a wheel user (no make).
    missing = outside(installed, "autodoctor-db", "status", "--dsn", admin_dsn(admin, "postgres"))
    assert missing.returncode == 4 and "Traceback" not in missing.stderr
    assert "autodoctor-db schema deploy" in missing.stderr and "make" not in missing.stderr


def admin_dsn(admin: psycopg.Connection[Any], dbname: str) -> str:
    info = admin.info
    return f"host={info.host} port={info.port} user={info.user} dbname={dbname}"
