"""Meta-test: every public function has a pgTAP file of its own.

The rule: for each public function ``autodoctor.<name>`` there is a file
``tests/pgtap/NN_<name>.sql`` (``NN`` two digits, the suite's order) that calls
``autodoctor.<name>(`` and declares a ``plan(``. Files may test more than their function
(``40_mechanics.sql`` still tests both mechanic functions), but a function is covered only
by the file that carries its name.

A function is public when it is in schema ``autodoctor``, its name does not start with
``_``, it is not a trigger function, and one of the API roles (``authenticated``,
``service_role``, ``anon``) may EXECUTE it. The list is read from a deployed database
(sqitch, as every test here), never from a list kept in this file, so a function added to
``deploy/`` without its pgTAP file makes this test fail, naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[3]
PGTAP = ROOT / "tests" / "pgtap"
API_ROLES = ("authenticated", "service_role", "anon")

PUBLIC_FUNCTIONS = """
SELECT DISTINCT p.proname
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'autodoctor'
   AND p.prokind = 'f'
   AND left(p.proname, 1) <> '_'
   AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
   AND EXISTS (SELECT 1 FROM unnest(%s::text[]) AS r (role)
                WHERE pg_catalog.has_function_privilege(r.role, p.oid, 'EXECUTE'))
 ORDER BY 1
"""


def public_functions(conn: psycopg.Connection[Any]) -> list[str]:
    """The public functions of the deployed package, by name."""
    return [row[0] for row in conn.execute(PUBLIC_FUNCTIONS, (list(API_ROLES),))]


def coverage_problems(functions: list[str], pgtap_dir: Path = PGTAP) -> list[str]:
    """One line per public function without a pgTAP file of its own that tests it."""
    problems = []
    for name in functions:
        own = re.compile(rf"\d{{2}}_{name}\.sql")
        files = sorted(f for f in pgtap_dir.glob(f"*_{name}.sql") if own.fullmatch(f.name))
        if not files:
            problems.append(f"{name}: no tests/pgtap/NN_{name}.sql")
            continue
        for f in files:
            text = f.read_text()
            if not re.search(rf"autodoctor\.{name}\s*\(", text):
                problems.append(f"{name}: {f.name} never calls autodoctor.{name}(")
            if "plan(" not in text:
                problems.append(f"{name}: {f.name} declares no plan()")
    return problems


def test_every_public_function_has_its_own_pgtap_file(admin: psycopg.Connection[Any]) -> None:
    functions = public_functions(admin)
    # The query must find the contract, or an empty list would pass vacuously.
    assert {"create_session_request", "transition_session", "run_maintenance"} <= set(functions)
    assert not any(f.startswith("_") for f in functions)
    problems = coverage_problems(functions)
    assert not problems, "public functions without a pgTAP file:\n" + "\n".join(problems)


def test_the_rule_names_a_missing_file(tmp_path: Path) -> None:
    """The check itself: a missing or empty file is reported with the function's name."""
    (tmp_path / "25_transition_session.sql").write_text(
        "SELECT plan(1);\nSELECT autodoctor.transition_session(NULL, NULL);\n"
    )
    (tmp_path / "35_claim_orphaned_session.sql").write_text("SELECT plan(1);\n")
    (tmp_path / "x_relay_events.sql").write_text("SELECT autodoctor.relay_events();\n")
    problems = coverage_problems(
        ["transition_session", "claim_orphaned_session", "relay_events"], tmp_path
    )
    assert problems == [
        "claim_orphaned_session: 35_claim_orphaned_session.sql never calls"
        " autodoctor.claim_orphaned_session(",
        "relay_events: no tests/pgtap/NN_relay_events.sql",
    ]
