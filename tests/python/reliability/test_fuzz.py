"""Hostile input to every contract function, through raw psycopg, as PostgREST would call
them (role and JWT claims local to the transaction, named arguments, values bound as
untyped text that the server parses: what a JSON ``rpc`` body becomes).

Each call must either succeed or fail with a contract SQLSTATE (42501, PT404, PT409 or
class 22) and never XX000, P0001 or anything else; a failed call must leave every table of
the package and auth.users exactly as they were (footprint before == after), and after a
successful one the invariants must still hold.

Inputs: unicode (emoji, RTL, combining marks), huge text (up to 1 MB), boundary lengths,
NULLs, values of the wrong type (as text), random and malformed uuids, ids of other users'
rows, SQL fragments, JSON of every shape. NUL bytes cannot be sent as text: libpq strings
are NUL-terminated, so psycopg refuses them client-side (``psycopg.DataError``, no SQLSTATE)
before anything reaches the server; the tests assert that, and that nothing was written.
Inside JSON, ``\\u0000`` does reach the server and is refused with 22P05.

The number of inputs tried is printed at the end of the module.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    act_as,
    call_function,
    footprint,
    invariants,
    is_contract_sqlstate,
    new_user,
    report,
)

#: Examples per contract function (the whole module stays well under a minute).
EXAMPLES = 150

TRIED: Counter[str] = Counter()
REFUSED: Counter[str] = Counter()
SUCCEEDED: Counter[str] = Counter()
CLIENT_SIDE: Counter[str] = Counter()

# --- strategies --------------------------------------------------------------------------

SQL_FRAGMENTS = [
    "'; DROP TABLE autodoctor.sessions; --",
    "' OR '1'='1",
    "1; SELECT pg_sleep(5)",
    "$$; DELETE FROM autodoctor.session_requests; $$",
    "free' UNION SELECT id FROM auth.users --",
    "%s %(x)s {} \\",
    "); COMMIT; DROP SCHEMA autodoctor CASCADE; --",
    "NULL",
    "null",
    "DEFAULT",
    "autodoctor._caller()",
    "\\x00",
    "E'\\\\000'",
]
WEIRD_TEXT = [
    "",
    " ",
    "\t\n\r",
    "\u202eRTL override",
    "Zalgo z\u0351\u0352\u0357a\u0300l\u0301g\u0302o",
    "\U0001f697\U0001f527 car emoji",
    "\ufeffBOM",
    "\u00a0nbsp\u00a0",
    "\u0131\u0307 dotless",
    "\U0001d54f" * 300,
]
BOUNDARY_LENGTHS = [1, 99, 100, 101, 199, 200, 201, 1999, 2000, 2001, 3999, 4000, 4001, 100_000]


def hostile_text(*, nul: bool = True) -> st.SearchStrategy[str | None]:
    """Any text a client might send, NUL bytes included (refused by the client library)."""
    alphabet = (
        st.characters(blacklist_categories=("Cs",))
        if nul
        else st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    )
    return st.one_of(
        st.none(),
        st.text(alphabet, max_size=40),
        st.sampled_from(SQL_FRAGMENTS + WEIRD_TEXT),
        st.builds(
            lambda n, c: c * n, st.sampled_from(BOUNDARY_LENGTHS), st.sampled_from(["a", "é", "😀"])
        ),
        st.just("x" * 1_000_000),
    )


def uuid_text(known: Callable[[], list[uuid.UUID]]) -> st.SearchStrategy[str | None]:
    """Real ids of rows (any owner), random uuids, and malformed ones."""
    real = st.builds(
        lambda i: str(known()[i % len(known())]) if known() else str(uuid.uuid4()),
        st.integers(0, 10_000),
    )
    return st.one_of(
        real,
        real,
        st.none(),
        st.builds(lambda _: str(uuid.uuid4()), st.just(0)),
        st.sampled_from(
            [
                "00000000-0000-0000-0000-000000000000",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
                "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
                "not-a-uuid",
                "",
                "1",
                "' OR 1=1 --",
            ]
        ),
        hostile_text(),
    )


def number_text() -> st.SearchStrategy[str | None]:
    """Numbers as text: in range, out of range, special values, and not numbers at all."""
    return st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(-200, 200).map(str),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(
            [
                "NaN",
                "Infinity",
                "-Infinity",
                "1e309",
                "-0",
                "0x10",
                "1,5",
                " 42 ",
                "",
                "90.0000001",
                "-180",
                "180.0",
                "true",
                "[1]",
            ]
        ),
        hostile_text(),
    )


def mostly(
    valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Valid values about four times in five, so that calls also get far enough to write."""
    return st.integers(0, 9).flatmap(lambda n: valid if n < 8 else hostile)


def enum_text(values: list[str]) -> st.SearchStrategy[str | None]:
    return mostly(
        st.sampled_from(values),
        st.one_of(
            st.none(),
            st.sampled_from([v.upper() for v in values] + [v + " " for v in values] + [""]),
            hostile_text(),
        ),
    )


def json_text() -> st.SearchStrategy[str | None]:
    """JSON of every shape (valid vehicles among them), and text that is not JSON."""
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    anything = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
    vehicle = st.fixed_dictionaries(
        {
            "make": st.one_of(st.sampled_from(["Ford", "Renault", " ", ""]), st.text(max_size=120)),
            "model": st.one_of(st.sampled_from(["Focus", "Clio"]), st.text(max_size=120)),
            "year": st.one_of(st.integers(1890, 2030), st.floats(1899, 2030), st.text(max_size=5)),
        },
        optional={
            "vin": st.one_of(
                st.none(),
                st.sampled_from(["1HGCM82633A004352", "1hgcm82633a004352", "IOQ00000000000000"]),
                st.text(max_size=20),
            )
        },
    )
    return st.one_of(
        vehicle.map(json.dumps),
        vehicle.map(json.dumps),
        st.none(),
        anything.map(json.dumps),
        st.sampled_from(
            [
                '{"make": "\\u0000", "model": "x", "year": 2015}',
                "[" * 3000 + "]" * 3000,
                "{",
                "nul",
                "'{}'",
                '{"make": 1e999}',
            ]
        ),
        hostile_text(),
    )


def interval_text() -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.sampled_from(
            [
                "1 day",
                "0",
                "-1 day",
                "1 second",
                "178000000 years",
                "999999999 years",
                "infinity",
                "P1D",
                "1 fortnight",
                "00:00:01",
                "-00:00:00.000001",
            ]
        ),
        st.integers(-(2**40), 2**40).map(lambda n: f"{n} seconds"),
        hostile_text(),
    )


# --- the world the calls run against ------------------------------------------------------


@dataclass
class World:
    """Users, mechanics and rows in every state, on one autocommit admin connection (for
    footprints) and one caller connection (each call is one transaction on it)."""

    admin: psycopg.Connection[Any]
    conn: psycopg.Connection[Any]
    users: dict[str, uuid.UUID] = field(default_factory=dict)

    def ids(self, table: str | None = None) -> list[uuid.UUID]:
        """Ids of existing rows: of one table, or of requests, sessions and users."""
        tables = (
            [table]
            if table
            else ["autodoctor.session_requests", "autodoctor.sessions", "auth.users"]
        )
        rows = self.admin.execute(
            " UNION ALL ".join(f"SELECT id FROM {t}" for t in tables)  # constants above
        ).fetchall()
        return [uuid.UUID(str(r[0])) for r in rows]

    def sub(self, who: str) -> object | None:
        if who == "ghost":
            return uuid.uuid4()  # a well-formed sub that is no user
        if who == "service":
            return None
        return self.users[who]


def _service(world: World, fn: str, **args: Any) -> None:
    with world.conn.transaction():
        act_as(world.conn, "service_role")
        call_function(world.conn, fn, args)


def _as(world: World, who: str, fn: str, **args: Any) -> list[tuple[Any, ...]]:
    with world.conn.transaction():
        act_as(world.conn, "authenticated", world.users[who])
        return call_function(world.conn, fn, args)


@pytest.fixture
def world(dsn: str, admin: psycopg.Connection[Any]) -> Iterator[World]:
    with psycopg.connect(dsn) as conn:
        w = World(admin, conn)
        for name in ("alice", "bob", "mia", "max"):
            w.users[name] = new_user(admin, name.title())
        _service(
            w,
            "register_mechanic",
            user_id=str(w.users["mia"]),
            latitude=48.85,
            longitude=2.35,
            max_concurrent_sessions=100,
        )
        _service(
            w,
            "register_mechanic",
            user_id=str(w.users["max"]),
            expertise="{chat}",
            max_concurrent_sessions=2,
        )
        _as(w, "mia", "set_mechanic_availability", online="true")
        _as(w, "max", "set_mechanic_availability", online="true")
        for i in range(3):
            _as(w, "alice", "create_session_request", session_type="chat", plan_code="free")
            _as(
                w,
                "bob",
                "submit_intake",
                session_type="video",
                plan_code="standard",
                vehicle='{"make": "Ford", "model": "Focus", "year": 2012}',
                concern=f"noise {i}",
                latitude="48.86",
                longitude="2.34",
            )
        pending = admin.execute(
            "SELECT id FROM autodoctor.session_requests WHERE customer_id = %s LIMIT 1",
            (w.users["alice"],),
        ).fetchone()
        assert pending is not None
        _as(w, "mia", "accept_session_request", request_id=str(pending[0]))
        # A legacy orphan and a converted one, for claim and the repairs.
        for status in ("pending", "live"):
            admin.execute(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
                " VALUES (%s, 'free', 'chat', %s)",
                (w.users["bob"], status),
            )
        _service(w, "convert_orphaned_sessions")
        admin.execute(
            "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
            " VALUES (%s, 'legacy', 'diagnostic', 'pending')",
            (w.users["alice"],),
        )
        yield w
        # Whatever the fuzzing did, the package's invariants hold at the end (orphans may
        # remain unrepaired: repairing is run_maintenance's job, fuzzed like the rest).
        bad = [v for v in invariants(admin) if v[0] != "orphan_without_pending_request"]
        assert not bad, bad


# --- the functions, their callers and their parameters -------------------------------------


@dataclass(frozen=True)
class Spec:
    """A contract function: who may call it, and a strategy per parameter."""

    name: str
    role: str  # the role it is granted to
    callers: list[str]  # the kinds of caller to try (the right role, and wrong ones)
    params: dict[str, Callable[[World], st.SearchStrategy[Any]]]
    required: frozenset[str] = frozenset()


CUSTOMER = ["alice", "bob", "mia", "ghost", "anon", "service"]
MECHANIC = ["mia", "max", "alice", "ghost", "anon", "service"]
SERVICE = ["service", "service", "service", "alice", "mia", "anon"]


def _uuid(w: World) -> st.SearchStrategy[Any]:
    return uuid_text(w.ids)


def _ids_of(table: str) -> Callable[[World], st.SearchStrategy[Any]]:
    """Mostly ids of rows of ``table`` (so calls find something), else any hostile uuid."""

    def strategy(w: World) -> st.SearchStrategy[Any]:
        return mostly(uuid_text(lambda: w.ids(table)), uuid_text(w.ids))

    return strategy


def _vehicle(w: World) -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries(
        {
            "make": st.sampled_from(["Ford", "Renault", "Škoda", "Citroën"]),
            "model": st.text(
                st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
            ).filter(str.strip),
            "year": st.integers(1900, 2026),
        },
        optional={"vin": st.sampled_from([None, "1HGCM82633A004352", "1hgcm82633a004352"])},
    ).map(json.dumps)
    return mostly(valid, json_text())


SPECS = [
    Spec(
        "create_session_request",
        "authenticated",
        CUSTOMER,
        {
            "session_type": lambda w: enum_text(["chat", "video", "diagnostic"]),
            "plan_code": lambda w: enum_text(["free", "standard", "premium"]),
            "notes": lambda w: mostly(st.text(max_size=200), hostile_text()),
            "idempotency_key": lambda w: mostly(
                st.sampled_from(["k1", "k2", "k3"]), hostile_text()
            ),
        },
        frozenset({"session_type", "plan_code"}),
    ),
    Spec(
        "submit_intake",
        "authenticated",
        CUSTOMER,
        {
            "session_type": lambda w: enum_text(["chat", "video", "diagnostic"]),
            "plan_code": lambda w: enum_text(["free", "standard", "premium"]),
            "vehicle": _vehicle,
            "concern": lambda w: mostly(st.text(min_size=1, max_size=200), hostile_text()),
            "latitude": lambda w: mostly(st.floats(48.0, 49.5).map(str), number_text()),
            "longitude": lambda w: mostly(st.floats(1.5, 3.0).map(str), number_text()),
            "idempotency_key": lambda w: mostly(
                st.sampled_from(["k1", "k2", "k3"]), hostile_text()
            ),
        },
        frozenset({"session_type", "plan_code", "vehicle", "concern"}),
    ),
    Spec(
        "cancel_session_request",
        "authenticated",
        CUSTOMER,
        {"request_id": _uuid},
        frozenset({"request_id"}),
    ),
    Spec(
        "accept_session_request",
        "authenticated",
        MECHANIC,
        {"request_id": _uuid},
        frozenset({"request_id"}),
    ),
    Spec(
        "claim_orphaned_session",
        "authenticated",
        MECHANIC,
        {"session_id": _uuid},
        frozenset({"session_id"}),
    ),
    Spec(
        "transition_session",
        "authenticated",
        [*CUSTOMER, "max"],
        {
            "session_id": _ids_of("autodoctor.sessions"),
            "to_status": lambda w: enum_text(
                ["pending", "scheduled", "waiting", "live", "completed", "cancelled"]
            ),
        },
        frozenset({"session_id", "to_status"}),
    ),
    Spec(
        "set_mechanic_availability",
        "authenticated",
        MECHANIC,
        {
            "online": lambda w: mostly(
                st.sampled_from(["true", "false", "t", "yes", "off"]), hostile_text()
            ),
            "latitude": lambda w: mostly(st.floats(-90, 90).map(str), number_text()),
            "longitude": lambda w: mostly(st.floats(-180, 180).map(str), number_text()),
        },
        frozenset({"online"}),
    ),
    Spec(
        "register_mechanic",
        "service_role",
        SERVICE,
        {
            "user_id": _ids_of("auth.users"),
            "expertise": lambda w: mostly(
                st.sampled_from(["{chat}", "{chat,video,diagnostic}", "{video,chat,chat}"]),
                st.one_of(
                    st.sampled_from(
                        ["{}", "{chat,NULL}", "{bogus}", "chat", "{{chat}}", "[1:1]={chat}"]
                    ),
                    hostile_text(),
                ),
            ),
            "latitude": lambda w: mostly(st.floats(-90, 90).map(str), number_text()),
            "longitude": lambda w: mostly(st.floats(-180, 180).map(str), number_text()),
            "service_radius_km": lambda w: mostly(st.floats(0.5, 20000).map(str), number_text()),
            "max_concurrent_sessions": lambda w: mostly(
                st.integers(1, 100).map(str), number_text()
            ),
        },
        frozenset({"user_id"}),
    ),
    Spec("expire_stale_requests", "service_role", SERVICE, {}),
    Spec("convert_orphaned_sessions", "service_role", SERVICE, {}),
    Spec(
        "auto_assign_orphaned_sessions",
        "service_role",
        SERVICE,
        {"batch_size": lambda w: mostly(st.integers(1, 1000).map(str), number_text())},
    ),
    Spec(
        "cancel_orphaned_sessions",
        "service_role",
        SERVICE,
        {
            "older_than": lambda w: mostly(
                st.sampled_from(["1 day", "1 hour", "0"]), interval_text()
            )
        },
    ),
    Spec("run_maintenance", "service_role", SERVICE, {}),
    Spec("check_invariants", "service_role", SERVICE, {}),
    # Granted to both roles that follow the log; the service's call is tested by pgTAP.
    Spec("event_watermark", "authenticated", ["alice", "mia", "ghost", "anon"], {}),
    Spec(
        "relay_events",
        "service_role",
        SERVICE,
        {"batch_size": lambda w: mostly(st.integers(1, 1000).map(str), number_text())},
    ),
    Spec(
        "set_notify_mode",
        "service_role",
        SERVICE,
        {"mode": lambda w: mostly(st.sampled_from(["transaction", "relay"]), hostile_text())},
        frozenset({"mode"}),
    ),
    Spec(
        "fan_out_new_requests",
        "service_role",
        SERVICE,
        {"batch_size": lambda w: mostly(st.integers(1, 1000).map(str), number_text())},
    ),
    Spec(
        "claim_notifications",
        "service_role",
        SERVICE,
        {"batch_size": lambda w: mostly(st.integers(1, 1000).map(str), number_text())},
    ),
    Spec(
        "complete_notification",
        "service_role",
        SERVICE,
        {
            "notification_id": lambda w: mostly(st.integers(1, 40).map(str), number_text()),
            "error": lambda w: mostly(st.one_of(st.none(), st.text(max_size=100)), hostile_text()),
            "max_attempts": lambda w: mostly(st.integers(1, 100).map(str), number_text()),
        },
        frozenset({"notification_id"}),
    ),
]


def _attempt(world: World, spec: Spec, who: str, args: dict[str, Any]) -> str:
    """Make one call; return 'ok', 'client', or the SQLSTATE. Asserts the contract."""
    TRIED[spec.name] += 1
    before = footprint(world.admin)
    outcome = "ok"
    try:
        with world.conn.transaction():
            if who == "anon":
                act_as(world.conn, "anon")
            elif who == "service":
                act_as(world.conn, "service_role")
            else:
                act_as(world.conn, "authenticated", world.sub(who))
            call_function(world.conn, spec.name, args)
    except psycopg.Error as exc:
        if exc.sqlstate is None:
            # Refused by the client library before sending: only NUL bytes in text.
            assert isinstance(exc, psycopg.DataError), exc
            assert any(isinstance(v, str) and "\x00" in v for v in args.values()), exc
            CLIENT_SIDE[spec.name] += 1
            outcome = "client"
        else:
            assert is_contract_sqlstate(exc.sqlstate), (
                f"{spec.name} as {who} with {_short(args)} failed with {exc.sqlstate}: {exc}"
            )
            if exc.sqlstate in ("PT404", "PT409") or (
                exc.sqlstate == "42501" and exc.diag.message_detail is not None
            ):
                reason = exc.diag.message_detail
                assert (
                    reason is not None and reason.replace("_", "").isalnum() and reason.islower()
                ), f"{spec.name}: {exc.sqlstate} without a snake_case reason: {reason!r}"
            REFUSED[spec.name] += 1
            outcome = exc.sqlstate
    if outcome == "ok":
        SUCCEEDED[spec.name] += 1
        bad = [v for v in invariants(world.admin) if v[0] != "orphan_without_pending_request"]
        assert not bad, f"{spec.name} as {who} with {_short(args)} broke invariants: {bad}"
    else:
        assert footprint(world.admin) == before, (
            f"{spec.name} as {who} with {_short(args)} failed ({outcome}) but wrote something"
        )
    return outcome


def _short(args: dict[str, Any]) -> str:
    return repr(
        {
            k: (v[:60] + f"...({len(v)} chars)" if isinstance(v, str) and len(v) > 60 else v)
            for k, v in args.items()
        }
    )


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(TRIED.values())
    if total:
        report(
            request,
            f"fuzz: {total} inputs tried on {len(TRIED)} contract functions; "
            f"{sum(SUCCEEDED.values())} succeeded, {sum(REFUSED.values())} refused with a"
            f" contract SQLSTATE, "
            f"{sum(CLIENT_SIDE.values())} refused client-side (NUL bytes), "
            f"0 partial writes, 0 undocumented SQLSTATEs",
        )
        report(
            request,
            "fuzz: per function (tried/succeeded): "
            + ", ".join(f"{k} {v}/{SUCCEEDED[k]}" for k, v in sorted(TRIED.items())),
        )


# --- the tests ---------------------------------------------------------------------------


def test_every_contract_function_is_fuzzed(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p"
        " WHERE p.pronamespace = 'autodoctor'::regnamespace AND p.proname NOT LIKE '\\_%'"
        # The API's functions: the owner's switches (enable_realtime, ...) are no API call.
        " AND (has_function_privilege('authenticated', p.oid, 'EXECUTE')"
        "   OR has_function_privilege('service_role', p.oid, 'EXECUTE'))"
    ).fetchall()
    assert {r[0] for r in rows} == {s.name for s in SPECS}


@pytest.mark.allow_orphans
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
def test_hostile_input_gets_a_contract_answer_and_no_partial_write(
    spec: Spec, world: World, data: st.DataObject
) -> None:
    # The first caller listed is the right one: half the calls; the others share the rest.
    who = data.draw(mostly(st.just(spec.callers[0]), st.sampled_from(spec.callers)), label="caller")
    args: dict[str, Any] = {}
    # Latitude and longitude travel together (both or neither) more often than not.
    pair = data.draw(st.booleans(), label="pass coordinates")
    for name, strategy in spec.params.items():
        if name in ("latitude", "longitude") and data.draw(st.integers(0, 9)) < 8:
            passed = pair
        else:
            passed = name in spec.required or data.draw(st.booleans(), label=f"pass {name}")
        if passed:
            args[name] = data.draw(strategy(world), label=name)
    outcome = _attempt(world, spec, who, args)
    if who == "anon" or (who == "service") != (spec.role == "service_role"):
        # The wrong kind of caller never gets in, whatever the arguments.
        assert outcome in ("42501", "client") or outcome.startswith("22"), (spec.name, who, outcome)


@pytest.mark.allow_orphans
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    claims=st.one_of(
        st.none(),
        hostile_text(nul=False),
        st.dictionaries(
            st.sampled_from(["sub", "role", "aud", "email"]),
            st.one_of(st.none(), st.integers(), hostile_text(nul=False), st.lists(st.integers())),
            max_size=4,
        ).map(json.dumps),
    ),
    fn=st.sampled_from(
        ["create_session_request", "accept_session_request", "set_mechanic_availability"]
    ),
)
def test_forged_or_broken_jwt_claims_never_get_past_the_caller_check(
    world: World, claims: str | None, fn: str
) -> None:
    args = {
        "create_session_request": {"session_type": "chat", "plan_code": "free"},
        "accept_session_request": {"request_id": str(uuid.uuid4())},
        "set_mechanic_availability": {"online": "true"},
    }[fn]
    TRIED["(forged claims)"] += 1
    before = footprint(world.admin)
    with pytest.raises(psycopg.Error) as info, world.conn.transaction():
        world.conn.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (claims,),
        )
        call_function(world.conn, fn, args)
    state = info.value.sqlstate
    assert state in ("42501", "PT404") or (state or "").startswith("22"), (
        claims,
        state,
        info.value,
    )
    assert footprint(world.admin) == before


@pytest.mark.allow_orphans
@pytest.mark.parametrize(
    "value", [123, 1.5, True, [1, 2], b"\x00\x01"], ids=["int", "float", "bool", "list", "bytes"]
)
def test_typed_wrong_types_are_refused_before_any_function_runs(
    world: World, value: object
) -> None:
    # A driver binding a typed value of the wrong type: PostgreSQL finds no function with
    # that signature (42883) or cannot cast (42804 / class 22): no function code runs, so
    # nothing is written. Not reachable through PostgREST, which sends JSON as text.
    before = footprint(world.admin)
    with pytest.raises(psycopg.Error) as info, world.conn.transaction():
        act_as(world.conn, "authenticated", world.users["mia"])
        call_function(world.conn, "accept_session_request", {"request_id": value})
    assert info.value.sqlstate in ("42883", "42804") or (info.value.sqlstate or "").startswith("22")
    assert footprint(world.admin) == before


@pytest.mark.allow_orphans
def test_nul_bytes_are_refused_client_side_and_write_nothing(world: World) -> None:
    before = footprint(world.admin)
    with pytest.raises(psycopg.DataError) as info, world.conn.transaction():
        act_as(world.conn, "authenticated", world.users["alice"])
        call_function(
            world.conn,
            "create_session_request",
            {"session_type": "chat", "plan_code": "free", "notes": "brakes\x00squeal"},
        )
    assert info.value.sqlstate is None
    assert "NUL" in str(info.value)
    assert footprint(world.admin) == before
