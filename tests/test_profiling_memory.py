"""The profiler streams: a file much bigger than its working set is read in bounded memory,
one block read ahead on a thread of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from aletheia.stats import readers

ROWS = 3_300_000  # ~110 MB of CSV
LIMIT_MIB = 512


def _generate(path: Path) -> None:
    rng = np.random.default_rng(7)
    schema = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("cat", pa.string())])
    cats = np.array(["alpha", "beta", "gamma", "delta"])
    with pa_csv.CSVWriter(str(path), schema) as writer:
        for start in range(0, ROWS, 250_000):
            n = min(250_000, ROWS - start)
            writer.write_batch(
                pa.record_batch(
                    {
                        "id": np.arange(start, start + n),
                        "x": rng.normal(50.0, 10.0, n) * 1e6,  # long decimal text per value
                        "cat": cats[rng.integers(0, 4, n)],
                    },
                    schema=schema,
                )
            )


# RUSAGE_CHILDREN is the peak over every child a process ever waited for, so the
# profiler runs under a fresh wrapper whose only child it is.
_WRAPPER = """
import resource, subprocess, sys
out = subprocess.run(sys.argv[1:], check=True, capture_output=True).stdout
sys.stdout.buffer.write(out)
sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
"""


def _run_measured(cmd: list[str]) -> tuple[bytes, int]:
    """stdout of ``cmd`` and its peak RSS in KiB."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], check=True, capture_output=True)
    return done.stdout, int(done.stderr.decode().strip().splitlines()[-1])


def test_big_csv_is_profiled_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    _generate(path)
    size = path.stat().st_size
    assert size > 100 << 20

    out, peak_kib = _run_measured([sys.executable, "-m", "aletheia.stats.profiling", str(path)])

    profile = json.loads(out)
    assert peak_kib < LIMIT_MIB * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB for {size >> 20} MiB"
    stats = {c["name"]: c for c in profile["stats"]}
    con = duckdb.connect()
    row = con.execute(f"select count(*), avg(x), count(distinct id) from '{path}'").fetchone()
    assert row is not None
    assert profile["rows"] == row[0] == ROWS
    assert abs(stats["x"]["mean"] - row[1]) < 1e-6 * abs(row[1])
    # Approximate distinct (HyperLogLog) within a few standard errors of the truth.
    assert stats["id"]["distinct_exact"] is False
    assert abs(stats["id"]["distinct"] - row[2]) < 0.06 * row[2]
    assert stats["cat"]["domain"] == ["alpha", "beta", "delta", "gamma"]


def test_read_ahead_hands_over_items_then_the_readers_error_in_order() -> None:
    def reader():
        yield 1
        yield 2
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in readers.prefetched(reader()):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_stops_its_thread_when_the_consumer_stops_early() -> None:
    def endless():
        n = 0
        while True:
            n += 1
            yield n

    batches = readers.prefetched(endless(), depth=2)
    assert next(batches) == 1
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == "aletheia-profile-read"]
