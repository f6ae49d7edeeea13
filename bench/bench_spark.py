"""Benchmark 8: Spark local-mode throughput on benchmark 4's ~1 GB CSV and Parquet, beside DuckDB.

What ``aletheia datasets stats NAME --engine spark`` runs on a file the
function deferred: Spark reads it (``aletheia.spark.sources``: a CSV is
sniffed and checked to be UTF-8 as the function reads it, then read with
schema inference, so two passes) and ``aletheia.spark.profile``
profiles each partition with the function's sketches and merges them on
the driver. One process per tool and file, start-up included (the JVM's
too); the Spark process also reports the profile's own time (after the
session is up). Peak RSS is the Python driver's only: the JVM and the
Python workers are other processes, so no 512 MiB verdict is made for
Spark. Not run in quick mode: a JVM start is most of a smoke test's time.
"""

from __future__ import annotations

import json
import os
import sys

from bench.bench_stats import DUCKDB_SCRIPT, make_files
from bench.common import (
    PEAK_RSS_FOOTER,
    PEER_MISSING,
    Context,
    Measured,
    Section,
    Table,
    check,
    drop_page_cache,
    fmt_bytes,
    fmt_s,
    module_available,
    peak_rss,
    run_measured,
)

#: Cores Spark may use (the machine's, capped by the environment).
MASTER = os.environ.get("ALETHEIA_BENCH_SPARK_MASTER", "local[*]")

SPARK_SCRIPT = """
import json, os, sys, time
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
t0 = time.perf_counter()
import tempfile
from pathlib import Path
from aletheia.spark import profile, session, sources
from aletheia.stats.formats import detect_format
path, master = sys.argv[1], sys.argv[2]
spark = session.session(master, app_name="aletheia bench")
t1 = time.perf_counter()
with open(path, "rb") as fh:
    detected = detect_format(path, None, fh.read(8))
source = sources.prepare(Path(path), detected, Path(tempfile.mkdtemp()))
result = profile(sources.read(spark, source), format=detected.format)
t2 = time.perf_counter()
print(json.dumps({"rows": result.rows, "columns": len(result.profile["stats"]),
                  "startup_s": t1 - t0, "profile_s": t2 - t1,
                  "partitions": result.partitions}))
spark.stop()
"""


def run(ctx: Context) -> Section:
    """DuckDB and Spark local mode on the CSV, then on the Parquet copy."""
    section = Section("spark", "8. Spark local-mode profile of the ~1 GB CSV and Parquet")
    if ctx.quick:
        section.note("not run in quick mode (a JVM start)")
        return section
    rows = 13_000_000
    root = ctx.work / "stats"
    csv_path, parquet_path = root / "data.csv", root / "data.parquet"
    if not (csv_path.exists() and parquet_path.exists()):
        csv_path, parquet_path = make_files(root, rows)
    tools = {
        "duckdb SUMMARIZE": DUCKDB_SCRIPT if module_available("duckdb") else None,
        f"aletheia.spark ({MASTER})": SPARK_SCRIPT if module_available("pyspark") else None,
    }
    if not drop_page_cache():
        section.note("page cache could not be dropped: figures are warm cache")
    for path in (csv_path, parquet_path):
        kind, size = path.suffix.lstrip("."), path.stat().st_size
        title = f"{kind}: {rows:,} rows, 7 columns, {fmt_bytes(size)}"
        columns = ["tool", "time", "MB/s", "profile only", "driver RSS", "rows"]
        table = Table(title, columns)
        section.tables.append(table)
        for tool, script in tools.items():
            if script is None:
                table.add(tool, PEER_MISSING, "-", "-", "-", "-")
                section.note(f"{tool}: {PEER_MISSING}")
                continue
            drop_page_cache()
            cmd = [sys.executable, "-c", script + PEAK_RSS_FOOTER, str(path), MASTER]
            m: Measured = check(run_measured(cmd, env=ctx.subprocess_env()), f"{tool} {kind}")
            out = json.loads(m.stdout.strip().splitlines()[-2])
            section.counts[f"{kind} {tool} rows"] = out["rows"]
            inner = out.get("profile_s")
            table.add(
                tool,
                fmt_s(m.seconds),
                f"{size / 1e6 / m.seconds:.0f}",
                fmt_s(inner) if inner is not None else "-",
                fmt_bytes(peak_rss(m)),
                f"{out['rows']:,}",
            )
        section.counts[f"{kind} rows"] = rows
    return section
