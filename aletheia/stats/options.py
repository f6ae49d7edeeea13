"""The profiler's knobs, importable without loading any of its libraries.

The storage function needs :class:`ProfileOptions` at import time but
Arrow, NumPy, DuckDB and DataSketches only once an object turns out to be
a table: keeping the options here keeps them out of its cold start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProfileOptions:
    """Knobs of the profiler; the defaults fit a 512 MiB function comfortably."""

    # 2 MiB blocks: 1.5x faster than 1 MiB on a 1 GB CSV (fewer per-block Python
    # round trips) at ~320 MiB peak; 4 MiB gained little more for ~90 MiB extra.
    block_size: int = 2 << 20
    batch_rows: int = 65_536  # Parquet
    sample_rows: int = 100
    # Quantiles are exact (interpolated) up to this many numbers per column, KLL's beyond.
    reservoir: int = 4096
    top_k: int = 20
    counter_capacity: int = 1000
    # Distinct counts are exact up to this many values per column (a sorted set of
    # 8-byte hashes), within a budget for all columns together (~32 MiB).
    distinct_exact_max: int = 100_000
    distinct_budget: int = 4_000_000
    histogram_bins: int = 20
    max_columns: int = 1000
    domain_max: int = 20
    seed: int = 0
    # Parts of one file read side by side (0: one per core the process may use), each at
    # least this big: a part costs its own reader, blocks in flight and sketches.
    parts: int = 0
    min_part_bytes: int = 32 << 20
