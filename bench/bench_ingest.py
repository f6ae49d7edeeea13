"""Benchmark 2: what 1M metric points cost in Firestore (emulator).

One run logs 10 keys x 100,000 steps through ``run.add_metric``; then the
benchmark reads the run's metric chunks back and counts documents, points
and Firestore storage bytes, and takes the writer's own count of write RPCs.
"Queryable" is the moment a reader sees every point.
"""

from __future__ import annotations

import time

from bench import tracking
from bench.common import Context, Section, Table, fmt_bytes, fmt_s


def run(ctx: Context) -> Section:
    """Log the points, read them back, report counts."""
    section = Section("ingest", "2. Ingest efficiency (metric points → Firestore)")
    table = Table("ingest of metric points", ["measure", "value"])
    section.tables.append(table)
    missing = tracking.aletheia_available()
    if missing:
        table.add("aletheia", "not available")
        section.note(f"aletheia side not available: {missing}")
        return section

    from aletheia.cloud import clients, config, layout

    keys = [f"m{i}" for i in range(ctx.sized(10, 2))]
    steps = ctx.sized(100_000, 5_000)
    total = len(keys) * steps
    db = clients.firestore_client(config.resolve())  # the reader exists before the clock starts
    t0 = time.perf_counter()
    res = tracking.aletheia_loop(ctx.project, "bench-ingest", keys, steps)
    run_id = res.extra["run_id"]
    path = layout.metrics(ctx.project, "bench-ingest", run_id)
    stored = tracking.read_back(db, path)
    # A writer that fell behind gets a minute after the run's end to catch up, not more.
    give_up = time.perf_counter() + 60
    while stored["points"] < total and time.perf_counter() < give_up:
        time.sleep(0.5)
        stored = tracking.read_back(db, path)
    queryable_s = time.perf_counter() - t0
    writer = tracking.writer_stats(res.extra["run"])

    rpcs = writer.get("commits", writer.get("write_rpcs", writer.get("rpcs")))
    table.add("points logged", f"{total:,} ({len(keys)} keys x {steps:,} steps)")
    table.add("points stored", f"{stored['points']:,}")
    table.add("metric documents", f"{stored['documents']:,}")
    table.add("points per document", f"{stored['points'] / max(1, stored['documents']):,.0f}")
    table.add(
        "commit RPCs (store's count, failed included)",
        f"{rpcs:,}" if rpcs is not None else "not exposed",
    )
    table.add("Firestore storage bytes", fmt_bytes(stored["bytes"]))
    table.add("bytes per stored point", f"{stored['bytes'] / max(1, stored['points']):.1f}")
    table.add("logging loop", fmt_s(res.loop_s))
    table.add("until durable (run ended)", fmt_s(res.durable_s))
    table.add(
        "until all queryable",
        fmt_s(queryable_s) if stored["points"] == total else "never (see notes)",
    )
    if writer:
        table.add("writer stats", ", ".join(f"{k}={v}" for k, v in writer.items()))
    section.counts.update(
        points_logged=total,
        points_stored=stored["points"],
        documents=stored["documents"],
        bytes=stored["bytes"],
        write_rpcs=rpcs,
        writer=writer,
    )
    if stored["points"] != total:
        section.note(f"LOST POINTS: {total - stored['points']:,} of {total:,} never arrived")
    return section
