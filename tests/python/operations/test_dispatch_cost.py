"""auto_assign_orphaned_sessions is set-based: its cost per orphan stays flat (the
performance issue, item 7).

The benchmark's data at a fifth of its size (``bench/sql/dispatch.sql``): 2,000 legacy
orphans, 90% of them located, 10% live, onto 200 located online mechanics of capacity 20
(every type, 50 km radius) spread over the same region. One call assigns every orphan, and
the counters of that call are bounded:

- **statements**: every statement executed inside the call (the function's own, the
  helpers', the triggers' and the foreign-key checks'), counted by auto_explain
  (``log_nested_statements``). The per-row work that any write path pays (the load
  trigger's UPDATE of the mechanic, the state machine check, the event's notify, three
  foreign-key checks) is about 6 statements per orphan; the matching itself is a few
  statements per pass, whatever the batch. One orphan at a time (v0.1.0) took 14.7 on the
  benchmark's 10,000 orphans.
- **buffers**: shared hit + read of the whole call (EXPLAIN ANALYZE of the call counts
  what runs inside it): one KNN walk of LIMIT 1 per orphan and pass, and the writes. One
  orphan at a time took ~730 per orphan on the benchmark's data (a KNN walk of 20 each).

Counters only, deterministic for the data; times are never asserted.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.bulk_loaded

ORPHANS = 2_000
MECHANICS = 200
CAPACITY = 20
MAX_STATEMENTS_PER_ORPHAN = 7
MAX_BUFFERS_PER_ORPHAN = 150

# bench/sql/helpers.sql's point(i, salt): a deterministic point in the service region.
POINT = """extensions.st_setsrid(extensions.st_makepoint(
               2.0 + ('x' || substr(md5('lon' || {salt} || '-' || {i}), 1, 8))::bit(32)::bigint
                     / 4294967295.0 * 1.0,
               48.5 + ('x' || substr(md5('lat' || {salt} || '-' || {i}), 1, 8))::bit(32)::bigint
                      / 4294967295.0 * 0.8), 4326)::extensions.geography"""

LOAD = [
    f"""INSERT INTO auth.users (id, email)
        SELECT md5('dmech' || i)::uuid, 'dmechanic' || i || '@example.test'
          FROM generate_series(0, {MECHANICS - 1}) AS i""",
    f"""INSERT INTO auth.users (id, email)
        SELECT md5('dcust' || i)::uuid, 'dcustomer' || i || '@example.test'
          FROM generate_series(0, {ORPHANS - 1}) AS i""",
    f"""SELECT count(autodoctor.register_mechanic(
                   md5('dmech' || i)::uuid, enum_range(NULL::autodoctor.session_type),
                   extensions.st_y({POINT.format(salt=300, i="i")}::extensions.geometry),
                   extensions.st_x({POINT.format(salt=300, i="i")}::extensions.geometry),
                   50, {CAPACITY}))
          FROM generate_series(0, {MECHANICS - 1}) AS i""",
    "UPDATE autodoctor.mechanics SET online = true",
    f"""INSERT INTO autodoctor.intakes
            (id, customer_id, vehicle_make, vehicle_model, vehicle_year, concern, location)
        SELECT md5('dintake' || i)::uuid, md5('dcust' || i)::uuid, 'Ford', 'Focus', 2012,
               'Grinding noise when braking.', {POINT.format(salt=400, i="i")}
          FROM generate_series(0, {ORPHANS - 1}) AS i
         WHERE i % 10 <> 9""",
    f"""INSERT INTO autodoctor.sessions
            (id, created_at, updated_at, mechanic_id, customer_user_id, customer_email, plan,
             type, status, intake_id, started_at)
        SELECT md5('dsess' || i)::uuid, now() - interval '1 minute' * i,
               now() - interval '1 minute' * i, NULL, md5('dcust' || i)::uuid,
               'dcustomer' || i || '@example.test', 'free',
               (enum_range(NULL::autodoctor.session_type))[1 + i % 3],
               CASE WHEN i % 10 = 0 THEN 'live' ELSE 'pending' END::autodoctor.session_status,
               CASE WHEN i % 10 <> 9 THEN md5('dintake' || i)::uuid END,
               CASE WHEN i % 10 = 0 THEN now() - interval '5 minutes' END
          FROM generate_series(0, {ORPHANS - 1}) AS i""",
    "ANALYZE",
]


def test_auto_assign_costs_a_flat_few_statements_and_buffers_per_orphan(
    admin: psycopg.Connection[Any],
) -> None:
    for statement in LOAD:
        admin.execute(statement)
    statements = 0

    def count(diag: psycopg.errors.Diagnostic) -> None:
        nonlocal statements
        if diag.severity_nonlocalized == "LOG" and (diag.message_primary or "").startswith(
            "duration:"
        ):
            statements += 1

    admin.add_notice_handler(count)
    with admin.transaction(force_rollback=True):
        admin.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("client_min_messages", "log"),
        ):
            admin.execute("SELECT set_config(%s, %s, true)", (setting, value))
        assigned = admin.execute(
            "SELECT autodoctor.auto_assign_orphaned_sessions(%s)", (ORPHANS,)
        ).fetchone()
        admin.execute("SELECT set_config('client_min_messages', 'notice', true)")
    statements -= 1  # the call itself
    assert assigned == (ORPHANS,)

    with admin.transaction(force_rollback=True):
        plan = admin.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
            " SELECT autodoctor.auto_assign_orphaned_sessions(%s)",
            (ORPHANS,),
        ).fetchone()
    assert plan is not None
    top = (json.loads(plan[0]) if isinstance(plan[0], str) else plan[0])[0]["Plan"]
    buffers = int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])
    print(
        f"auto_assign_orphaned_sessions({ORPHANS:,}): {statements / ORPHANS:.2f} statements"
        f" and {buffers / ORPHANS:.1f} buffers per orphan"
    )
    assert statements <= MAX_STATEMENTS_PER_ORPHAN * ORPHANS, statements / ORPHANS
    assert buffers <= MAX_BUFFERS_PER_ORPHAN * ORPHANS, buffers / ORPHANS
    assert admin.execute(
        "SELECT count(*) FROM autodoctor.mechanics WHERE active_sessions > 0"
    ).fetchone() == (0,)
