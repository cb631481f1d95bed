"""The analysis of BENCHMARKS.md: each goal missed, by how much, why and what would close
it. The prose is bench/ANALYSIS.md.in; this module measures nothing and writes no prose:
it names the figures of a run (``figures``) and which paragraphs apply (``conditions``).

The template's syntax:

- ``@when NAME`` on a line of its own starts a paragraph block, kept when condition NAME
  holds; ``@otherwise`` starts the block used when no other block was kept. Lines
  starting with ``#`` before the first block are comments.
- ``{group.name}`` is a measured figure (``n/a`` when the run did not measure it); an
  unknown name is an error.
- ``[[NAME: text]]`` inside a paragraph is kept (`` text``) only when condition NAME holds.
- Lines of a paragraph are joined with spaces; a blank line separates paragraphs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .config import (
    BENCH,
    DEFAULT_MODE,
    DELIVERY_MODES,
    DIAG_VIEW,
    GOAL_ACCEPT_VS_BARE,
    GOAL_ACCEPT_VS_TPCB,
    GOAL_CONTENTION_P99_MS,
    GOAL_DASHBOARD_P99_MS,
    GOAL_DELIVERY_P99_MS,
    GOAL_DISPATCH_ROWS_S,
    GOAL_POOLED_VS_DIRECT,
    GOAL_VS_CLIENT_FLOW,
    GOAL_VS_PEER,
    POOL_STYLES,
)
from .counters import FLOOR_KEY
from .stats import fmt, fspread, med

if TYPE_CHECKING:
    from .report import Report

TEMPLATE = BENCH / "ANALYSIS.md.in"
STANDBY_SLOWER = 0.95  # streaming / stopped below this: the standby's cost is explained


def gap(measured: float | None, goal: float, higher_is_better: bool = True) -> str:
    if measured is None:
        return "n/a"
    if higher_is_better:
        return f"{(1 - measured / goal) * 100:.0f}% below the goal"
    return f"{(measured / goal - 1) * 100:.0f}% above the goal"


def pct(value: float | None) -> str:
    """A share of one core (0.28 -> 28%)."""
    return "n/a" if value is None else f"{value * 100:.0f}%"


def ratio(a: list[Any], b: list[Any]) -> float | None:
    return med([x / y for x, y in zip(a, b, strict=False) if x and y])


def figures(rep: Report) -> tuple[dict[str, str], dict[str, bool]]:
    """The named figures the template quotes, and its conditions."""
    s, r = rep.s, rep.r
    f: dict[str, str] = {}
    c: dict[str, bool] = {}
    f["env.cores"] = fmt(r.get("environment", {}).get("nproc"))
    counts = r.get("dataset", {}).get("counts", {})
    f["dataset.online_mechanics"] = fmt(counts.get("online mechanics"))
    f["dataset.pending_requests"] = fmt(counts.get("pending requests"))
    pr = s.get("profile", {})

    # Items 1 and 2: the accept transaction against tpcb-like and the bare floor.
    acc = f"accept@8[{DEFAULT_MODE}]"
    r1 = med(rep.ratio_per_rep(acc, "tpcb@8"))
    r2 = med(rep.ratio_per_rep(acc, "bare@8"))
    f["accept.vs_tpcb"], f["accept.vs_tpcb_gap"] = fmt(r1, 2), gap(r1, GOAL_ACCEPT_VS_TPCB)
    f["accept.vs_bare"], f["accept.vs_bare_gap"] = fmt(r2, 2), gap(r2, GOAL_ACCEPT_VS_BARE)
    f["accept.no_notify_vs_tpcb"] = fmt(med(rep.ratio_per_rep("accept@8[no_notify]", "tpcb@8")), 2)
    f["accept.no_notify_vs_bare"] = fmt(med(rep.ratio_per_rep("accept@8[no_notify]", "bare@8")), 2)
    locks = {
        n: med(rep.ratio_per_rep(f"accept@{n}[no_notify]", f"accept@{n}[{DEFAULT_MODE}]"))
        if len(DELIVERY_MODES) >= 2
        else None
        for n in r["profile"]["notify_clients"]
    }
    f["accept.lock_ratios"] = ", ".join(f"{fmt(v, 2)}x at {n}" for n, v in locks.items())
    c["accept_missed"] = "matrix" in s and (
        (r1 is not None and r1 < GOAL_ACCEPT_VS_TPCB)
        or (r2 is not None and r2 < GOAL_ACCEPT_VS_BARE)
    )
    f["profile.request_indexes"] = fmt(pr.get("request_indexes"))
    tables = pr.get("table_indexes", {})
    f["profile.session_indexes"] = fmt(tables.get("sessions"))
    f["profile.event_indexes"] = fmt(tables.get("session_events"))
    f["profile.session_foreign_keys"] = fmt(pr.get("session_foreign_keys"))
    nested = [float(row[3]) for row in pr.get("accept", {}).get("statements", []) if not row[5]]
    f["profile.accept_nested_max_ms"] = fmt(max(nested, default=None), 3)

    # Item 8: fsyncs per commit and the relay's delivery latency.
    def fsyncs(key: str) -> Any:
        return med([x.get("fsyncs_per_commit") for x in rep.matrix_runs(key)])

    fs_default, fs_tpcb = fsyncs(acc), fsyncs("tpcb@8")
    f["notify.fsyncs_default"], f["notify.fsyncs_tpcb"] = fmt(fs_default, 2), fmt(fs_tpcb, 2)
    f["notify.fsyncs_relay"] = fmt(fsyncs("accept@8[relay]"), 2)
    f["notify.fsyncs_no_notify"] = fmt(fsyncs("accept@8[no_notify]"), 2)
    c["fsyncs_missed"] = (
        "matrix" in s and fs_default is not None and fs_tpcb is not None and fs_default > fs_tpcb
    )
    relay_runs = s.get("notify", {}).get("runs", {}).get("relay", [])
    relay_p99 = med([x["latency"]["p99_ms"] for x in relay_runs if x.get("latency")])
    f["notify.relay_p50"] = fmt(
        med([x["latency"]["p50_ms"] for x in relay_runs if x.get("latency")]), 1
    )
    f["notify.relay_p99"] = fmt(relay_p99, 1)
    c["relay_latency_missed"] = relay_p99 is not None and relay_p99 >= GOAL_DELIVERY_P99_MS
    f["goal.delivery_p99_ms"] = fmt(GOAL_DELIVERY_P99_MS, 0)

    # Item 8's evaluation: relays reading the WAL (section decoding).
    dec = s.get("decoding", {})

    def dec_med(group: str, mode: str, pick: Any) -> Any:
        return med([pick(x) for x in dec.get(group, {}).get(mode, [])])

    for mode in ("in_transaction", "relay", "logical_message", "logical_rows"):
        f[f"decoding.{mode}_fsyncs"] = fmt(
            dec_med("runs", mode, lambda x: x.get("fsyncs_per_accept")), 2
        )
        f[f"decoding.{mode}_p99"] = fmt(dec_med("runs", mode, lambda x: x["latency"]["p99_ms"]), 1)
        f[f"decoding.{mode}_held_p99"] = fmt(
            dec_med("held", mode, lambda x: x["latency"]["p99_ms"]), 1
        )
        f[f"decoding.{mode}_tps"] = fmt(dec_med("runs", mode, lambda x: x["pgbench"]["tps"]))
    f["decoding.hold_s"] = fmt(dec.get("hold_s"), 0)
    c["decoding_run"] = bool(dec.get("runs", {}).get("logical_message"))
    relay_held = dec_med("held", "relay", lambda x: x["latency"]["p99_ms"])
    c["relay_held_missed"] = relay_held is not None and relay_held >= GOAL_DELIVERY_P99_MS

    # Counters: the accept's writes against the bare floor's.
    cnt = s.get("counters", {}).get("runs", {})

    def counter(key: str, field: str) -> Any:
        return med([x[field] for x in cnt.get(key, {}).get("steady", [])])

    floor = FLOOR_KEY if FLOOR_KEY in cnt else "bare"
    a_bytes, b_bytes = counter(acc.replace("@8", ""), "wal_bytes"), counter(floor, "wal_bytes")
    f["counters.accept_bytes"], f["counters.bare_bytes"] = fmt(a_bytes), fmt(b_bytes)
    f["counters.accept_records"] = fmt(counter(acc.replace("@8", ""), "wal_records"), 1)
    f["counters.bare_records"] = fmt(counter(floor, "wal_records"), 1)
    f["counters.accept_index"] = fmt(counter(acc.replace("@8", ""), "index_entries"), 1)
    f["counters.bare_index"] = fmt(counter(floor, "index_entries"), 1)
    f["counters.accept_buffers"] = fmt(counter(acc.replace("@8", ""), "buffers"))
    f["counters.bare_buffers"] = fmt(counter(floor, "buffers"))
    c["wal_missed"] = a_bytes is not None and b_bytes is not None and a_bytes > b_bytes

    # Item 6 (the peer): create + accept pairs against Procrastinate's defer + fetch.
    peer = s.get("peer", {})
    pr_ratio = (
        ratio(
            [x["ops_per_s"] for x in peer.get("runs", {}).get("ours", [])],
            [x["ops_per_s"] for x in peer.get("runs", {}).get("procrastinate", [])],
        )
        if peer.get("available")
        else None
    )
    f["peer.ratio"] = fmt(pr_ratio, 2)
    c["peer_missed"] = pr_ratio is not None and pr_ratio < GOAL_VS_PEER
    relay_pairs = peer.get("runs", {}).get("ours_relay", []) if peer.get("available") else []
    pr_relay = ratio(
        [x["ops_per_s"] for x in relay_pairs],
        [x["ops_per_s"] for x in peer.get("runs", {}).get("procrastinate", [])],
    )
    f["peer.relay_ratio"] = fmt(pr_relay, 2)
    # Does relay mode (no NOTIFY in the writers) lift the pairs clearly (10 %)?
    helps = pr_relay is not None and pr_ratio is not None and pr_relay > pr_ratio * 1.1
    c["peer_relay_helps"] = helps
    c["peer_relay_no_help"] = pr_relay is not None and not helps
    c["peer_no_relay_run"] = pr_relay is None

    # Item 3: the driver against the client-side flow.
    py = s.get("python", {}).get("runs", {})
    flow = [x["ops_per_s"] for x in py.get("client_flow", [])]
    r3 = ratio([x["ops_per_s"] for x in py.get(f"driver_accept[{DEFAULT_MODE}]", [])], flow)
    r3n = ratio([x["ops_per_s"] for x in py.get("driver_accept[no_notify]", [])], flow)
    f["driver.vs_flow"], f["driver.vs_flow_gap"] = fmt(r3, 2), gap(r3, GOAL_VS_CLIENT_FLOW)
    f["driver.no_notify_vs_flow"] = fmt(r3n, 2)
    c["driver_missed"] = "python" in s and r3 is not None and r3 < GOAL_VS_CLIENT_FLOW

    # Item 4: contention.
    con = s.get("contention", {})
    reps = con.get("reps", [])
    w99 = med([x["win"]["p99_ms"] for x in reps])
    l99 = med([x["lost"]["p99_ms"] for x in reps])
    other = sum(x["other_errors"] for x in reps)
    nn = con.get("by_mode", {}).get("no_notify", [])
    f["contention.win_p99"], f["contention.lost_p99"] = fmt(w99, 1), fmt(l99, 1)
    f["contention.no_notify_win_p99"] = fmt(med([x["win"]["p99_ms"] for x in nn]), 1)
    f["goal.contention_p99_ms"] = f"{GOAL_CONTENTION_P99_MS:.0f}"
    clients, hot = (reps[0]["clients"], reps[0]["hot"]) if reps else (None, None)
    f["contention.clients"] = fmt(clients)
    f["contention.ahead"] = fmt(clients - 1 if clients else None)
    f["contention.losers"] = fmt(clients // hot - 1 if clients and hot else None)
    c["contention_missed"] = "contention" in s and (
        (w99 or 0) >= GOAL_CONTENTION_P99_MS or (l99 or 0) >= GOAL_CONTENTION_P99_MS or bool(other)
    )

    # Item 6: dashboards.
    dash = s.get("dashboards", {})
    inc = med([x["p99_ms"] for x in dash.get("reps", {}).get("incoming_requests", [])])
    mine = med([x["p99_ms"] for x in dash.get("reps", {}).get("my_sessions", [])])
    f["dashboards.incoming_p99"], f["dashboards.my_sessions_p99"] = fmt(inc, 1), fmt(mine, 2)
    f["dashboards.diagnostic_p99"] = fmt(
        med([x["p99_ms"] for x in dash.get("reps", {}).get(DIAG_VIEW, [])]), 2
    )
    jit = re.search(
        r"JIT:.*?Total ([\d.]+) ms", dash.get("plans", {}).get("incoming_requests", ""), re.S
    )
    f["dashboards.incoming_jit_ms"] = fmt(float(jit.group(1)) if jit else None, 1)
    c["incoming_jit"] = jit is not None
    mplan = re.search(r"Execution Time: ([\d.]+) ms", dash.get("plans", {}).get("my_sessions", ""))
    f["dashboards.my_sessions_plan_ms"] = fmt(float(mplan.group(1)) if mplan else None, 3)
    f["goal.dashboard_p99_ms"] = f"{GOAL_DASHBOARD_P99_MS:.0f}"
    c["incoming_missed"] = inc is not None and inc >= GOAL_DASHBOARD_P99_MS
    iplan = dash.get("plans", {}).get("incoming_requests", "")
    removed = re.search(r"Rows Removed by Filter: (\d+)", iplan)
    ibuf = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", iplan)
    iexec = re.search(r"Execution Time: ([\d.]+) ms", iplan)
    f["dashboards.incoming_rows_read"] = fmt(100 + int(removed.group(1)) if removed else None)
    f["dashboards.incoming_buffers"] = fmt(
        int(ibuf.group(1)) + int(ibuf.group(2) or 0) if ibuf else None
    )
    f["dashboards.incoming_exec_ms"] = fmt(float(iexec.group(1)) if iexec else None, 2)
    f["dashboards.incoming_p50"] = fmt(
        med([x["p50_ms"] for x in dash.get("reps", {}).get("incoming_requests", [])]), 2
    )
    c["my_sessions_missed"] = mine is not None and mine >= GOAL_DASHBOARD_P99_MS

    # Item 7: auto_assign_orphaned_sessions.
    runs = s.get("dispatch", {}).get("runs", {"single": [], "parallel": []})
    failures = sorted({x for run in runs["single"] + runs["parallel"] for x in run["failures"]})
    rate = med([x["rows_per_s"] for x in runs["single"]])
    f["dispatch.failure"] = (
        failures[0].replace("\\n", "\n").split("\n")[0][:200] if failures else ""
    )
    f["dispatch.rows_per_s"], f["dispatch.gap"] = fmt(rate), gap(rate, GOAL_DISPATCH_ROWS_S)
    c["dispatch_failed"] = "dispatch" in s and bool(failures)
    c["dispatch_slow"] = (
        "dispatch" in s and not failures and rate is not None and rate < GOAL_DISPATCH_ROWS_S
    )
    fns = {row[0]: row for row in (pr.get("dispatch") or {}).get("functions", [])}
    total = fns.get("autodoctor.auto_assign_orphaned_sessions")
    # The KNN search of the set-based assignment (one call per pass).
    pick = fns.get("autodoctor._nearest_available_mechanics")
    c["dispatch_profiled"] = bool(total and pick and float(total[2]))
    if c["dispatch_profiled"]:
        assert total and pick
        f["dispatch.pick_share"] = f"{100 * float(pick[2]) / float(total[2]):.0f}%"
        f["dispatch.pick_calls"] = f"{int(pick[1]):,}"
    else:
        for k in ("pick_share", "pick_calls"):
            f[f"dispatch.{k}"] = "n/a"

    # Item 5: the e-mail fan-out of create_session_request.
    fn = {row[0]: row for row in pr.get("create", {}).get("functions", [])}
    total, fan = (
        fn.get("autodoctor.create_session_request"),
        fn.get("autodoctor._queue_new_request_emails"),
    )
    c["fanout_profiled"] = bool(total and fan and float(total[2]))
    share = (
        100 * float(fan[2]) / float(total[2]) if c["fanout_profiled"] and total and fan else None
    )
    f["profile.fanout_share"] = "n/a" if share is None else f"{share:.0f}%"

    # Item 11: pgbouncer fan-in, then the standby.
    sc = s.get("scale", {})
    c["pooler_missed"] = c["standby_slower"] = False
    for k in ("top_clients", "missed", "spreads", "waits", "pool_size", "direct_clients",
              "pgbench_cpu_top", "pgbouncer_cpu_top", "pgbench_cpu_direct",
              "standby_vs_stopped"):  # fmt: skip
        f[f"scale.{k}"] = "n/a"
    if sc:
        sruns, direct_n = sc["runs"], sc.get("direct_clients", 8)
        top = max(n for _, k, n in sc["plan"] if k == "pooled")

        def tps(key: str) -> list[Any]:
            return [x.get("tps") for x in sruns.get(key, [])]

        ratios = {
            st: ratio(tps(f"{st}:pooled@{top}"), tps(f"{st}:direct@{direct_n}"))
            for st in POOL_STYLES
        }
        missed = {st: v for st, v in ratios.items() if v is not None and v < GOAL_POOLED_VS_DIRECT}
        c["pooler_missed"] = bool(missed)
        per_rep = {
            st: [
                a / b
                for a, b in zip(
                    tps(f"{st}:pooled@{top}"), tps(f"{st}:direct@{direct_n}"), strict=False
                )
                if a and b
            ]
            for st in POOL_STYLES
        }
        pooled = [x for st in POOL_STYLES for x in sruns.get(f"{st}:pooled@{top}", [])]
        direct = [x for st in POOL_STYLES for x in sruns.get(f"{st}:direct@{direct_n}", [])]
        waits = {
            st: med([x.get("pool_wait_ms") for x in sruns.get(f"{st}:pooled@{top}", [])])
            for st in POOL_STYLES
        }
        f.update({
            "scale.top_clients": fmt(top),
            "scale.missed": "; ".join(
                f"{st} {fmt(v, 2)}x, {gap(v, GOAL_POOLED_VS_DIRECT)}" for st, v in missed.items()
            ),
            "scale.spreads": "; ".join(f"{st} {fspread(per_rep[st], 2)}" for st in POOL_STYLES),
            "scale.waits": ", ".join(f"{st} {fmt(waits[st], 0)} ms" for st in POOL_STYLES),
            "scale.pool_size": fmt(sc.get("pool_size")),
            "scale.direct_clients": fmt(direct_n),
            "scale.pgbench_cpu_top": pct(med([x.get("pgbench_cpu") for x in pooled])),
            "scale.pgbouncer_cpu_top": pct(med([x.get("pooler_cpu") for x in pooled])),
            "scale.pgbench_cpu_direct": pct(med([x.get("pgbench_cpu") for x in direct])),
        })  # fmt: skip
        sb = sc.get("standby")
        if sb:
            on = ratio(
                [x.get("tps") for x in sb["runs"]["streaming"]],
                [x.get("tps") for x in sb["runs"]["stopped"]],
            )
            f["scale.standby_vs_stopped"] = fmt(on, 2)
            c["standby_slower"] = on is not None and on < STANDBY_SLOWER
    return f, c


FIGURE = re.compile(r"\{([a-z_]+\.[a-z0-9_]+)\}")
OPTIONAL = re.compile(r"\[\[([a-z_]+):(.*?)\]\]", re.S)


def fill(text: str, f: dict[str, str], c: dict[str, bool]) -> str:
    text = OPTIONAL.sub(lambda m: m.group(2) if c[m.group(1)] else "", text)
    return FIGURE.sub(lambda m: f[m.group(1)], text)


def blocks(template: str) -> list[tuple[str, str]]:
    """(condition, paragraphs) in template order; ``@otherwise`` is condition ''."""
    out: list[tuple[str, list[str]]] = []
    for line in template.splitlines():
        if line.startswith("@when "):
            out.append((line[6:].strip(), []))
        elif line.strip() == "@otherwise":
            out.append(("", []))
        elif out:
            out[-1][1].append(line)
    result = []
    for cond, lines in out:
        paras = "\n".join(lines).strip().split("\n\n")
        result.append((cond, "\n\n".join(" ".join(p.split("\n")) for p in paras)))
    return result


def render(rep: Report) -> str:
    f, c = figures(rep)
    chosen = [fill(text, f, c) for cond, text in blocks(TEMPLATE.read_text()) if cond and c[cond]]
    if not chosen:
        chosen = [fill(text, f, c) for cond, text in blocks(TEMPLATE.read_text()) if not cond]
    return "\n\n".join(chosen)
