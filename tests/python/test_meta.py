"""Meta-tests: the SQL, the driver and the docs stay in step.

Everything is discovered from the files, never from a list kept here, so a function or a
reason added to ``deploy/`` without its driver method, exception mapping or docs row makes
one of these tests fail. No database is needed: ``deploy/*.sql`` is parsed as text.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import autodoctor_db
import psycopg.errors
import pytest
from autodoctor_db import errors

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ERRORS_MD = ROOT / "docs" / "errors.md"
FUNCTIONS_MD = ROOT / "docs" / "functions.md"

#: SQLSTATE (or class prefix) -> the driver base class its reasons must map to, and the
#: HTTP status PostgREST answers with (docs/design.md, "Errors").
CONTRACT: dict[str, tuple[type[errors.AutodoctorError], str]] = {
    "42501": (errors.Forbidden, "403"),
    "PT404": (errors.NotFound, "404"),
    "PT409": (errors.Conflict, "409"),
    "PT429": (errors.TooManyRequests, "429"),
    "22": (errors.InvalidInput, "400"),
}

# --- parsing deploy/*.sql ------------------------------------------------------------------

_CREATE_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?P<schema>\w+)\.(?P<name>\w+)\s*\(", re.I
)
_CREATE_VIEW = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+autodoctor\.(?P<name>\w+)", re.I
)
_BODY_START = re.compile(r"\bAS\s+(?P<tag>\$\w*\$)", re.I)
_RAISE_EXCEPTION = re.compile(r"\bRAISE\s+EXCEPTION\b", re.I)
_OPTION = re.compile(r"\b(?P<key>ERRCODE|DETAIL)\s*=\s*(?P<value>'(?:[^']|'')*'|[^,;]+)", re.I)
_REASON = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


@dataclass(frozen=True)
class Raise:
    """One ``RAISE EXCEPTION`` statement in deploy/."""

    file: str
    line: int
    function: str | None  # schema-qualified name of the enclosing function, if any
    errcode: str | None  # the SQLSTATE, with condition names resolved
    detail: str | None  # the DETAIL when it is a string literal, else None
    detail_given: bool  # whether the statement has a DETAIL at all

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" + (f" ({self.function})" if self.function else "")


def _strip_comments(sql: str) -> str:
    """The SQL with ``--`` comments blanked out (string literals and offsets kept)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and j + 1 < n and sql[j + 1] == "'":
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _statement_end(sql: str, start: int) -> int:
    """Offset of the ``;`` ending the statement that begins at ``start`` (quotes skipped)."""
    i, n = start, len(sql)
    in_string = False
    while i < n:
        c = sql[i]
        if in_string:
            if c == "'" and sql.startswith("''", i):
                i += 2
                continue
            if c == "'":
                in_string = False
        elif c == "'":
            in_string = True
        elif c == ";":
            return i
        i += 1
    return n


def _function_bodies(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, schema.name) of every dollar-quoted function body in a script."""
    bodies = []
    for match in _CREATE_FUNCTION.finditer(sql):
        body = _BODY_START.search(sql, match.end())
        if body is None:
            continue
        tag = body.group("tag")
        end = sql.find(tag, body.end())
        bodies.append(
            (body.end(), end if end >= 0 else len(sql), f"{match['schema']}.{match['name']}")
        )
    return bodies


def _sqlstate(errcode: str) -> str:
    """A SQLSTATE from an ERRCODE option: a code as is, a condition name looked up."""
    if re.fullmatch(r"[0-9A-Z]{5}", errcode):
        return errcode
    return psycopg.errors.lookup(errcode.upper()).sqlstate or errcode


def _literal(value: str) -> str | None:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return None


@cache
def deploy_scripts() -> dict[str, str]:
    """Every deploy script, comments stripped, by file name."""
    return {p.name: _strip_comments(p.read_text()) for p in sorted(DEPLOY.glob("*.sql"))}


#: Functions only sqitch's revert scripts call, never an API caller: their refusal
#: (55000 data_loss, docs/design.md "Revert never destroys data by accident") is a DBA's
#: message, outside the API's error contract.
REVERT_TOOLING = frozenset({"autodoctor._guard_data_loss"})


@cache
def raises() -> tuple[Raise, ...]:
    """Every ``RAISE EXCEPTION`` in deploy/*.sql."""
    found = []
    for name, sql in deploy_scripts().items():
        bodies = _function_bodies(sql)
        for match in _RAISE_EXCEPTION.finditer(sql):
            statement = sql[match.start() : _statement_end(sql, match.start())]
            options: dict[str, str] = {}
            for opt in _OPTION.finditer(statement):
                options.setdefault(opt["key"].upper(), opt["value"])
            errcode = _literal(options["ERRCODE"]) if "ERRCODE" in options else None
            function = next((f for s, e, f in bodies if s <= match.start() < e), None)
            found.append(
                Raise(
                    file=name,
                    line=sql.count("\n", 0, match.start()) + 1,
                    function=function,
                    errcode=_sqlstate(errcode) if errcode else None,
                    detail=_literal(options["DETAIL"]) if "DETAIL" in options else None,
                    detail_given="DETAIL" in options,
                )
            )
    return tuple(found)


@cache
def reasons() -> dict[str, frozenset[str]]:
    """reason -> the SQLSTATEs it is raised with, over deploy/*.sql."""
    by_reason: dict[str, set[str]] = {}
    for r in raises():
        if r.detail is not None and r.function not in REVERT_TOOLING:
            by_reason.setdefault(r.detail, set()).add(r.errcode or "P0001")
    return {k: frozenset(v) for k, v in sorted(by_reason.items())}


@cache
def public_functions() -> tuple[str, ...]:
    """Functions of schema autodoctor without a leading underscore."""
    names = {
        m["name"]
        for sql in deploy_scripts().values()
        for m in _CREATE_FUNCTION.finditer(sql)
        if m["schema"].lower() == "autodoctor" and not m["name"].startswith("_")
    }
    return tuple(sorted(names))


@cache
def public_views() -> tuple[str, ...]:
    """Views of schema autodoctor."""
    names = {m["name"] for sql in deploy_scripts().values() for m in _CREATE_VIEW.finditer(sql)}
    return tuple(sorted(names))


def _contract(sqlstate: str) -> tuple[type[errors.AutodoctorError], str] | None:
    if sqlstate in CONTRACT:
        return CONTRACT[sqlstate]
    if sqlstate.startswith("22"):
        return CONTRACT["22"]
    return None


# --- parsing docs ----------------------------------------------------------------------------


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of every markdown table row (header and separator rows included)."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@cache
def errors_md_rows() -> dict[str, list[str]]:
    """reason -> its row in docs/errors.md (the rows whose second cell is `a_reason`)."""
    assert ERRORS_MD.exists(), "docs/errors.md is missing"
    rows: dict[str, list[str]] = {}
    for cells in _table_rows(ERRORS_MD.read_text()):
        if len(cells) >= 2:
            token = re.fullmatch(r"`([a-z0-9_]+)`", cells[1])
            if token and _REASON.fullmatch(token[1]):
                rows[token[1]] = cells
    return rows


@cache
def functions_md_sections() -> frozenset[str]:
    """The names of the ``##``/``###`` sections of docs/functions.md (backticks dropped)."""
    assert FUNCTIONS_MD.exists(), "docs/functions.md is missing"
    heads = re.findall(r"^#{2,4}\s+`?([\w.]+)`?\s*$", FUNCTIONS_MD.read_text(), re.M)
    return frozenset(h.split(".")[-1] for h in heads)


def _reason_params() -> list[tuple[str, str]]:
    """(reason, SQLSTATE) for every pair raised in deploy/."""
    return [
        (reason, sqlstate)
        for reason, sqlstates in reasons().items()
        for sqlstate in sorted(sqlstates)
    ]


def _reason_ids() -> list[str]:
    return [f"{sqlstate}-{reason}" for reason, sqlstate in _reason_params()]


# --- the parser itself: a broken parser must not make every test vacuous ------------------


def test_parser_discovers_functions_views_and_reasons() -> None:
    assert "accept_session_request" in public_functions()
    assert "incoming_requests" in public_views()
    assert ("PT409" in reasons()["request_not_pending"]) and len(reasons()) >= 10
    accept = [r for r in raises() if r.function == "autodoctor.accept_session_request"]
    assert accept and all(r.errcode for r in accept)


# --- deploy/ against the contract ------------------------------------------------------------


@pytest.mark.parametrize("raise_", raises(), ids=lambda r: r.where)
def test_raise_never_uses_a_code_postgrest_turns_into_500_or_retries(raise_: Raise) -> None:
    # No ERRCODE means P0001, which PostgREST answers with a generic 400 and no contract.
    assert raise_.errcode is not None, f"{raise_.where}: RAISE EXCEPTION without ERRCODE"
    assert raise_.errcode[:2] not in ("P0", "XX", "40"), (
        f"{raise_.where}: ERRCODE {raise_.errcode} (P0…/XX…: HTTP 500; 40…: retried)"
    )


@pytest.mark.parametrize(
    "raise_",
    [r for r in raises() if r.function is not None and r.function not in REVERT_TOOLING],
    ids=lambda r: r.where,
)
def test_function_errors_use_a_contract_sqlstate_and_a_literal_reason(raise_: Raise) -> None:
    assert raise_.errcode is not None and _contract(raise_.errcode) is not None, (
        f"{raise_.where}: ERRCODE {raise_.errcode} is not 42501, PT404, PT409, PT429 or class 22"
    )
    assert raise_.detail_given, f"{raise_.where}: no DETAIL (the machine-readable reason)"
    assert raise_.detail is not None and _REASON.fullmatch(raise_.detail), (
        f"{raise_.where}: DETAIL must be a literal snake_case reason, got {raise_.detail!r}"
    )


@pytest.mark.parametrize("reason", list(reasons()))
def test_reason_is_raised_with_one_sqlstate(reason: str) -> None:
    assert len(reasons()[reason]) == 1, f"{reason} is raised as {sorted(reasons()[reason])}"


# --- deploy/ against the driver --------------------------------------------------------------


@pytest.mark.parametrize(("reason", "sqlstate"), _reason_params(), ids=_reason_ids())
def test_reason_maps_to_a_driver_class_of_its_sqlstate(reason: str, sqlstate: str) -> None:
    contract = _contract(sqlstate)
    assert contract is not None, f"{reason}: SQLSTATE {sqlstate} is outside the contract"
    base, _ = contract
    cls = errors.error_class(sqlstate, reason)
    assert issubclass(cls, base), f"({sqlstate}, {reason}) -> {cls.__name__}, not a {base.__name__}"


#: Switches for the role that deployed the package, which no API role may execute: the
#: driver, acting as those roles, has no method for them (docs/functions.md documents them).
OWNER_ONLY = frozenset({"enable_realtime", "disable_realtime"})


@pytest.mark.parametrize("name", [f for f in public_functions() if f not in OWNER_ONLY])
def test_public_function_has_a_caller_method(name: str) -> None:
    method = getattr(autodoctor_db.Caller, name, None)
    assert callable(method), f"autodoctor.{name} has no method autodoctor_db.Caller.{name}"


def _caller_methods() -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(autodoctor_db.Caller, inspect.isfunction)
        if not name.startswith("_")
    ]


@pytest.mark.parametrize("name", _caller_methods())
def test_caller_method_is_wrapped_by_the_error_mapper(name: str) -> None:
    method = getattr(autodoctor_db.Caller, name)
    assert getattr(method, "__maps_errors__", False) is True, (
        f"Caller.{name} is not decorated with @maps_errors"
    )


# --- deploy/ and the driver against the docs --------------------------------------------------


@pytest.mark.parametrize(("reason", "sqlstate"), _reason_params(), ids=_reason_ids())
def test_reason_has_a_row_in_errors_md(reason: str, sqlstate: str) -> None:
    row = errors_md_rows().get(reason)
    assert row is not None, f"docs/errors.md has no row for reason `{reason}`"
    assert f"`{sqlstate}`" in row[0], (
        f"docs/errors.md: `{reason}` row says {row[0]}, not {sqlstate}"
    )
    contract = _contract(sqlstate)
    if contract is not None:
        assert contract[1] in " ".join(row), (
            f"docs/errors.md: `{reason}` row lacks HTTP {contract[1]}"
        )
    cls = errors.error_class(sqlstate, reason)
    assert f"`{cls.__name__}`" in " ".join(row), (
        f"docs/errors.md: `{reason}` row should name the driver class `{cls.__name__}`"
    )


def test_errors_md_documents_no_reason_that_is_never_raised() -> None:
    stale = sorted(set(errors_md_rows()) - set(reasons()))
    assert not stale, f"docs/errors.md documents reasons no deploy script raises: {stale}"


@pytest.mark.parametrize("name", public_functions() + public_views())
def test_public_function_or_view_has_a_section_in_functions_md(name: str) -> None:
    assert name in functions_md_sections(), f"docs/functions.md has no section for {name}"
