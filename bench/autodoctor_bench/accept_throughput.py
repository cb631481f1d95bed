"""Section ``matrix`` (items 1, 2, 5 and the NOTIFY lock): pgbench runs of tpcb-like, accept in
every delivery mode, its bare floor, create_session_request and submit_intake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_MODE,
    DELIVERY_MODES,
    GOAL_ACCEPT_VS_BARE,
    GOAL_ACCEPT_VS_TPCB,
    GOAL_CREATE_VS_ACCEPT,
)
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness


def matrix_plan(h: Harness) -> list[dict[str, Any]]:
    p = h.prof
    plan: list[dict[str, Any]] = []
    for c in sorted(set(p.accept_clients) | set(p.notify_clients)):
        if c in p.accept_clients:
            plan.append({"kind": "tpcb", "clients": c})
        for mode in DELIVERY_MODES:
            if mode.name == DEFAULT_MODE and (c in p.accept_clients or c in p.notify_clients):
                plan.append({"kind": "accept", "clients": c, "mode": mode.name})
                if c == 8:
                    plan.append({"kind": "bare", "clients": c})
            elif c in p.notify_clients:
                plan.append({"kind": "accept", "clients": c, "mode": mode.name})
    plan.append({"kind": "create", "clients": 8})
    plan.append({"kind": "submit_intake", "clients": 8})
    return plan


@staticmethod
def run_key(entry: dict[str, Any]) -> str:
    key = f"{entry['kind']}@{entry['clients']}"
    return key + (f"[{entry['mode']}]" if entry.get("mode") else "")


def measure(h: Harness) -> dict[str, Any]:
    """Items 1, 2, 5 and the NOTIFY lock: pgbench runs, interleaved within each rep."""
    p = h.prof
    plan = matrix_plan(h)
    runs: dict[str, list[dict[str, Any]]] = {run_key(e): [] for e in plan}
    for rep in range(p.reps):
        log(f"matrix rep {rep + 1}/{p.reps}: " + ", ".join(run_key(e) for e in plan))
        for entry in plan:
            key = run_key(entry)
            tag = f"r{rep}-{key.replace('@', '-').replace('[', '-').replace(']', '')}"
            c = entry["clients"]
            if entry["kind"] == "tpcb":
                h.checkpoint()
                res = h.pgbench(tag, "pgbench", c, p.seconds, builtin="tpcb-like")
            elif entry["kind"] == "accept":
                h.set_mode(entry["mode"])
                with h.relay(entry["mode"]):
                    res = h.accept_run(tag, c, p.seconds)
                h.set_mode(DEFAULT_MODE)
            elif entry["kind"] == "bare":
                res = h.accept_run(
                    tag, c, p.seconds, script="bare_accept.sql", user="postgres", key="bare"
                )
            else:
                h.checkpoint()
                res = h.pgbench(
                    tag,
                    "bench",
                    c,
                    p.seconds,
                    script=f"{entry['kind']}.sql",
                    user="authenticator",
                    defines={"ncust": p.customers},
                )
                h.stamp_fanned_out()
            runs[key].append(res)
            if res.get("error"):
                log(f"  {key}: ERROR {res['error'][-300:]}")
            else:
                log(f"  {key}: {res['tps']:.0f} tps, p99 {res['p99_ms']:.1f} ms")
    return {"plan": plan, "runs": runs}


def render_runs(rep: Harness) -> str:
    if (msg := rep.missing("matrix")) is not None:
        return msg
    p = rep.r["profile"]
    rows = [
        "| run | clients | tps median | tps spread | p50 ms | p99 ms | WAL fsyncs per commit |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in rep.s["matrix"]["plan"]:
        key = run_key(entry)
        runs = rep.matrix_runs(key)
        name = {
            "tpcb": "pgbench tpcb-like",
            "bare": "bare floor (plain SQL)",
            "create": "create_session_request",
            "submit_intake": "submit_intake",
        }.get(entry["kind"])
        if entry["kind"] == "accept":
            name = f"accept_session_request, {entry['mode']}"
        rows.append(
            f"| {name} | {entry['clients']} | {fmt(med(rep.tps(key)))} | {fspread(rep.tps(key))} "
            f"| {fmt(med([r.get('p50_ms') for r in runs]), 2)} | "
            f"{fmt(med([r.get('p99_ms') for r in runs]), 2)} | "
            f"{fmt(med([r.get('fsyncs_per_commit') for r in runs]), 2)} |"
        )
    errors = [
        f"- `{k}` rep {i + 1}: {r['error'][-400:]}"
        for k, runs in rep.s["matrix"]["runs"].items()
        for i, r in enumerate(runs)
        if r.get("error")
    ]
    text = "\n".join(rows)
    if errors:
        text += "\n\nRuns that failed:\n" + "\n".join(errors)
    return (
        text
        + f"\n\n{p['reps']} repetitions of {p['seconds']:.0f} s each, interleaved in this order "
        "within every repetition. WAL fsyncs per commit: `pg_stat_wal.wal_sync` over the "
        "transactions committed in the run (`pg_stat_database.xact_commit`, whole cluster); "
        "below 1 means commits shared a flush (group commit)."
    )


def render_vs_tpcb(rep: Harness) -> str:
    if (msg := rep.missing("matrix")) is not None:
        return msg
    lines = [
        "| clients | accept tps (median) | tpcb-like tps (median) | ratio median | ratio spread | "
        "goal |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    verdict_text = "n/a"
    for c in rep.r["profile"]["accept_clients"]:
        a, b = f"accept@{c}[{DEFAULT_MODE}]", f"tpcb@{c}"
        ratios = rep.ratio_per_rep(a, b)
        goal = ""
        if c == 8:
            ok = med(ratios) >= GOAL_ACCEPT_VS_TPCB if ratios else None
            verdict_text = rep.goal(
                "1. accept vs tpcb-like @8",
                f">= {GOAL_ACCEPT_VS_TPCB}x",
                f"{fmt(med(ratios), 2)}x",
                ok,
            )
            goal = f">= {GOAL_ACCEPT_VS_TPCB}x: {verdict_text}"
        lines.append(
            f"| {c} | {fmt(med(rep.tps(a)))} | {fmt(med(rep.tps(b)))} | {fmt(med(ratios), 2)}x "
            f"| {fspread(ratios, 2)} | {goal} |"
        )
    return "\n".join(lines)


def render_vs_bare(rep: Harness) -> str:
    if (msg := rep.missing("matrix")) is not None:
        return msg
    a, b = f"accept@8[{DEFAULT_MODE}]", "bare@8"
    ratios = rep.ratio_per_rep(a, b)
    ok = med(ratios) >= GOAL_ACCEPT_VS_BARE if ratios else None
    v = rep.goal(
        "2. accept vs bare floor @8", f">= {GOAL_ACCEPT_VS_BARE}x", f"{fmt(med(ratios), 2)}x", ok
    )
    return (
        "| accept tps @8 | bare floor tps @8 | ratio median | spread | goal >= "
        f"{GOAL_ACCEPT_VS_BARE}x |\n"
        f"|---:|---:|---:|---:|---|\n"
        f"| {fmt(med(rep.tps(a)))} | {fmt(med(rep.tps(b)))} | {fmt(med(ratios), 2)}x | "
        f"{fspread(ratios, 2)} | {v} |"
    )


def render_create_and_intake(rep: Harness) -> str:
    if (msg := rep.missing("matrix")) is not None:
        return msg
    lines = [
        "| function (8 clients) | tps median | spread | p50 ms | p99 ms | vs tpcb-like @8 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in ("create", "submit_intake"):
        key = f"{kind}@8"
        runs = rep.matrix_runs(key)
        ratios = rep.ratio_per_rep(key, "tpcb@8")
        vs_accept = rep.ratio_per_rep(key, f"accept@8[{DEFAULT_MODE}]")
        rep.goal(
            f"5. {kind} vs accept @8 ({DEFAULT_MODE})",
            f">= {GOAL_CREATE_VS_ACCEPT}x",
            f"{fmt(med(vs_accept), 2)}x",
            None if med(vs_accept) is None else med(vs_accept) >= GOAL_CREATE_VS_ACCEPT,
        )
        lines.append(
            f"| {'create_session_request' if kind == 'create' else 'submit_intake'} | "
            f"{fmt(med(rep.tps(key)))} | {fspread(rep.tps(key))} | "
            f"{fmt(med([r.get('p50_ms') for r in runs]), 2)} | "
            f"{fmt(med([r.get('p99_ms') for r in runs]), 2)} | "
            f"{fmt(med(ratios), 2)}x |"
        )
    return "\n".join(lines)


def render_notify_lock(rep: Harness) -> str:
    if (msg := rep.missing("matrix")) is not None:
        return msg
    fsyncs = [
        "WAL fsyncs per commit at 8 clients (`pg_stat_wal.wal_sync` over the run's commits; "
        "below 1 when commits share a flush):",
        "",
        "| run @8 | fsyncs per commit (median) | spread |",
        "|---|---:|---:|",
    ]
    tpcb = [r.get("fsyncs_per_commit") for r in rep.matrix_runs("tpcb@8")]
    fsyncs.append(f"| pgbench tpcb-like | {fmt(med(tpcb), 2)} | {fspread(tpcb, 2)} |")
    for m in DELIVERY_MODES:
        runs = [r.get("fsyncs_per_commit") for r in rep.matrix_runs(f"accept@8[{m.name}]")]
        fsyncs.append(f"| accept, {m.name} | {fmt(med(runs), 2)} | {fspread(runs, 2)} |")
        if m.name == DEFAULT_MODE:
            ok = None if med(runs) is None or med(tpcb) is None else med(runs) <= med(tpcb)
            rep.goal(
                f"8. fsyncs per commit @8, default mode ({DEFAULT_MODE}) vs tpcb-like",
                "<= tpcb-like's",
                f"{fmt(med(runs), 2)} vs {fmt(med(tpcb), 2)}",
                ok,
            )
    lines = [
        "| clients | "
        + " | ".join(f"{m.name} tps (median, spread)" for m in DELIVERY_MODES)
        + " | "
        + " | ".join(f"{m.name} / {DEFAULT_MODE}" for m in DELIVERY_MODES[1:])
        + " |",
        "|---:|" + "---:|" * (2 * len(DELIVERY_MODES) - 1),
    ]
    for c in rep.r["profile"]["notify_clients"]:
        cells = []
        for m in DELIVERY_MODES:
            key = f"accept@{c}[{m.name}]"
            cells.append(f"{fmt(med(rep.tps(key)))} ({fspread(rep.tps(key))})")
        ratios = []
        for m in DELIVERY_MODES[1:]:
            rr = rep.ratio_per_rep(f"accept@{c}[{m.name}]", f"accept@{c}[{DEFAULT_MODE}]")
            ratios.append(f"{fmt(med(rr), 2)}x ({fspread(rr, 2)})")
        lines.append(f"| {c} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    waits = []
    for c in rep.r["profile"]["notify_clients"]:
        for m in DELIVERY_MODES:
            total: dict[str, int] = {}
            for run in rep.matrix_runs(f"accept@{c}[{m.name}]"):
                for k, v in (run.get("waits") or {}).items():
                    total[k] = total.get(k, 0) + v
            samples = total.pop("_samples", 0)
            if not samples:
                continue
            top = sorted(total.items(), key=lambda kv: -kv[1])[:4]
            waits.append(
                f"| {c} | {m.name} | "
                + ", ".join(f"`{k}` {v / samples:.1f}" for k, v in top)
                + " |"
            )
    if waits:
        lines += [
            "",
            "What the pgbench backends were doing, sampled from `pg_stat_activity` every 100 ms "
            "during "
            "the runs (average number of backends per sample in each state; `Lock:object` at "
            "`END` is "
            "the NOTIFY queue lock, `IO:WALSync` the commit flush, `CPU:running` working):",
            "",
            "| clients | mode | top states (backends per sample) |",
            "|---:|---|---|",
            *waits,
        ]
    return "\n".join(lines) + "\n\n" + "\n".join(fsyncs)
