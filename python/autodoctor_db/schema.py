"""The package's SQL: the sqitch project, where it is, and running sqitch on it.

The sqitch project (``sqitch.plan``, ``sqitch.conf``, ``deploy/``, ``revert/``,
``verify/``) lives at the top of the repository, where DBAs and sqitch expect it. A wheel
or sdist carries a copy inside the package (``autodoctor_db/sqitch/``), added at build time
by ``setup.py``; an editable install or a checkout uses the repository's own files.

``autodoctor-db schema ...`` (see :mod:`autodoctor_db.cli`) runs sqitch on that project
against the database a libpq DSN names, and ``schema sql`` prints what a deploy (or the
upgrade from a release tag) runs, as plain SQL for psql or another migration tool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg.conninfo

KINDS = ("deploy", "revert", "verify")
_CHANGE = re.compile(r"^(?P<name>[^\s@%#][^\s]*)\s")
_TAG = re.compile(r"^@(?P<tag>\S+)\s")

#: libpq connection parameters and the environment variables sqitch's psql and DBD::Pg
#: read them from (sqitch is given the target ``db:pg:`` and the environment).
_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "service": "PGSERVICE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
}


class SchemaError(Exception):
    """An expected failure of a schema command: one line for the user, with a hint."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def project_dir() -> Path:
    """The sqitch project: the copy inside the installed package, else the checkout's."""
    packaged = Path(str(resources.files("autodoctor_db"))) / "sqitch"
    if (packaged / "sqitch.plan").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "sqitch.plan").is_file():
        return checkout
    raise SchemaError(
        "this installation of autodoctor-db carries no SQL (no sqitch.plan found)",
        "Reinstall it from a wheel or sdist built by `pip wheel .`, or run it from a checkout.",
    )


def in_checkout() -> bool:
    """Whether the package runs from a source checkout (then `make` targets exist)."""
    try:
        root = project_dir()
    except SchemaError:
        return False
    return (root / "Makefile").is_file()


@dataclass(frozen=True)
class Instance:
    """One line of the plan that deploys a change; ``tag`` is the first tag after it."""

    name: str
    tag: str | None
    reworked_later: bool

    def path(self, kind: str) -> str:
        """The file sqitch uses for this instance's deploy, revert or verify script."""
        if self.reworked_later and self.tag is not None:
            return f"{kind}/{self.name}@{self.tag}.sql"
        return f"{kind}/{self.name}.sql"


def plan(root: Path | None = None) -> tuple[list[Instance], list[str]]:
    """Every change instance of sqitch.plan in order, and the tags in order."""
    root = root or project_dir()
    entries: list[tuple[str, str]] = []
    for line in (root / "sqitch.plan").read_text().splitlines():
        if m := _TAG.match(line):
            entries.append(("tag", m["tag"]))
        elif m := _CHANGE.match(line):
            entries.append(("change", m["name"]))
    tags = [value for kind, value in entries if kind == "tag"]
    instances = []
    for i, (kind, name) in enumerate(entries):
        if kind != "change":
            continue
        later = entries[i + 1 :]
        tag = next((value for k, value in later if k == "tag"), None)
        reworked = any(k == "change" and value == name for k, value in later)
        instances.append(Instance(name, tag, reworked))
    return instances, tags


def deploy_sql(since: str | None = None, root: Path | None = None) -> str:
    """The deploy scripts, in plan order, as one psql script.

    ``since``: a release tag; only the changes after it (the upgrade from that release).
    Each script runs in its own transaction, as under sqitch; nothing is recorded in a
    sqitch registry, so a database set up this way is upgraded the same way (``--from``).
    """
    root = root or project_dir()
    instances, tags = plan(root)
    if since is not None:
        if since not in tags:
            known = ", ".join(tags) or "none"
            raise SchemaError(f"no release tag {since!r} in the plan (tags: {known})")
        cut = tags.index(since)
        instances = [i for i in instances if i.tag is None or tags.index(i.tag) > cut]
    version = tags[-1] if tags else "unreleased"
    parts = [
        f"-- autodoctor-db: {'upgrade from @' + since if since else 'deploy'}"
        f" ({len(instances)} changes; plan at @{version} or later)\n"
        "-- Generated by `autodoctor-db schema sql`: run it with psql -v ON_ERROR_STOP=1.\n"
    ]
    for inst in instances:
        path = inst.path("deploy")
        parts.append(f"\n-- change {inst.name} ({path})\n")
        parts.append((root / path).read_text())
    return "".join(parts)


def environment(dsn: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment naming ``dsn``'s database to sqitch (libpq ``PG*`` variables)."""
    env = dict(os.environ if base is None else base)
    if not dsn:
        return env
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SchemaError(f"invalid connection string: {exc}", exit_code=3) from exc
    for key, value in params.items():
        if value is None:
            continue
        var = _ENV.get(key)
        if var is None:
            raise SchemaError(f"connection parameter {key!r} cannot be passed to sqitch")
        env[var] = str(value)
    return env


def sqitch_argv(command: str, *args: str) -> list[str]:
    """``sqitch COMMAND ... db:pg:`` on the package's project, or SchemaError."""
    exe = shutil.which("sqitch")
    if exe is None:
        raise SchemaError(
            "sqitch is not installed (it runs the package's migrations)",
            "Install it: Debian/Ubuntu `apt-get install sqitch libdbd-pg-perl postgresql-client`,"
            " macOS `brew install sqitch --with-postgres-support`, or the sqitch/sqitch Docker"
            " image; or apply `autodoctor-db schema sql` with psql.",
            exit_code=6,
        )
    return [exe, "--chdir", str(project_dir()), command, *args, "db:pg:"]


def run_sqitch(
    command: str, *args: str, dsn: str = "", extra_env: Mapping[str, str] | None = None
) -> int:
    """Run sqitch in the foreground (its output is the user's); its exit status."""
    env = environment(dsn)
    env.update(extra_env or {})
    return subprocess.run(sqitch_argv(command, *args), env=env, check=False).returncode


def run_plan() -> int:
    """``sqitch plan`` of the package's project (no database needed); its exit status."""
    argv = sqitch_argv("plan", "--no-pager")[:-1]  # plan takes no target
    return subprocess.run(argv, check=False).returncode
