"""Supabase Realtime "Broadcast from Database": every event on the right private topics,
only the right users pass Realtime's join check, nothing private in a payload, NOTIFY still
works beside it, and revert leaves Realtime as it was.

Realtime's schema is the test fixture tests/fixtures/supabase_realtime.sql, written after
Realtime's own migrations; the join check below does what Realtime's
``Realtime.Tenants.Authorization`` does when a client joins a private channel.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[3]
SHIM = ROOT / "tests" / "fixtures" / "supabase_realtime.sql"

#: The NOTIFY payload's keys (docs/design.md, Events); realtime.send adds the message's id.
PAYLOAD_KEYS = {"event_id", "event", "request_id", "session_id", "session_type", "plan_code", "at"}
OUR_POLICIES = {
    "autodoctor_join",
    "autodoctor_join_only",
    "autodoctor_no_anon",
    "autodoctor_no_client_insert",
    "autodoctor_no_client_update",
}

# Every test here makes events: run them directly (they also LISTEN and run sqitch).
pytestmark = pytest.mark.direct_only


def install_realtime(admin: psycopg.Connection[Any]) -> None:
    admin.execute(SHIM.read_text())


@pytest.fixture
def realtime(admin: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Realtime's schema created after the package was deployed, then picked up by the
    documented step, ``SELECT autodoctor.enable_realtime()``."""
    install_realtime(admin)
    row = admin.execute("SELECT autodoctor.enable_realtime()").fetchone()
    assert row == (True,)
    return admin


class Messages:
    """The broadcasts written since the last call, as (event, topic) pairs and rows."""

    def __init__(self, admin: psycopg.Connection[Any]) -> None:
        self.admin = admin
        self.seen: set[uuid.UUID] = set()

    def new(self) -> list[dict[str, Any]]:
        rows = self.admin.execute(
            "SELECT id, topic, extension, event, private, payload FROM realtime.messages"
            " ORDER BY inserted_at, topic"
        ).fetchall()
        out = []
        for mid, topic, extension, event, private, payload in rows:
            if mid in self.seen:
                continue
            self.seen.add(mid)
            out.append(
                {
                    "id": mid,
                    "topic": topic,
                    "extension": extension,
                    "event": event,
                    "private": private,
                    "payload": payload,
                }
            )
        return out

    def pairs(self) -> set[tuple[str, str]]:
        new = self.new()
        for m in new:
            assert m["extension"] == "broadcast" and m["private"] is True, m
            assert set(m["payload"]) == PAYLOAD_KEYS | {"id"}, m["payload"]
            assert m["payload"]["event"] == m["event"]
            assert m["payload"]["id"] == str(m["id"])
        once = {(m["payload"]["event_id"], m["topic"]) for m in new}
        assert len(once) == len(new), f"a topic got the same event twice: {new}"
        return {(m["event"], m["topic"]) for m in new}


def user(uid: uuid.UUID) -> str:
    return f"autodoctor:user:{uid}"


MARKET = "autodoctor:market:default"


def _online(db: ad.Database, *mechanics: uuid.UUID) -> None:
    for m in mechanics:
        with db.as_user(m) as c:
            c.set_mechanic_availability(True)


def test_every_event_lands_on_its_parties_and_market_topics(
    db: ad.Database,
    realtime: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    seed_orphan: Callable[..., uuid.UUID],
) -> None:
    admin = realtime
    msgs = Messages(admin)
    customer = make_user("Carla Customer", email="carla@example.test")
    m1, m2 = make_mechanic("Mo Mechanic"), make_mechanic("Max Mechanic")
    _online(db, m1, m2)
    assert msgs.pairs() == set()  # registering and going online log no event

    # new_request -> request_accepted -> session_status_changed (twice)
    with db.as_user(customer) as c:
        r1 = c.create_session_request("video", "free", notes="my secret note")
    assert msgs.pairs() == {("new_request", user(customer)), ("new_request", MARKET)}
    with db.as_user(m1) as m:
        s1 = m.accept_session_request(r1.id)
    assert msgs.pairs() == {
        ("request_accepted", user(customer)),
        ("request_accepted", user(m1)),
        ("request_accepted", MARKET),
    }
    with db.as_user(m1) as m:
        m.transition_session(s1.id, "live")
        m.transition_session(s1.id, "completed")
    assert msgs.pairs() == {
        ("session_status_changed", user(customer)),
        ("session_status_changed", user(m1)),
    }

    # request_cancelled
    with db.as_user(customer) as c:
        r2 = c.create_session_request("chat", "free")
        c.cancel_session_request(r2.id)
    assert msgs.pairs() == {
        ("new_request", user(customer)),
        ("new_request", MARKET),
        ("request_cancelled", user(customer)),
        ("request_cancelled", MARKET),
    }

    # request_expired
    with db.as_user(customer) as c:
        r3 = c.create_session_request("chat", "free")
    msgs.new()
    admin.execute(
        "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second',"
        " created_at = now() - interval '1 hour' WHERE id = %s",
        (r3.id,),
    )
    with db.as_service() as svc:
        assert svc.expire_stale_requests() == 1
    assert msgs.pairs() == {("request_expired", user(customer)), ("request_expired", MARKET)}

    # orphan_converted -> session_assigned (a mechanic claims the orphan)
    other = make_user("Olga Other")
    orphan = seed_orphan(other, status="pending")
    with db.as_service() as svc:
        assert svc.convert_orphaned_sessions() == 1
    converted = msgs.pairs()
    assert ("orphan_converted", user(other)) in converted
    assert {e for e, _ in converted} <= {"orphan_converted", "new_request"}
    assert all(t in (user(other), MARKET) for _, t in converted)
    with db.as_user(m2) as m:
        m.claim_orphaned_session(orphan)
    claimed = msgs.pairs()
    assert {("session_assigned", user(other)), ("session_assigned", user(m2))} <= claimed

    # orphan_cancelled (a stale orphan whose customer is gone from the queue)
    stan = make_user("Stan Stale")
    seed_orphan(stan, status="pending", age="3 days")  # never converted
    with db.as_service() as svc:
        assert svc.cancel_orphaned_sessions() == 1
    assert msgs.pairs() == {("orphan_cancelled", user(stan))}

    # Every kind of event was broadcast, and every broadcast matches its logged event.
    rows = admin.execute(
        "SELECT m.payload, e.id, e.event, e.request_id, e.session_id, e.session_type::text,"
        " e.plan_code FROM realtime.messages m"
        " JOIN autodoctor.session_events e ON e.id = (m.payload->>'event_id')::bigint"
    ).fetchall()
    assert {r[2] for r in rows} == {
        "new_request",
        "request_accepted",
        "request_cancelled",
        "request_expired",
        "session_assigned",
        "session_status_changed",
        "orphan_converted",
        "orphan_cancelled",
    }
    for payload, eid, event, rid, sid, stype, plan in rows:
        assert payload["event"] == event and payload["event_id"] == eid
        assert payload["request_id"] == (str(rid) if rid else None)
        assert payload["session_id"] == (str(sid) if sid else None)
        assert (payload["session_type"], payload["plan_code"]) == (stype, plan)
    n_events = admin.execute("SELECT count(*) FROM autodoctor.session_events").fetchone()
    n_broadcast = admin.execute(
        "SELECT count(DISTINCT payload->>'event_id') FROM realtime.messages"
    ).fetchone()
    assert n_events == n_broadcast, "an event was not broadcast"

    # Nothing private in any payload: no name, e-mail, note or vehicle.
    text = json.dumps([r[0] for r in admin.execute("SELECT payload FROM realtime.messages")])
    for secret in ("Carla", "carla@example.test", "my secret note", "Mo Mechanic", "Ford", "Olga"):
        assert secret not in text


def test_notify_still_delivers_beside_the_broadcast(
    db: ad.Database,
    realtime: psycopg.Connection[Any],
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer, mechanic = make_user(), make_mechanic()
    _online(db, mechanic)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN autodoctor")
        with db.as_user(customer) as c:
            req = c.create_session_request("video", "free")
        with db.as_user(mechanic) as m:
            m.accept_session_request(req.id)
        got = [
            json.loads(n.payload)
            for n in listener.notifies(timeout=10, stop_after=2)
            if n.channel == "autodoctor"
        ]
    assert [g["event"] for g in got] == ["new_request", "request_accepted"]
    sent = {
        r[0]["event"]: r[0]
        for r in realtime.execute(
            "SELECT payload FROM realtime.messages WHERE topic = %s", (user(customer),)
        )
    }
    for g in got:
        broadcast = dict(sent[g["event"]])
        broadcast.pop("id")
        # The same keys and ids; `at` compared as an instant (json vs jsonb formatting).
        assert set(broadcast) == set(g) == PAYLOAD_KEYS
        for key in PAYLOAD_KEYS - {"at"}:
            assert broadcast[key] == g[key], key


def test_a_failing_send_never_aborts_the_change(
    db: ad.Database,
    realtime: psycopg.Connection[Any],
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    admin = realtime
    # No partition can take a message any more: realtime.send's INSERT fails, and Realtime's
    # function catches that and logs a WARNING, as it does on Supabase.
    for (part,) in admin.execute(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'realtime.messages'::regclass"
    ).fetchall():
        admin.execute(f"ALTER TABLE realtime.messages DETACH PARTITION {part}")
    customer, mechanic = make_user(), make_mechanic()
    _online(db, mechanic)
    warnings: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as raw:
        listener.execute("LISTEN autodoctor")
        raw.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
        with db.as_user(customer) as c:
            req = c.create_session_request("video", "free")
        raw.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": str(mechanic)}),),
        )
        raw.execute("SELECT * FROM autodoctor.accept_session_request(request_id => %s)", (req.id,))
        raw.commit()
        got = [json.loads(n.payload)["event"] for n in listener.notifies(timeout=10, stop_after=2)]
    assert got == ["new_request", "request_accepted"]
    assert any("ErrorSendingBroadcastMessage" in w for w in warnings), warnings
    row = admin.execute(
        "SELECT status::text FROM autodoctor.session_requests WHERE id = %s", (req.id,)
    ).fetchone()
    assert row == ("accepted",)


# --- Realtime's join check --------------------------------------------------------------


def realtime_join(
    admin: psycopg.Connection[Any], topic: str, role: str, sub: uuid.UUID | None
) -> bool:
    """What Realtime.Tenants.Authorization asks before a client joins a private channel:
    in a transaction of Realtime's own connection, insert a broadcast and a presence
    message for the topic, become the user (role, realtime.topic, request.jwt.claims,
    request.headers), select those two messages, roll back. The user may join (read
    broadcasts) iff the broadcast row is visible."""
    claims: dict[str, Any] = {"role": role}
    if sub is not None:
        claims["sub"] = str(sub)
    broadcast, presence = uuid.uuid4(), uuid.uuid4()
    with admin.transaction(force_rollback=True):
        admin.execute(
            "INSERT INTO realtime.messages (id, topic, extension) VALUES (%s, %s, 'broadcast'),"
            " (%s, %s, 'presence')",
            (broadcast, topic, presence, topic),
        )
        admin.execute(
            "SELECT set_config('role', %s, true), set_config('realtime.topic', %s, true),"
            " set_config('request.jwt.claims', %s, true), set_config('request.headers', %s, true)",
            (role, topic, json.dumps(claims), "{}"),
        )
        visible = {
            r[0]
            for r in admin.execute(
                "SELECT id FROM realtime.messages WHERE topic = %s AND ((extension = 'broadcast'"
                " AND id = %s) OR (extension = 'presence' AND id = %s))",
                (topic, broadcast, presence),
            )
        }
    return broadcast in visible


@pytest.fixture
def people(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> dict[str, uuid.UUID]:
    m_here, m_there, m_inactive = make_mechanic(), make_mechanic(), make_mechanic()
    update = "UPDATE autodoctor.mechanics SET {} WHERE user_id = %s"
    admin.execute(update.format("market = 'north'"), (m_there,))
    admin.execute(update.format("active = false"), (m_inactive,))
    return {
        "customer": make_user(),
        "other_customer": make_user(),
        "mechanic_here": m_here,
        "mechanic_there": m_there,
        "inactive_mechanic": m_inactive,
    }


def test_join_check_lets_exactly_the_right_users_in(
    realtime: psycopg.Connection[Any], people: dict[str, uuid.UUID]
) -> None:
    admin = realtime
    topics = {
        "customer's own": user(people["customer"]),
        "mechanic's own": user(people["mechanic_here"]),
        "market default": MARKET,
        "market north": "autodoctor:market:north",
        "uppercase id": "autodoctor:user:" + str(people["customer"]).upper(),
        "no such kind": f"autodoctor:admin:{people['customer']}",
    }
    allowed = {
        ("customer", "customer's own"),
        ("mechanic_here", "mechanic's own"),
        ("mechanic_here", "market default"),
        ("mechanic_there", "market north"),
    }
    callers: dict[str, tuple[str, uuid.UUID | None]] = {
        name: ("authenticated", uid) for name, uid in people.items()
    }
    callers["anon"] = ("anon", None)
    callers["authenticated without sub"] = ("authenticated", None)
    got = {
        (who, what)
        for who, (role, sub) in callers.items()
        for what, topic in topics.items()
        if realtime_join(admin, topic, role, sub)
    }
    assert got == allowed


def test_our_policies_touch_no_other_topic_and_override_a_grant_all(
    realtime: psycopg.Connection[Any], people: dict[str, uuid.UUID]
) -> None:
    admin = realtime
    # Without any policy of the project's own, another topic is closed to everybody (RLS on)…
    assert not realtime_join(admin, "room:lobby", "authenticated", people["customer"])
    # …and with Supabase's documented example policy, open to every signed-in user, while
    # the package's topics stay closed to all but their own users.
    admin.execute(
        "CREATE POLICY authenticated_receive ON realtime.messages FOR SELECT TO authenticated"
        " USING (true)"
    )
    admin.execute("CREATE POLICY anon_receive ON realtime.messages FOR SELECT TO anon USING (true)")
    assert realtime_join(admin, "room:lobby", "authenticated", people["customer"])
    assert realtime_join(admin, "room:lobby", "anon", None)
    assert realtime_join(admin, user(people["customer"]), "authenticated", people["customer"])
    assert not realtime_join(
        admin, user(people["customer"]), "authenticated", people["other_customer"]
    )
    assert not realtime_join(admin, MARKET, "authenticated", people["customer"])
    assert not realtime_join(admin, MARKET, "anon", None)
    assert not realtime_join(admin, user(people["customer"]), "anon", None)


def test_clients_cannot_send_on_the_package_topics(
    realtime: psycopg.Connection[Any], people: dict[str, uuid.UUID]
) -> None:
    """A forged request_accepted must not reach a mechanic: even where the project lets
    users send broadcasts, the package's topics refuse clients' messages."""
    admin = realtime
    admin.execute(
        "CREATE POLICY authenticated_send ON realtime.messages FOR INSERT TO authenticated"
        " WITH CHECK (true)"
    )
    for topic, ok in ((MARKET, False), (user(people["customer"]), False), ("room:lobby", True)):
        with admin.transaction(force_rollback=True):
            admin.execute(
                "SELECT set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', %s, true)",
                (json.dumps({"role": "authenticated", "sub": str(people["customer"])}),),
            )
            try:
                with admin.transaction():
                    admin.execute(
                        "INSERT INTO realtime.messages (topic, extension, event, payload)"
                        " VALUES (%s, 'broadcast', 'request_accepted', '{}')",
                        (topic,),
                    )
                sent = True
            except psycopg.errors.InsufficientPrivilege:
                sent = False
        assert sent is ok, topic


def test_a_join_check_costs_at_most_one_index_probe(
    realtime: psycopg.Connection[Any], people: dict[str, uuid.UUID]
) -> None:
    admin = realtime

    def mechanics_reads(topic: str, sub: uuid.UUID) -> tuple[int, int]:
        with admin.transaction(force_rollback=True):
            admin.execute(
                "INSERT INTO realtime.messages (topic, extension) VALUES (%s, 'broadcast')",
                (topic,),
            )
            before = admin.execute(
                "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
                " WHERE relid = 'autodoctor.mechanics'::regclass"
            ).fetchone()
            admin.execute(
                "SELECT set_config('role', 'authenticated', true),"
                " set_config('realtime.topic', %s, true),"
                " set_config('request.jwt.claims', %s, true)",
                (topic, json.dumps({"role": "authenticated", "sub": str(sub)})),
            )
            rows = admin.execute(
                "SELECT count(*) FROM realtime.messages WHERE topic = %s", (topic,)
            ).fetchone()
            admin.execute("RESET ROLE")
            after = admin.execute(
                "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
                " WHERE relid = 'autodoctor.mechanics'::regclass"
            ).fetchone()
        assert rows == (1,) and before is not None and after is not None
        return after[0] - before[0], after[1] - before[1]

    assert mechanics_reads(MARKET, people["mechanic_here"]) == (0, 1)
    assert mechanics_reads(user(people["customer"]), people["customer"]) == (0, 0)


# --- deploy, upgrade and revert -------------------------------------------------------------


def _sqitch(dsn_info: psycopg.ConnectionInfo, *args: str) -> str:
    target = f"db:pg://{dsn_info.user}@{dsn_info.host}:{dsn_info.port}/{dsn_info.dbname}"
    proc = subprocess.run(
        ["sqitch", *args, target], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _realtime_schema(dsn_info: psycopg.ConnectionInfo) -> str:
    proc = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--schema=realtime",
            "-h",
            dsn_info.host,
            "-p",
            str(dsn_info.port),
            "-U",
            dsn_info.user,
            dsn_info.dbname,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # pg_dump 15.14+ brackets its output with a random \restrict key.
    return "".join(
        line for line in proc.stdout.splitlines(keepends=True) if not line.startswith("\\")
    )


@pytest.fixture
def dump_available() -> None:
    try:
        subprocess.run(["pg_dump", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("pg_dump is not on PATH")


@pytest.mark.usefixtures("dump_available")
def test_deploy_detects_realtime_and_revert_leaves_it_as_it_was(
    db: ad.Database,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
) -> None:
    info = admin.info
    install_realtime(admin)
    # The project's own policy on another topic, and messages Realtime already holds.
    admin.execute(
        "CREATE POLICY project_room ON realtime.messages FOR SELECT TO authenticated"
        " USING (topic = 'room:lobby')"
    )
    admin.execute("SELECT realtime.send('{\"hello\": 1}', 'greeting', 'room:lobby', false)")
    before = _realtime_schema(info)

    # Re-deploy the change with Realtime present: deploy itself installs the broadcast.
    _sqitch(info, "revert", "-y", "--to", "realtime_broadcast^")
    assert "session_events_broadcast" not in _triggers(admin)
    out = _sqitch(info, "deploy", "--verify")
    assert "realtime_broadcast" in out
    assert "session_events_broadcast" in _triggers(admin)
    assert _policies(admin) >= OUR_POLICIES
    customer = make_user()
    with db.as_user(customer) as c:
        c.create_session_request("video", "free")
    topics = {r[0] for r in admin.execute("SELECT topic FROM realtime.messages")}
    assert {user(customer), MARKET} <= topics

    # Revert: the package's trigger, functions and policies go; Realtime's schema, its
    # policies and every message stay.
    n_messages = admin.execute("SELECT count(*) FROM realtime.messages").fetchone()
    _sqitch(info, "revert", "-y", "--to", "realtime_broadcast^")
    assert _realtime_schema(info) == before
    assert _policies(admin) == {"project_room"}
    assert admin.execute("SELECT count(*) FROM realtime.messages").fetchone() == n_messages
    assert "session_events_broadcast" not in _triggers(admin)
    # Deploy again to leave the database as the other tests expect it.
    _sqitch(info, "deploy")


def test_without_realtime_nothing_is_installed_and_enable_says_so(
    admin: psycopg.Connection[Any],
) -> None:
    notices: list[str] = []
    admin.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    assert admin.execute("SELECT autodoctor.enable_realtime()").fetchone() == (False,)
    assert any("no Supabase Realtime schema" in n for n in notices), notices
    assert "session_events_broadcast" not in _triggers(admin)
    assert admin.execute("SELECT to_regnamespace('realtime')").fetchone() == (None,)


def test_enable_is_idempotent_and_disable_stops_the_broadcast(
    db: ad.Database, realtime: psycopg.Connection[Any], make_user: Callable[..., uuid.UUID]
) -> None:
    admin = realtime
    assert admin.execute("SELECT autodoctor.enable_realtime()").fetchone() == (True,)
    assert _policies(admin) == OUR_POLICIES
    assert _triggers(admin).count("session_events_broadcast") == 1
    assert admin.execute("SELECT autodoctor.disable_realtime()").fetchone() == (True,)
    assert _policies(admin) == set()
    with db.as_user(make_user()) as c:
        c.create_session_request("video", "free")
    assert admin.execute("SELECT count(*) FROM realtime.messages").fetchone() == (0,)
    assert admin.execute("SELECT autodoctor.disable_realtime()").fetchone() == (False,)


def test_enable_refuses_an_owner_that_may_not_call_send(
    admin: psycopg.Connection[Any],
) -> None:
    """The trigger runs as the deploying role: if that role could not call realtime.send,
    every change would fail. enable_realtime() refuses instead, and installs nothing."""
    install_realtime(admin)
    role = f"autodoctor_rt_owner_{os.getpid()}"  # roles are cluster-wide
    admin.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        # The function runs as its owner: one without USAGE on schema realtime.
        admin.execute(f"ALTER FUNCTION autodoctor.enable_realtime() OWNER TO {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            admin.execute("SELECT autodoctor.enable_realtime()")
        assert info.value.diag.message_detail == "realtime_not_permitted"
        assert info.value.diag.message_hint and "realtime.send" in info.value.diag.message_hint
        assert "session_events_broadcast" not in _triggers(admin)
        assert _policies(admin) == set()
    finally:
        admin.execute("ALTER FUNCTION autodoctor.enable_realtime() OWNER TO CURRENT_USER")
        admin.execute(f"DROP ROLE {role}")


def test_the_switches_are_for_the_owner_only(
    realtime: psycopg.Connection[Any],
) -> None:
    for role in ("anon", "authenticated", "service_role"):
        for fn in ("enable_realtime", "disable_realtime"):
            row = realtime.execute(
                "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, f"autodoctor.{fn}()")
            ).fetchone()
            assert row == (False,), (role, fn)


def _triggers(admin: psycopg.Connection[Any]) -> list[str]:
    return [
        r[0]
        for r in admin.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'autodoctor.session_events'::regclass"
            " AND NOT tgisinternal"
        )
    ]


def _policies(admin: psycopg.Connection[Any]) -> set[str]:
    return {
        r[0]
        for r in admin.execute(
            "SELECT polname FROM pg_policy WHERE polrelid = 'realtime.messages'::regclass"
        )
    }
