"""A Spark DataFrame's profile, in the storage function's format, computed where the data is.

Each partition streams its Arrow record batches (``mapInArrow``) through the
same profiler the function runs on a file
(:func:`aletheia.stats.profiling.profile_batches`: the same mergeable
sketches) and returns its profile serialised as one JSON row; the driver
merges the partitions' profiles (:func:`aletheia.stats.merge.merge_profiles`),
so exact statistics are exact and the sketches keep their stated error
bounds. Only the profiles travel to the driver (a few KB per column per
partition), never rows. A row sample is kept too: each partition's uniform
sample, mixed on the driver in proportion to the partitions' rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from aletheia.stats.options import ProfileOptions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The one column each partition's result row has (the profile and its sample, as JSON).
_RESULT_SCHEMA = "profile string"


@dataclass
class SparkProfile:
    """A DataFrame's merged profile (the dict the function stores) and a row sample."""

    profile: dict[str, Any]
    sample: list[dict[str, Any]] = field(default_factory=list)
    partitions: int = 0

    @property
    def rows(self) -> int:
        """Rows profiled."""
        return int(self.profile.get("rows") or 0)


def profile(
    df: DataFrame,
    options: ProfileOptions | None = None,
    *,
    format: str = "arrow",
) -> SparkProfile:
    """Profile ``df`` per partition on the executors and merge the partitions' profiles.

    ``format`` is what the profile says the data was (``parquet``, ``csv``
    when a file was read; ``arrow`` for any DataFrame).
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    from aletheia.stats.merge import merge_profiles
    from aletheia.stats.profiling import profile_batches

    opts = options or ProfileOptions()

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        iterator = iter(batches)
        first = next(iterator, None)
        while first is not None and first.num_rows == 0:
            first = next(iterator, None)
        if first is None:
            return  # an empty partition adds nothing to the merge
        batches = (_plain_types(b) for b in _chain(first, iterator))
        part = profile_batches(batches, opts, format=format)
        body = {"profile": part.to_dict(), "sample": part.sample}
        yield pa.RecordBatch.from_pydict(
            {"profile": [json.dumps(body, ensure_ascii=False, default=str)]}
        )

    rows = df.mapInArrow(per_partition, _RESULT_SCHEMA).collect()
    parts = [json.loads(row["profile"]) for row in rows]
    if not parts:  # no rows anywhere: the profile of the schema alone
        schema = to_arrow_schema(df.schema)
        empty = profile_batches(iter(()), opts, format=format, schema=schema)
        return SparkProfile(empty.to_dict(), [], 0)
    merged = merge_profiles([p["profile"] for p in parts])
    sample = _mix_samples(parts, opts.sample_rows, opts.seed)
    return SparkProfile(merged, sample, len(parts))


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _plain_types(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Spark's Arrow ``large_string``/``large_binary`` as the readers' ``string``/``binary``.

    The profile records each column's Arrow type; the same column must read
    the same whichever engine profiled it (validation flags a type change).
    """
    fields = []
    for fld in batch.schema:
        if pa.types.is_large_string(fld.type):
            fld = fld.with_type(pa.string())
        elif pa.types.is_large_binary(fld.type):
            fld = fld.with_type(pa.binary())
        fields.append(fld)
    schema = pa.schema(fields, metadata=batch.schema.metadata)
    return batch if schema.equals(batch.schema) else batch.cast(schema)


def _mix_samples(parts: list[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``size`` rows of the partitions' samples, each in proportion to its rows.

    Each partition's sample is uniform over its rows; taking from each in
    proportion to its row count keeps the mix uniform over the whole DataFrame.
    """
    rng = np.random.default_rng(seed)
    rows = np.array([int(p["profile"].get("rows") or 0) for p in parts], dtype=float)
    total = rows.sum()
    if total == 0 or size <= 0:
        return []
    want = rows / total * min(size, int(total))
    quota = np.floor(want).astype(int)
    # The rows floor() dropped go to the largest remainders, so the sample is full.
    for i in np.argsort(quota - want)[: min(size, int(total)) - int(quota.sum())]:
        quota[i] += 1
    out: list[dict[str, Any]] = []
    for part, want in zip(parts, quota, strict=True):
        sample = part.get("sample") or []
        take = min(int(want), len(sample))
        picked = rng.choice(len(sample), size=take, replace=False) if take else np.array([])
        out += [sample[int(i)] for i in sorted(picked)]
    return out[:size]
