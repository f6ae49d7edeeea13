"""Benchmark 1: the cost of one metric call inside a training loop.

aletheia's ``run.add_metric`` (buffer + journal, a background writer to
Firestore) against MLflow's ``log_metric`` to a local file store and to a
local SQLite store. MLflow writes synchronously (~1-10 ms per call), so it
logs fewer calls than aletheia; the per-call figures compare, and the table
says how many calls each side made.
"""

from __future__ import annotations

from bench import tracking
from bench.common import (
    Context,
    Section,
    Table,
    fmt_s,
    fmt_us,
    median,
    percentile,
    ratio,
)

TARGET = 100.0  # aletheia at least this many times cheaper per call than MLflow's file store
#: Issue 20's goals: start_run on the training thread, the call's tail, time until durable.
START_GOAL_S = 0.050
P99_GOAL_S = 15e-6
MAX_GOAL_S = 2e-3
DURABLE_GOAL_S = 1.0


def run(ctx: Context) -> Section:
    """Measure every side and build the table."""
    section = Section("logging", "1. Logging overhead (per metric call, training-like loop)")
    table = Table(
        "per-call cost of one metric call",
        [
            "tracker",
            "calls",
            "p50",
            "p99",
            "max",
            "mean",
            "calls > 2 ms",
            "loop",
            "until durable",
            "run start",
            "set-up",
            "p50 vs aletheia",
        ],
    )
    section.tables.append(table)
    sides: dict[str, tracking.LoopResult] = {}

    missing = tracking.aletheia_available()
    if missing:
        table.add("aletheia add_metric", "-", "not available", *["-"] * 9)
        section.note(f"aletheia side not available: {missing}")
    else:
        n = ctx.sized(100_000, 2_000)
        sides["aletheia"] = tracking.aletheia_loop(ctx.project, "bench-logging", ["loss"], n)
        section.counts["aletheia_calls"] = n
        section.counts["aletheia_writer"] = tracking.writer_stats(sides["aletheia"].extra["run"])
        section.counts["aletheia_capture"] = sides["aletheia"].extra["capture"]
        if not ctx.quick:  # the emulator's cost per chunk document, apart from aletheia's
            floor = tracking.commit_floor(ctx.project, 100)
            sides["aletheia"].extra["floor"] = section.counts["commit_floor"] = floor
        # The same loop doing nothing but a list append: the machine's own stalls.
        plain = tracking.baseline_loop(["loss"], n)
        sides["baseline"] = tracking.LoopResult(
            len(plain), plain, sum(plain), sum(plain), {"start_s": 0.0, "setup_s": 0.0}
        )

    peer_missing = tracking.mlflow_available()
    peers = {
        "mlflow file store": (tracking.mlflow_file_uri, ctx.sized(5_000, 100)),
        "mlflow sqlite": (tracking.mlflow_sqlite_uri, ctx.sized(500, 50)),
    }
    for label, (make_uri, n) in peers.items():
        missing_here = peer_missing
        if not missing_here and label == "mlflow sqlite":
            missing_here = tracking.mlflow_sqlite_available()
        if missing_here:
            table.add(label, "-", missing_here, *["-"] * 9)
            section.note(f"{label}: {missing_here}")
            continue
        uri = make_uri(ctx.work / label.replace(" ", "-"))
        sides[label] = tracking.mlflow_loop(uri, ["loss"], n)
        section.counts[f"{label}_calls"] = n

    base = median(sides["aletheia"].per_call_s) if "aletheia" in sides else float("nan")
    order = ["aletheia", "baseline"] + [k for k in sides if k not in ("aletheia", "baseline")]
    sides = {k: sides[k] for k in order if k in sides}
    for label, res in sides.items():
        p50 = median(res.per_call_s)
        table.add(
            label,
            f"{res.calls:,}",
            fmt_us(p50),
            fmt_us(percentile(res.per_call_s, 0.99)),
            fmt_us(max(res.per_call_s)),
            fmt_us(sum(res.per_call_s) / res.calls),
            f"{sum(1 for c in res.per_call_s if c > MAX_GOAL_S):,}",
            fmt_s(res.loop_s) if label != "baseline" else "-",
            fmt_s(res.durable_s) if label != "baseline" else "-",
            fmt_s(res.extra["start_s"]) if label != "baseline" else "-",
            fmt_s(res.extra["setup_s"]) if label != "baseline" else "-",
            ratio(p50, base),
        )
    if ctx.quick:
        section.note("quick sizes: the figures check that the benchmark runs, not the targets")
    else:
        _verdict(section, sides)
    return section


def _verdict(section: Section, sides: dict[str, tracking.LoopResult]) -> None:
    if "aletheia" not in sides:
        return
    ours = median(sides["aletheia"].per_call_s)
    section.counts["aletheia_p50_s"] = ours
    if "mlflow file store" not in sides:
        section.note("no MLflow figures: the target (≥100x cheaper than its file store) unchecked")
        return
    times = median(sides["mlflow file store"].per_call_s) / ours
    verdict = "met" if times >= TARGET else "NOT met"
    section.note(
        f"target ≥{TARGET:.0f}x cheaper per call than MLflow's file store: {verdict} "
        f"({times:,.0f}x at p50)"
    )
    aletheia = sides["aletheia"]
    section.note(
        "until durable includes the final flush to Firestore at the run's end; "
        f"aletheia's flush took {fmt_s(aletheia.durable_s - aletheia.loop_s)} after the loop"
    )
    start = aletheia.extra["start_s"]
    final = aletheia.durable_s - aletheia.loop_s
    p99 = percentile(aletheia.per_call_s, 0.99)
    worst = max(aletheia.per_call_s)
    for what, got, goal, shown in (
        ("start_run on the training thread", start, START_GOAL_S, fmt_s),
        ("add_metric p99", p99, P99_GOAL_S, fmt_us),
        ("add_metric max", worst, MAX_GOAL_S, fmt_us),
        ("until durable after the loop", final, DURABLE_GOAL_S, fmt_s),
    ):
        verdict = "met" if got <= goal else "NOT met"
        section.note(f"goal {what} ≤{shown(goal)}: {verdict} ({shown(got)})")
    floor = aletheia.extra.get("floor")
    if floor:
        section.note(
            f"the server's share of a final flush of 100 chunks ({int(floor['chunk_points']):,} "
            f"points each): {fmt_s(floor['chunks_one_at_a_time_s'])} one batch at a time, "
            f"{fmt_s(floor['chunks_side_by_side_s'])} side by side; the same documents as one "
            f"opaque bytes field each: {fmt_s(floor['opaque_bytes_side_by_side_s'])}"
        )
    if "baseline" in sides:
        base = sides["baseline"].per_call_s
        section.note(
            f"baseline (a list append in the same loop, same moment): p99 "
            f"{fmt_us(percentile(base, 0.99))}, max {fmt_us(max(base))}, "
            f"{sum(1 for c in base if c > MAX_GOAL_S):,} calls over 2 ms: the machine's own stalls"
        )
