"""Benchmark 4: statistics of a ~1 GB CSV and its Parquet copy.

The storage function's profiler (``aletheia.stats.profiling.profile``) against
DuckDB ``SUMMARIZE`` and pandas ``describe()`` on the same file. Each runs in
its own process (start-up included); peak RSS is each process's own
high-water mark (VmHWM). The function runs with 512 MiB: the memory budget.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
    ratio,
    run_measured,
)

BUDGET = 512 << 20
CHUNK_ROWS = 500_000

PROFILE_SCRIPT = """
import json, sys
from aletheia.stats import formats, profiling
path = sys.argv[1]
with open(path, "rb") as fh:
    head = fh.read(4096)
detected = formats.detect_format(path, None, head)
prof = profiling.profile(lambda: open(path, "rb"), detected)
print(json.dumps({"rows": prof.rows, "columns": len(prof.columns)}))
"""
DUCKDB_SCRIPT = """
import json, sys, duckdb
rows = duckdb.sql(f"SUMMARIZE SELECT * FROM '{sys.argv[1]}'").fetchall()
print(json.dumps({"rows": int(rows[0][-2]), "columns": len(rows)}))
"""
PANDAS_SCRIPT = """
import json, sys, pandas as pd
path = sys.argv[1]
df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
desc = df.describe()
print(json.dumps({"rows": len(df), "columns": desc.shape[1]}))
"""


def make_table(rows: int, seed: int) -> pa.Table:
    """``rows`` rows of seven typical columns (ids, floats, a category, counts, times, flags)."""
    rng = np.random.default_rng(seed)
    cats = np.array([f"category_{i:02d}" for i in range(40)])
    start = np.datetime64("2024-01-01T00:00:00", "s")
    return pa.table(
        {
            "id": np.arange(seed * rows, (seed + 1) * rows, dtype=np.int64),
            "x": rng.normal(0, 1, rows),
            "y": rng.uniform(-1000, 1000, rows).round(3),
            "label": cats[rng.integers(0, len(cats), rows)],
            "count": rng.poisson(20, rows),
            "ts": start + rng.integers(0, 30_000_000, rows).astype("timedelta64[s]"),
            "flag": rng.random(rows) < 0.3,
        }
    )


def make_files(root: Path, rows: int) -> tuple[Path, Path]:
    """Write the CSV and its Parquet copy chunk by chunk (bounded memory)."""
    root.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = root / "data.csv", root / "data.parquet"
    first = make_table(min(rows, CHUNK_ROWS), 0)
    with (
        pa_csv.CSVWriter(csv_path, first.schema) as csv_out,
        pq.ParquetWriter(parquet_path, first.schema) as pq_out,
    ):
        done, chunk = 0, 0
        while done < rows:
            table = make_table(min(CHUNK_ROWS, rows - done), chunk)
            csv_out.write_table(table)
            pq_out.write_table(table)
            done += table.num_rows
            chunk += 1
    return csv_path, parquet_path


def run(ctx: Context) -> Section:
    """Every tool on both files."""
    section = Section("stats", "4. Statistics of a ~1 GB CSV and its Parquet copy")
    rows = ctx.sized(13_000_000, 20_000)  # ~1 GB of CSV
    csv_path, parquet_path = make_files(ctx.work / "stats", rows)
    tools = {
        "aletheia profiler": PROFILE_SCRIPT
        if module_available("aletheia.stats.profiling")
        else None,
        "duckdb SUMMARIZE": DUCKDB_SCRIPT if module_available("duckdb") else None,
        "pandas describe()": PANDAS_SCRIPT if module_available("pandas") else None,
    }
    if not drop_page_cache():
        section.note("page cache could not be dropped: figures are warm cache")
    for path in (csv_path, parquet_path):
        kind = path.suffix.lstrip(".")
        title = f"{kind}: {rows:,} rows, 7 columns, {fmt_bytes(path.stat().st_size)}"
        table = Table(title, ["tool", "time", "peak RSS", "≤ 512 MiB", "time vs duckdb", "rows"])
        section.tables.append(table)
        results: dict[str, Measured] = {}
        for tool, script in tools.items():
            if script is None:
                table.add(tool, PEER_MISSING, "-", "-", "-", "-")
                section.note(f"{tool}: {PEER_MISSING}")
                continue
            drop_page_cache()
            cmd = [sys.executable, "-c", script + PEAK_RSS_FOOTER, str(path)]
            results[tool] = check(run_measured(cmd, env=ctx.subprocess_env()), f"{tool} {kind}")
        base = results.get("duckdb SUMMARIZE")
        for tool, m in results.items():
            seen = json.loads(m.stdout.strip().splitlines()[-2])["rows"]
            section.counts[f"{kind} {tool} rows"] = seen
            table.add(
                tool,
                fmt_s(m.seconds),
                fmt_bytes(peak_rss(m)),
                "yes" if peak_rss(m) <= BUDGET else "NO",
                ratio(m.seconds, base.seconds) if base else "-",
                f"{seen:,}",
            )
        section.counts[f"{kind} rows"] = rows
        if not ctx.quick:
            _verdict(section, kind, results)
    return section


def _verdict(section: Section, kind: str, results: dict[str, Measured]) -> None:
    ours, duck = results.get("aletheia profiler"), results.get("duckdb SUMMARIZE")
    if ours is None or duck is None:
        return
    fast = ours.seconds <= duck.seconds
    small = peak_rss(ours) <= BUDGET
    section.note(
        f"{kind}: target (≥ DuckDB's speed within 512 MiB): "
        f"{'met' if fast and small else 'NOT met'} — profiler {fmt_s(ours.seconds)} / "
        f"{fmt_bytes(peak_rss(ours))}, DuckDB {fmt_s(duck.seconds)} / "
        f"{fmt_bytes(peak_rss(duck))}"
    )
