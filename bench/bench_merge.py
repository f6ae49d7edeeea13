"""Benchmark 7: merging 1,000 file profiles into one (a dataset version's table profile).

What the storage function does when a version's last file is profiled
(``aletheia.stats.versionprofile``): the files' stored profiles, read back
from JSON, merged by ``aletheia.stats.merge.merge_profiles``. The parts are
real profiles of distinct files of benchmark 4's seven-column table (ids,
floats, a category, counts, times, flags), each past the exact regime of
its sketches; a pool of distinct parts is profiled once and cycled to make
1,000. Reading the blobs is not timed (it is the storage's, in parallel).
"""

from __future__ import annotations

import json
import time

from bench.bench_stats import make_table
from bench.common import Context, Section, Table, fmt_bytes, fmt_s, median

PARTS = 1000
GOAL_S = 1.0


def run(ctx: Context) -> Section:
    """Profile a pool of parts, then merge 1,000 of them a few times."""
    from aletheia.stats.merge import merge_profiles
    from aletheia.stats.profiling import profile_batches

    section = Section("merge", "7. Merging 1,000 file profiles into a dataset-level profile")
    pool_size = ctx.sized(50, 5)
    rows = ctx.sized(200_000, 5_000)
    pool = []
    for seed in range(pool_size):
        part = make_table(rows, seed)
        stored = json.dumps(profile_batches(part.to_batches(max_chunksize=65_536)).to_dict())
        pool.append(stored)
    profiles = [json.loads(pool[i % pool_size]) for i in range(PARTS)]
    sizes = sorted(len(p) for p in pool)
    times, cpu = [], []
    merged: dict = {}
    for _ in range(3):
        started, started_cpu = time.perf_counter(), time.process_time()
        merged = merge_profiles(profiles)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    table = Table(
        f"{PARTS:,} profiles of {rows:,}-row files, 7 columns",
        ["what", "result"],
    )
    table.add("merge time (median of 3)", fmt_s(median(times)))
    table.add("CPU time (median of 3)", fmt_s(median(cpu)))
    table.add("per file", f"{median(times) / PARTS * 1e3:.2f} ms")
    table.add("stored profile per file (median)", fmt_bytes(sizes[len(sizes) // 2]))
    table.add("merged rows", f"{merged['rows']:,}")
    section.tables.append(table)
    section.counts["merged rows"] = merged["rows"]
    section.counts["merged parts"] = merged["parts"]
    if not ctx.quick:
        met = median(times) <= GOAL_S
        section.note(
            f"target (≤ {GOAL_S:.0f} s for {PARTS:,} profiles): {'met' if met else 'NOT met'} — "
            f"{fmt_s(median(times))} wall, {fmt_s(median(cpu))} CPU "
            f"(runs: {', '.join(fmt_s(t) for t in times)})"
        )
    return section
