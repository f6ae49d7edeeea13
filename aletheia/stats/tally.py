"""Every column's running statistics and a row sample, fed record batch by record batch.

A :class:`Tally` is what one pass over (a part of) a table accumulates;
tallies of parts of one file read with the same schema merge into the
tally a single pass would have made (:meth:`Tally.merge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa

from aletheia.stats.columnstats import ColumnStats, ProfileOptions, RowSample
from aletheia.stats.formats import ProfileError
from aletheia.stats.readers import conform

#: Rows hashed by one DuckDB query: each query costs ~2-3 ms however few its rows, as
#: much as hashing a 2 MiB CSV block's ~27,000 rows, so consecutive blocks share one.
HASH_ROWS = 131_072


class Tally:
    """Every column's running statistics and a row sample, fed batch by batch."""

    def __init__(self, opts: ProfileOptions, rng: np.random.Generator) -> None:
        self.opts = opts
        self.rng = rng
        self.columns: list[ColumnStats] = []
        self.sample = RowSample(opts.sample_rows, rng)
        self.rows = 0
        self.schema: pa.Schema | None = None

    def run(
        self,
        batches: Iterator[pa.RecordBatch],
        schema: pa.Schema | Callable[[], pa.Schema | None] | None,
        hasher: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """Aggregate ``batches``; ``schema`` serves when there are none (a header-only CSV).

        ``hasher``: a DuckDB connection of this thread's own (parts of a file share one
        database through cursors: one buffer pool and thread pool, not one per part).
        """
        hasher = hasher or duckdb.connect()
        started = False
        group: list[pa.RecordBatch] = []
        for batch in batches:
            if not started:
                started = True
                self.schema = batch.schema
                self.columns = self._columns(batch.schema)
            elif batch.schema != self.schema:
                assert self.schema is not None
                batch = conform(batch, self.schema)
            self.rows += batch.num_rows
            if batch.num_rows == 0:
                continue
            group.append(batch)
            if sum(b.num_rows for b in group) >= HASH_ROWS:
                self._add_group(hasher, group)
                group = []
        if group:
            self._add_group(hasher, group)
        if not started:
            if callable(schema):
                schema = schema()
            if schema is None or len(schema) == 0:
                raise ProfileError("the file has no rows and no columns")
            self.schema = schema
            self.columns = self._columns(schema)

    def _add_group(self, hasher: duckdb.DuckDBPyConnection, group: list[pa.RecordBatch]) -> None:
        """Feed consecutive batches, their values hashed by one query (see :data:`HASH_ROWS`)."""
        for batch, hashes in zip(group, _hashes(hasher, group, len(self.columns)), strict=True):
            for i, column in enumerate(self.columns):
                column.add(batch.column(i), hashes[i])
            self.sample.add(batch)

    def merge(self, other: Tally) -> None:
        """Fold in the tally of the next part of the same file, read with the same schema."""
        if other.schema is None:
            return
        if self.schema is None:
            self.schema, self.columns = other.schema, other.columns
        else:
            for mine, theirs in zip(self.columns, other.columns, strict=True):
                mine.merge(theirs)
        self.rows += other.rows
        self.sample.merge(other.sample)

    def _columns(self, schema: pa.Schema) -> list[ColumnStats]:
        limit = min(len(schema), self.opts.max_columns)
        share = self.opts.distinct_budget // max(limit, 1)
        exact = max(self.opts.counter_capacity, min(self.opts.distinct_exact_max, share))
        return [ColumnStats(schema.field(i), self.opts, self.rng, exact) for i in range(limit)]


def _hashes(
    con: duckdb.DuckDBPyConnection, batches: list[pa.RecordBatch], n: int
) -> list[list[np.ndarray]]:
    """Per batch, 64-bit hashes of each of the first ``n`` columns' non-null values
    (DuckDB's ``hash``), all batches in one query."""
    if n == 0:
        return [[] for _ in batches]
    renamed = pa.Table.from_batches(
        [
            pa.RecordBatch.from_arrays(
                [batch.column(i) for i in range(n)], names=[f"c{i}" for i in range(n)]
            )
            for batch in batches
        ]
    )
    con.register("batch", renamed)
    try:
        result = con.sql(
            "select " + ", ".join(f"hash(c{i}) as h{i}" for i in range(n)) + " from batch"
        ).fetchnumpy()
    finally:
        con.unregister("batch")
    columns = [np.asarray(result[f"h{i}"], dtype=np.uint64) for i in range(n)]
    out, start = [], 0
    for batch in batches:
        end = start + batch.num_rows
        hashes = []
        for i in range(n):
            column, values = batch.column(i), columns[i][start:end]
            if column.null_count:
                values = values[column.is_valid().to_numpy(zero_copy_only=False)]
            hashes.append(values)
        out.append(hashes)
        start = end
    return out
