"""Running statistics of a table's columns, and a sample of its rows, fed block by block.

Each column keeps fixed-size, mergeable sketches
(:mod:`aletheia.stats.colsketch`), so memory depends on the number of
columns, never on the number of rows; the result of each is a JSON- and
Firestore-safe dict (long text cut, times as ISO strings, no NaN) with the
error bound of each approximate statistic. A column's statistics can be
rebuilt from a stored profile and merged with another part's
(:meth:`ColumnStats.from_profile`, :meth:`ColumnStats.merge`).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aletheia.stats.colsketch import ColumnSketch
from aletheia.stats.options import ProfileOptions

#: Quantiles reported for numeric columns (every 5 %).
QUANTILES = tuple(i / 20 for i in range(21))
_TEXT_CUT = 64  # characters of a value kept in reports (top values, min/max, domains)
_COUNTER_CUT = 256  # characters of a string value used as a frequency key


class ColumnStats:
    """Running statistics of one column."""

    def __init__(
        self, fld: pa.Field, opts: ProfileOptions, rng: np.random.Generator, exact_limit: int
    ) -> None:
        self.field = fld
        self.name = fld.name
        self.type = str(fld.type)
        self.kind = _kind(fld.type)
        self.count = 0
        self.missing = 0
        self.sketch = ColumnSketch(exact_limit, opts.counter_capacity, opts.reservoir)
        self.minimum: Any = None
        self.maximum: Any = None
        self.zeros = 0
        self.non_finite = 0
        self.trues = 0
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.empty = 0

    @classmethod
    def from_profile(
        cls, stat: dict[str, Any], sketch: dict[str, Any], opts: ProfileOptions
    ) -> ColumnStats:
        """A column's statistics as a stored profile has them (``stats`` and ``sketches`` entry).

        ``ValueError`` (or ``KeyError``) when the sketch is not in a format this version reads.
        """
        out = cls.__new__(cls)
        out.name, out.type, out.kind = stat["name"], stat["type"], stat["kind"]
        out.count = out.missing = out.zeros = out.non_finite = out.trues = out.empty = 0
        out.minimum = out.maximum = out.min_len = out.max_len = None
        out.sketch = ColumnSketch.from_dict(sketch, opts.distinct_exact_max)
        out._add_exact(stat)
        return out

    def merge_profile(self, stat: dict[str, Any], sketch: dict[str, Any]) -> None:
        """Fold in another part of the same column, as its stored profile has it.

        Exact statistics stay exact; the sketches merge within their bounds.
        """
        self.sketch.merge_state(sketch)
        self._add_exact(stat)

    def merge(self, other: ColumnStats) -> None:
        """Fold in the same column of another part read with the same type.

        Extremes are compared as read (not as stored, where long text is cut),
        so every exact statistic is the one a single pass would give.
        """
        self.count += other.count
        self.missing += other.missing
        self.minimum = _extreme(min, self.minimum, other.minimum)
        self.maximum = _extreme(max, self.maximum, other.maximum)
        self.zeros += other.zeros
        self.non_finite += other.non_finite
        self.trues += other.trues
        self.min_len = _extreme(min, self.min_len, other.min_len)
        self.max_len = _extreme(max, self.max_len, other.max_len)
        self.empty += other.empty
        self.sketch.merge(other.sketch)

    def _add_exact(self, stat: dict[str, Any]) -> None:
        self.count += int(stat["count"])
        self.missing += int(stat["missing"])
        lo, hi = stat.get("min"), stat.get("max")
        if self.kind == "numeric":  # decimals are stored as text: compare them as numbers
            lo = _number(lo) if isinstance(lo, str) else lo
            hi = _number(hi) if isinstance(hi, str) else hi
        self.minimum = _extreme(min, self.minimum, lo)
        self.maximum = _extreme(max, self.maximum, hi)
        self.zeros += int(stat.get("zeros", 0))
        self.non_finite += int(stat.get("non_finite", 0))
        self.trues += int(stat.get("true", 0))
        self.min_len = _extreme(min, self.min_len, stat.get("min_length"))
        self.max_len = _extreme(max, self.max_len, stat.get("max_length"))
        self.empty += int(stat.get("empty", 0))

    def add(self, array: pa.Array, hashes: np.ndarray) -> None:
        self.count += len(array)
        self.missing += array.null_count
        valid = array.drop_null() if array.null_count else array
        if len(valid) == 0:
            return
        self.sketch.add_hashes(hashes)
        if self.kind == "numeric":
            self._add_numeric(valid)
        elif self.kind == "string":
            valid = self._add_string(valid)
        elif self.kind == "bool":
            self.trues += int(pc.sum(valid).as_py() or 0)
        if self.kind in ("numeric", "string", "bool", "temporal"):
            self._add_min_max(valid)
        if self.kind in ("string", "bool"):
            self._add_counts(valid)

    def _add_numeric(self, valid: pa.Array) -> None:
        values = valid.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        finite = np.isfinite(values)
        if not finite.all():
            self.non_finite += int((~finite).sum())
            values = values[finite]
        self.zeros += int(np.count_nonzero(values == 0))
        self.sketch.add_numbers(values)

    def _add_string(self, valid: pa.Array) -> pa.Array:
        lengths = pc.binary_length(valid) if pa.types.is_binary(valid.type) else None
        if lengths is None:
            lengths = pc.utf8_length(valid)
        as_np = lengths.to_numpy(zero_copy_only=False).astype(np.float64)
        self.sketch.lengths.add(as_np)
        lo, hi = int(as_np.min()), int(as_np.max())
        self.min_len = lo if self.min_len is None else min(self.min_len, lo)
        self.max_len = hi if self.max_len is None else max(self.max_len, hi)
        self.empty += int(np.count_nonzero(as_np == 0))
        if hi > _COUNTER_CUT and pa.types.is_string(valid.type):
            # Keep counters and min/max small even for megabyte values.
            valid = pc.utf8_slice_codeunits(valid, 0, _COUNTER_CUT)
        return valid

    def _add_min_max(self, valid: pa.Array) -> None:
        if self.kind == "numeric" and pa.types.is_floating(valid.type):
            valid = pc.drop_null(pc.if_else(pc.is_finite(valid), valid, None))
            if len(valid) == 0:
                return
        extremes = pc.min_max(valid)
        lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
        if lo is not None and (self.minimum is None or lo < self.minimum):
            self.minimum = lo
        if hi is not None and (self.maximum is None or hi > self.maximum):
            self.maximum = hi

    def _add_counts(self, valid: pa.Array) -> None:
        """Top values (strings and booleans: numbers and times report none)."""
        counted = pc.value_counts(valid)
        values, counts = counted.field("values"), counted.field("counts").to_numpy()
        cap = self.sketch.freq_capacity
        cut = 0
        if len(counts) > cap:
            # Only the batch's most frequent values reach the sketch (converting a whole
            # high-cardinality batch to Python would dominate the run time); those left
            # out were counted at most the cap-th largest count, the bound on what is lost.
            order = np.argpartition(-counts, cap)
            top, rest = order[:cap], order[cap:]
            cut = int(counts[rest].max())
            values, counts = values.take(pa.array(top)), counts[top]
        keys = [_key(v) for v in values.to_pylist()]
        self.sketch.add_counts(keys, counts.tolist(), cut)

    def result(self, opts: ProfileOptions) -> dict[str, Any]:
        """The column's statistics, JSON- and Firestore-safe, with their error bounds."""
        present = self.count - self.missing
        distinct, distinct_exact = self.sketch.distinct_count(present)
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "distinct": distinct,
            "distinct_exact": distinct_exact,
        }
        if present == 0:
            return out
        if self.kind in ("numeric", "string", "bool", "temporal"):
            out["min"] = _plain(self.minimum)
            out["max"] = _plain(self.maximum)
        if self.kind == "numeric":
            out.update(self._numeric_result(opts))
        elif self.kind == "string":
            out.update(self._string_result(opts))
        elif self.kind == "bool":
            out["true"] = self.trues
            out["false"] = present - self.trues
            out["top"] = self._top(opts.top_k)
            out["top_exact"] = self.sketch.top_exact()
        out["error"] = self.sketch.error(self.kind, present)
        return out

    def to_sketch(self) -> dict[str, Any]:
        """The column's mergeable sketches, JSON-safe (see :meth:`from_profile`)."""
        return self.sketch.to_dict()

    def _numeric_result(self, opts: ProfileOptions) -> dict[str, Any]:
        moments = self.sketch.moments
        out: dict[str, Any] = {
            "mean": _finite(moments.mean) if moments.n else None,
            "std": _finite(moments.std),
            "zeros": self.zeros,
            "non_finite": self.non_finite,
        }
        quantiles = self.sketch.quantiles(QUANTILES)
        out["quantiles_exact"] = quantiles is None or quantiles[1]
        if quantiles is not None:
            out["quantiles"] = {_q_key(q): v for q, v in zip(QUANTILES, quantiles[0], strict=True)}
            lo, hi = _number(self.minimum), _number(self.maximum)
            if isinstance(lo, float) and isinstance(hi, float):
                histogram = self.sketch.histogram(lo, hi, opts.histogram_bins)
                if histogram is not None:
                    out["histogram"] = histogram
        return out

    def _string_result(self, opts: ProfileOptions) -> dict[str, Any]:
        exact = self.sketch.top_exact()
        out: dict[str, Any] = {
            "min_length": self.min_len,
            "max_length": self.max_len,
            "mean_length": _finite(self.sketch.lengths.mean),
            "empty": self.empty,
            "top": self._top(opts.top_k),
            "top_exact": exact,
        }
        values = self.sketch.frequent_values()
        if values is not None and len(values) <= opts.domain_max:
            out["domain"] = sorted(_cut(v) for v in values)
        return out

    def _top(self, k: int) -> list[dict[str, Any]]:
        as_bool = self.kind == "bool"
        return [
            {"value": (v == "True") if as_bool else _plain(v), "count": c}
            for v, c in self.sketch.top(k)
        ]


def _key(value: Any) -> str:
    """A counted value as the frequent-items sketch's string key (bytes read as Latin-1)."""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _number(value: Any) -> Any:
    """A number as a float (decimals included, as stored text too); anything else as is."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _extreme(pick: Any, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    try:
        return pick(a, b)
    except TypeError:  # e.g. an int and a string of differently inferred parts
        return pick(str(a), str(b))


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype):
        return "string"
    if pa.types.is_temporal(dtype):
        return "temporal"
    return "other"


def _q_key(q: float) -> str:
    return f"p{round(q * 100)}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_CUT else text[: _TEXT_CUT - 1] + "…"


def _plain(value: Any) -> Any:
    """A JSON- and Firestore-safe scalar (long text cut, times as ISO strings)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int)) or value is None:
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return _cut(value.decode("latin-1"))
    return _cut(str(value))


class RowSample:
    """A uniform random sample of whole rows (priority reservoir over record batches)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.keys = np.empty(0)
        self.table: pa.Table | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if self.size == 0:
            return
        keys = self.rng.random(batch.num_rows)
        if self.keys.size >= self.size:
            chosen = np.nonzero(keys > self.keys.min())[0]
        else:
            chosen = np.argsort(-keys)[: self.size]
        if chosen.size == 0:
            return
        self._keep_top(pa.Table.from_batches([batch.take(pa.array(chosen))]), keys[chosen])

    def merge(self, other: RowSample) -> None:
        """Keep the rows with the highest keys of both samples: a uniform sample of both parts."""
        if other.table is not None:
            self._keep_top(other.table, other.keys)

    def _keep_top(self, rows: pa.Table, keys: np.ndarray) -> None:
        """Add ``rows`` with their keys, keeping the ``size`` rows with the highest keys."""
        table = (
            rows
            if self.table is None
            else pa.concat_tables([self.table, rows], promote_options="permissive")
        )
        all_keys = np.concatenate([self.keys, keys])
        if all_keys.size > self.size:
            top = np.argsort(-all_keys)[: self.size]
            table, all_keys = table.take(pa.array(top)), all_keys[top]
        self.table, self.keys = table.combine_chunks(), all_keys

    def rows(self) -> list[dict[str, Any]]:
        if self.table is None:
            return []
        return [{k: _sample_value(v) for k, v in row.items()} for row in self.table.to_pylist()]


def _sample_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return value if len(text) <= 1024 else _cut(text)
    if isinstance(value, str) and len(value) > 1024:
        return value[:1023] + "…"
    return _plain(value) if not isinstance(value, str) else value
