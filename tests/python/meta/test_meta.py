"""Meta-tests: the SQL, the driver and the docs stay in step.

Everything is discovered from the files, never from a list kept here, so a function or a
reason added to ``deploy/`` without its driver method, exception mapping or docs row makes
one of these tests fail. No database is needed: ``deploy/*.sql`` is parsed as text.

What each public function can raise is derived from the bodies deployed at HEAD (its own
RAISEs, the helpers it calls, the triggers on the tables it writes), and the README's API
table, docs/functions.md's **Errors:** lines and docs/errors.md's "raised by" column must
list exactly that. The one hand-kept list, ``UNREACHABLE``, names the paths the graph
over-approximates, each with why; an entry the graph no longer reaches fails.
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

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
ERRORS_MD = ROOT / "docs" / "errors.md"
FUNCTIONS_MD = ROOT / "docs" / "functions.md"

README = ROOT / "README.md"
PLAN = ROOT / "sqitch.plan"

# SQLSTATE (or class prefix) -> the driver base class its reasons must map to, and the
# HTTP status PostgREST answers with: the driver's table, errors.CONTRACT_SQLSTATES.

# --- parsing deploy/*.sql ------------------------------------------------------------------

_CREATE_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?P<schema>\w+)\.(?P<name>\w+)\s*\(", re.I
)
_CREATE_VIEW = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+autodoctor\.(?P<name>\w+)", re.I
)
_BODY_START = re.compile(r"\bAS\s+(?P<tag>\$\w*\$)", re.I)
_ATOMIC_START = re.compile(r"\bBEGIN\s+ATOMIC\b", re.I)
_ATOMIC_END = re.compile(r"\bEND\s*;", re.I)
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
    """(start, end, schema.name) of every function body in a script: dollar-quoted, or a
    SQL-standard ``BEGIN ATOMIC ... END;`` (each looked for before the next CREATE FUNCTION,
    so that a body is never attributed to the function defined before it)."""
    bodies = []
    creates = list(_CREATE_FUNCTION.finditer(sql))
    for i, match in enumerate(creates):
        limit = creates[i + 1].start() if i + 1 < len(creates) else len(sql)
        name = f"{match['schema']}.{match['name']}"
        body = _BODY_START.search(sql, match.end(), limit)
        atomic = _ATOMIC_START.search(sql, match.end(), limit)
        if body is not None and (atomic is None or body.start() < atomic.start()):
            end = sql.find(body.group("tag"), body.end())
            bodies.append((body.end(), end if end >= 0 else len(sql), name))
        elif atomic is not None:
            end_match = _ATOMIC_END.search(sql, atomic.end(), limit)
            bodies.append((atomic.end(), end_match.start() if end_match else limit, name))
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
    """(driver base class, HTTP status) from the driver's one table, or None."""
    contract = errors.contract_of(sqlstate)
    return None if contract is None else (contract[0], str(contract[1]))


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


# --- what each public function can raise: the call graph of the deployed bodies -------------
#
# A function can raise what its own body raises, what every autodoctor function it calls
# can raise (private helpers, and the public steps run_maintenance runs), and what the
# triggers on the tables it writes can raise. The bodies are those deployed at HEAD: the
# deploy scripts in sqitch.plan's order, a later definition replacing an earlier one.

_TRIGGER = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+\w+\s+"
    r"(?:BEFORE|AFTER|INSTEAD\s+OF)\s+(?P<events>.*?)\s+ON\s+(?P<table>[\w.]+)\s"
    r".*?EXECUTE\s+(?:FUNCTION|PROCEDURE)\s+(?P<function>[\w.]+)\s*\(",
    re.I | re.S,
)
_CALL = re.compile(r"\b(autodoctor\.\w+)\s*\(", re.I)
_WRITE = re.compile(
    r"\b(?P<op>INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?P<table>(?:autodoctor|auth)\.\w+)", re.I
)


@cache
def deployed_scripts() -> tuple[str, ...]:
    """The deploy scripts of sqitch.plan in deploy order, each change at its version there:
    ``NAME.sql`` where the change appears for the last time, ``NAME@TAG.sql`` (TAG the
    first tag after it) where a later rework replaced it."""
    entries: list[tuple[str, str]] = []  # ("change" | "tag", name)
    for line in PLAN.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "%#":
            continue
        token = line.split()[0]
        entries.append(("tag", token[1:]) if token.startswith("@") else ("change", token))
    scripts = []
    for i, (kind, name) in enumerate(entries):
        if kind != "change":
            continue
        if ("change", name) not in entries[i + 1 :]:
            scripts.append(f"{name}.sql")
        else:
            tag = next(n for k, n in entries[i + 1 :] if k == "tag")
            scripts.append(f"{name}@{tag}.sql")
    return tuple(scripts)


@cache
def deployed_functions() -> dict[str, str]:
    """schema.name -> the body deployed at HEAD (lower case names, comments stripped)."""
    bodies: dict[str, str] = {}
    for script in deployed_scripts():
        sql = deploy_scripts()[script]
        for start, end, name in _function_bodies(sql):
            bodies[name.lower()] = sql[start:end]
    return bodies


@cache
def triggers() -> dict[str, tuple[tuple[frozenset[str], str], ...]]:
    """table -> (the write operations that fire it, trigger function) per trigger."""
    found: dict[str, list[tuple[frozenset[str], str]]] = {}
    for script in deployed_scripts():
        for m in _TRIGGER.finditer(deploy_scripts()[script]):
            ops = frozenset(
                op.split()[0].upper() for op in re.split(r"\s+OR\s+", m["events"], flags=re.I)
            )
            found.setdefault(m["table"].lower(), []).append((ops, m["function"].lower()))
    return {table: tuple(t) for table, t in found.items()}


def _own_reasons(body: str) -> frozenset[str]:
    """The literal DETAIL reasons of the RAISE EXCEPTIONs in one body."""
    found = set()
    for match in _RAISE_EXCEPTION.finditer(body):
        statement = body[match.start() : _statement_end(body, match.start())]
        for opt in _OPTION.finditer(statement):
            if opt["key"].upper() == "DETAIL" and (reason := _literal(opt["value"])):
                found.add(reason)
    return frozenset(found)


@cache
def callees(function: str) -> frozenset[str]:
    """The functions ``function`` runs: those it calls and the triggers its writes fire."""
    body = deployed_functions()[function]
    found = {c.lower() for c in _CALL.findall(body) if c.lower() in deployed_functions()}
    for write in _WRITE.finditer(body):
        op = write["op"].split()[0].upper()
        for ops, trigger in triggers().get(write["table"].lower(), ()):
            if op in ops and trigger in deployed_functions():
                found.add(trigger)
    found.discard(function)
    return frozenset(found)


@cache
def reachable_reasons(function: str) -> frozenset[str]:
    """Every reason ``function`` (schema.name) raises itself or through what it runs."""
    seen, todo, found = {function}, [function], set()
    while todo:
        current = todo.pop()
        found |= _own_reasons(deployed_functions()[current])
        for callee in callees(current) - seen:
            seen.add(callee)
            todo.append(callee)
    return frozenset(found)


_SESSION_WRITERS = (
    "accept_session_request",
    "auto_assign_orphaned_sessions",
    "cancel_orphaned_sessions",
    "cancel_session_request",
    "claim_orphaned_session",
    "convert_orphaned_sessions",
    "expire_stale_requests",
    "run_maintenance",
)

#: (function, reason) pairs the call graph reaches but the function cannot raise, and why:
#: a trigger guard (kept for direct table writes) its own checks never let it trip, or a
#: step called with arguments that step never refuses. A pair the graph no longer reaches
#: fails test_unreachable_reason_is_still_reached, so the list cannot go stale.
UNREACHABLE: dict[tuple[str, str], str] = {
    **{
        (f, "invalid_transition"): "moves sessions only along the state machine"
        for f in _SESSION_WRITERS
    },
    **{
        (f, "mechanic_required"): "a session enters scheduled, waiting or live only with its "
        "mechanic set in the same UPDATE"
        for f in (*_SESSION_WRITERS, "transition_session")
    },
    **{
        (f, "capacity_reached"): "only ends sessions (cancelled): a mechanic's load only falls"
        for f in (
            "cancel_orphaned_sessions",
            "cancel_session_request",
            "convert_orphaned_sessions",
            "expire_stale_requests",
        )
    },
    ("transition_session", "capacity_reached"): "a session with a mechanic is never pending: "
    "moves between scheduled, waiting and live keep the load, completed and cancelled lower it",
    ("auto_assign_orphaned_sessions", "capacity_reached"): "it locks the mechanics and reads "
    "their room before assigning, so the assignments fit",
    ("run_maintenance", "capacity_reached"): "its steps cannot raise it (see above)",
    ("run_maintenance", "invalid_batch_size"): "calls auto_assign_orphaned_sessions(1000)",
    ("run_maintenance", "invalid_interval"): "calls cancel_orphaned_sessions(interval '1 day')",
}


@cache
def function_reasons(name: str) -> dict[str, str]:
    """reason -> SQLSTATE for every reason the public function ``name`` can raise."""
    reached = reachable_reasons(f"autodoctor.{name}")
    return {
        reason: min(reasons()[reason])
        for reason in sorted(reached)
        if (name, reason) not in UNREACHABLE and reason in reasons()
    }


_SQLSTATE_ORDER = ("42501", "PT404", "PT409", "PT429")


def _by_sqlstate(pairs: dict[str, str]) -> list[tuple[str, list[str]]]:
    """[(SQLSTATE, [reasons])], the contract's order, class 22 last."""
    grouped: dict[str, list[str]] = {}
    for reason, sqlstate in pairs.items():
        grouped.setdefault(sqlstate, []).append(reason)
    order = {s: i for i, s in enumerate(_SQLSTATE_ORDER)}
    return sorted(grouped.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def expected_readme_errors(name: str) -> str:
    """The README API table's errors cell for ``name``, as this test wants it."""
    groups = _by_sqlstate(function_reasons(name))
    return " · ".join(f"{s} {', '.join(rs)}" for s, rs in groups) or "—"


def expected_functions_md_errors(name: str) -> str:
    """A docs/functions.md ``**Errors:**`` line for ``name`` that this test accepts."""
    groups = _by_sqlstate(function_reasons(name))
    listed = "; ".join(
        f"`{s}` [{', '.join(f'`{r}`' for r in rs)}](errors.md#reasons)" for s, rs in groups
    )
    return f"**Errors:** {listed or 'none'}."


def test_deployed_scripts_follow_the_plan() -> None:
    scripts = deployed_scripts()
    assert scripts[0] == "auth_shim.sql" and all((DEPLOY / s).exists() for s in scripts)
    # A released change that was reworked runs at its tag's version first, then the rework.
    assert scripts.index("accept_session_request@v0.1.0.sql") < scripts.index(
        "accept_session_request.sql"
    )
    assert "_caller" in deployed_functions()["autodoctor.accept_session_request"]


def test_call_graph_reaches_helpers_and_triggers() -> None:
    # Through a private helper (_caller), and through a trigger on a written table.
    assert {"not_authenticated", "capacity_reached"} <= reachable_reasons(
        "autodoctor.accept_session_request"
    )
    assert "invalid_coordinates" in reachable_reasons("autodoctor.register_mechanic")
    # append_only fires on UPDATE or DELETE of the log, which no function does.
    assert "append_only" not in reachable_reasons("autodoctor.create_session_request")


@pytest.mark.parametrize(("name", "reason"), sorted(UNREACHABLE))
def test_unreachable_reason_is_still_reached(name: str, reason: str) -> None:
    function = f"autodoctor.{name}"
    assert reason in reachable_reasons(function), (
        f"UNREACHABLE lists ({name}, {reason}), which the call graph no longer reaches: drop it"
    )
    assert reason not in _own_reasons(deployed_functions()[function]), (
        f"{name} raises {reason} itself: it cannot be unreachable"
    )


# --- the README's API table and docs/functions.md's Errors lines, against the call graph ----

_README_API_SECTION = "## The SQL API (schema `autodoctor`)"


@cache
def readme_api_rows() -> dict[str, list[str]]:
    """function -> its row (cells) in the README's API table."""
    text = README.read_text()
    assert _README_API_SECTION in text, f"README.md has no section {_README_API_SECTION!r}"
    section = text.split(_README_API_SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for cells in _table_rows(section):
        names = re.findall(r"`(\w+)\(", cells[0])
        assert len(names) <= 1, f"README.md API table: one function per row, got {cells[0]}"
        if names:
            assert names[0] not in rows, f"README.md API table: two rows for {names[0]}"
            rows[names[0]] = cells
    return rows


def _parse_readme_errors(cell: str) -> dict[str, str]:
    """reason -> SQLSTATE from an errors cell such as ``42501 a, b · PT404 c`` (or ``—``)."""
    if cell.strip() in ("—", "-", ""):
        return {}
    found: dict[str, str] = {}
    for part in cell.split("·"):
        match = re.fullmatch(r"\s*([0-9A-Z]{5})\s+(.+?)\s*", part)
        assert match, f"README.md API table: cannot read {part.strip()!r} as 'SQLSTATE reasons'"
        for reason in match[2].split(","):
            assert _REASON.fullmatch(reason.strip()), f"README.md: {reason.strip()!r} in {cell!r}"
            found[reason.strip()] = match[1]
    return found


@cache
def functions_md_errors() -> dict[str, str]:
    """section name -> the text of its ``**Errors:**`` paragraph in docs/functions.md."""
    found: dict[str, str] = {}
    for section in re.split(r"^(?=#{1,3} )", FUNCTIONS_MD.read_text(), flags=re.M):
        head = re.match(r"#{1,3}\s+`?([\w.]+)`?\s*\n", section)
        errors_at = section.find("**Errors:**")
        if head and errors_at >= 0:
            found[head[1].split(".")[-1]] = section[errors_at:].split("\n\n", 1)[0]
    return found


def _parse_functions_md_errors(paragraph: str) -> dict[str, str]:
    """reason -> the SQLSTATE named last before it, over the backticked tokens; backticked
    tokens that are no reason (a function name, a condition) are skipped."""
    found: dict[str, str] = {}
    sqlstate = None
    for token in re.findall(r"`([^`]+)`", paragraph):
        if re.fullmatch(r"[0-9A-Z]{5}", token):
            sqlstate = token
        elif token in reasons():
            assert sqlstate is not None, f"docs/functions.md: `{token}` before any SQLSTATE"
            found[token] = sqlstate
    return found


def _diff(documented: dict[str, str], expected: dict[str, str]) -> str:
    missing = sorted(f"{expected[r]} {r}" for r in set(expected) - set(documented))
    extra = sorted(f"{documented[r]} {r}" for r in set(documented) - set(expected))
    wrong = sorted(
        f"{r}: {documented[r]}, not {expected[r]}"
        for r in set(documented) & set(expected)
        if documented[r] != expected[r]
    )
    return f"missing {missing}, never raised {extra}, wrong SQLSTATE {wrong}"


@pytest.mark.parametrize("name", [f for f in public_functions() if f not in OWNER_ONLY])
def test_readme_api_table_lists_exactly_what_the_function_raises(name: str) -> None:
    row = readme_api_rows().get(name)
    expected = expected_readme_errors(name)
    assert row is not None, (
        f"README.md's API table has no row for {name}; its errors cell: {expected}"
    )
    documented = _parse_readme_errors(row[-1])
    assert documented == function_reasons(name), (
        f"README.md API table, {name}: {_diff(documented, function_reasons(name))}.\n"
        f"Its errors cell should read: {expected}"
    )


def test_readme_api_table_has_no_row_for_a_function_that_is_not_deployed() -> None:
    stale = sorted(set(readme_api_rows()) - set(public_functions()))
    assert not stale, f"README.md's API table lists functions no deploy script creates: {stale}"


@pytest.mark.parametrize("name", public_functions())
def test_functions_md_errors_line_lists_exactly_what_the_function_raises(name: str) -> None:
    expected = expected_functions_md_errors(name)
    paragraph = functions_md_errors().get(name)
    assert paragraph is not None, (
        f"docs/functions.md, section {name}: no **Errors:** paragraph; for example\n{expected}"
    )
    documented = _parse_functions_md_errors(paragraph)
    assert documented == function_reasons(name), (
        f"docs/functions.md, {name}: {_diff(documented, function_reasons(name))}.\n"
        f"For example: {expected}"
    )


@pytest.mark.parametrize("reason", list(reasons()))
def test_errors_md_raised_by_names_exactly_the_functions_that_raise_it(reason: str) -> None:
    row = errors_md_rows().get(reason)
    if row is None or len(row) < 4:
        pytest.skip("no row: test_reason_has_a_row_in_errors_md fails for it")
    named = {n for n in re.findall(r"`(\w+)`", row[3]) if n in public_functions()}
    raising = {f for f in public_functions() if reason in function_reasons(f)}
    assert named == raising, (
        f"docs/errors.md, `{reason}` raised by: missing {sorted(raising - named)}, "
        f"never raises it {sorted(named - raising)}"
    )


_GRANT_EXECUTE = re.compile(
    r"GRANT\s+EXECUTE\s+ON\s+FUNCTION\s+autodoctor\.(?P<name>\w+)\s*\(.*?\)\s+TO\s+(?P<roles>[\w\s,]+?)\s*;",
    re.I | re.S,
)


@cache
def execute_grants() -> dict[str, frozenset[str]]:
    """function -> the roles granted EXECUTE on it, over the deployed scripts."""
    found: dict[str, set[str]] = {}
    for script in deployed_scripts():
        for m in _GRANT_EXECUTE.finditer(deploy_scripts()[script]):
            roles = {r.strip().lower() for r in m["roles"].split(",")}
            found.setdefault(m["name"], set()).update(roles)
    return {name: frozenset(roles) for name, roles in found.items()}


@pytest.mark.parametrize("name", sorted(execute_grants()))
def test_functions_md_role_table_names_the_role_granted_each_function(name: str) -> None:
    table = {
        cells[0].strip("`"): cells[-1]
        for cells in _table_rows(FUNCTIONS_MD.read_text().split("\n## ", 1)[0])
        if len(cells) >= 3
    }
    for role in execute_grants()[name]:
        assert role in table, f"docs/functions.md's role table has no row for {role}"
        assert f"[`{name}`]" in table[role], (
            f"docs/functions.md's role table: the {role} row should list [`{name}`](#{name})"
        )
