"""Section ``contention`` (item 4): 32 clients racing for a handful of hot requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MODE, DELIVERY_MODES, GOAL_CONTENTION_P99_MS
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness


def measure(h: Harness) -> dict[str, Any]:
    """Item 4: 32 clients racing for a handful of hot requests, in every delivery mode."""
    p = h.prof
    reps = []
    by_mode: dict[str, list[dict[str, Any]]] = {m.name: [] for m in DELIVERY_MODES}
    warmup = 3
    for rep in range(p.reps):
        for mode in DELIVERY_MODES:
            h.set_mode(mode.name)
            try:
                with h.relay(mode.name):
                    res = race(h, rep, warmup)
            finally:
                h.set_mode(DEFAULT_MODE)
            res["mode"] = mode.name
            by_mode[mode.name].append(res)
            if mode.name == DEFAULT_MODE:
                reps.append(res)
            log(
                f"  contention rep {rep + 1} {mode.name}: winners {res['winners']} "
                f"p99 {res['win']['p99_ms']:.1f} ms, PT409 {res['pt409']} "
                f"p99 {res['lost']['p99_ms']:.1f} ms, other errors {res['other_errors']}"
            )
    return {"reps": reps, "by_mode": by_mode}


def race(h: Harness, rep: int, warmup: int) -> dict[str, Any]:
    p = h.prof
    count = (p.contention_rounds + warmup) * p.contention_hot
    lo, hi = h.hot_top, h.hot_top + count
    with h.admin() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            """
            INSERT INTO autodoctor.session_requests
                (id, customer_id, session_type, plan_code, status, customer_name, expires_at)
            SELECT bench.uid('hot', n), bench.uid('cust', n %% %(ncust)s), 'video', 'free',
                   'pending', 'Customer', now() + interval '24 hours'
              FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS n""",
            {"ncust": p.customers, "lo": lo, "hi": hi},
        )
    h.hot_top = hi
    since = h.now()
    h.checkpoint()
    res = h.loadgen(
        {
            "workload": "contention",
            "kind": "hot",
            "hot_base": lo,
            "clients": p.contention_clients,
            "hot": p.contention_hot,
            "rounds": p.contention_rounds,
            "warmup": warmup,
            "mech_base": p.mechanics - p.contention_clients * (rep + 1),
        }
    )
    accepted = h.sql(
        """
        SELECT count(*) FILTER (WHERE r.status = 'accepted'),
               count(*) FILTER (WHERE r.status = 'accepted' AND s.id IS NULL)
          FROM generate_series(%s::bigint, %s::bigint - 1) AS n
          JOIN autodoctor.session_requests r ON r.id = bench.uid('hot', n)
          LEFT JOIN autodoctor.sessions s ON s.request_id = r.id""",
        (lo, hi),
    )[0]
    res["accepted_requests"] = int(accepted[0]) - warmup * p.contention_hot
    res["accepted_without_session"] = int(accepted[1])
    h.cleanup_sessions(since)
    return res


def render(rep: Harness) -> str:
    if (msg := rep.missing("contention")) is not None:
        return msg
    reps = rep.s["contention"]["reps"]
    win99 = [r["win"]["p99_ms"] for r in reps]
    lost99 = [r["lost"]["p99_ms"] for r in reps]
    other = sum(r["other_errors"] for r in reps)
    worst = max([x for x in win99 + lost99 if x is not None], default=None)
    ok = (
        worst is not None
        and med(win99) < GOAL_CONTENTION_P99_MS
        and med(lost99) < GOAL_CONTENTION_P99_MS
        and other == 0
    )
    v = rep.goal(
        "4. contention p99 (winners and PT409), zero other errors",
        f"< {GOAL_CONTENTION_P99_MS:.0f} ms, 0 errors",
        f"{fmt(med(win99), 1)} / {fmt(med(lost99), 1)} ms, {other} errors",
        ok,
    )
    r0 = reps[0]
    lines = [
        f"{r0['clients']} clients, {r0['hot']} hot requests per round, {r0['rounds']} rounds per "
        f"repetition (after 3 warm-up rounds): every round all clients fire at once "
        f"({r0['clients'] // r0['hot']} per request; one connection each, one asyncio client "
        "process), "
        "one winner per request. Each transaction (role and claims, then the accept) is sent in "
        "one "
        "flight; latency runs from sending it to its commit (winner) or its error (PT409).",
        "",
        "| outcome | count (all reps) | p50 ms (median) | p99 ms (median) | p99 spread | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key, count in (
        ("winner (session created)", "win", "winners"),
        ("PT409 request_not_pending", "lost", "pt409"),
    ):
        lines.append(
            f"| {label} | {sum(r[count] for r in reps):,} | "
            f"{fmt(med([r[key]['p50_ms'] for r in reps]), 2)} | "
            f"{fmt(med([r[key]['p99_ms'] for r in reps]), 2)} | "
            f"{fspread([r[key]['p99_ms'] for r in reps], 2)} | "
            f"{fmt(max(r[key]['max_ms'] or 0 for r in reps), 2)} |"
        )
    by_mode = rep.s["contention"].get("by_mode", {})
    if len(by_mode) > 1:
        lines += [
            "",
            "The same race in every delivery mode (interleaved within each repetition):",
            "",
            "| delivery mode | winners p50 / p99 ms | PT409 p50 / p99 ms | other errors |",
            "|---|---:|---:|---:|",
        ]
        for name, rs in by_mode.items():
            lines.append(
                f"| {name} | {fmt(med([r['win']['p50_ms'] for r in rs]), 2)} / "
                f"{fmt(med([r['win']['p99_ms'] for r in rs]), 2)} | "
                f"{fmt(med([r['lost']['p50_ms'] for r in rs]), 2)} / "
                f"{fmt(med([r['lost']['p99_ms'] for r in rs]), 2)} | "
                f"{sum(r['other_errors'] for r in rs)} |"
            )
    lines.append("")
    exactly_once = all(
        r["accepted_requests"] == r["winners"] and r["accepted_without_session"] == 0 for r in reps
    )
    lines.append(
        f"Errors other than PT409: **{other}**"
        + (f" (e.g. {reps[0]['other_examples'][:2]})" if other else "")
        + f"; every hot request accepted exactly once with its session: "
        f"{exactly_once}. "
        f"Goal p99 < {GOAL_CONTENTION_P99_MS:.0f} ms for both, zero other errors: {v}."
    )
    return "\n".join(lines)
