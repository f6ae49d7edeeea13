"""The mergeable, serialisable sketches of one column, and the statistics they answer.

One :class:`ColumnSketch` per profiled column holds:

- distinct values: an exact set of 64-bit hashes while small, and a
  HyperLogLog (:mod:`aletheia.stats.sketches`), merged by register maximum;
- quantiles and histograms of numbers: Apache DataSketches' KLL
  (``kll_doubles_sketch``), plus the values themselves while few, so small
  files keep exact, interpolated quantiles;
- frequent values of strings and booleans: DataSketches' frequent-items
  sketch;
- mean and standard deviation of numbers and of string lengths: running
  moments, merged exactly (Chan et al.).

:meth:`ColumnSketch.to_dict` is JSON-safe (bytes as base64) and goes into
the profile blob, not into the ``Files`` document (a wide table's sketches
would not fit Firestore's 1 MiB). Each statistic answered here carries its
error bound (:meth:`ColumnSketch.error`).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import datasketches as ds
import numpy as np

from aletheia.stats.sketches import HLL_RELATIVE_ERROR, DistinctHashes, HyperLogLog, Moments

#: KLL's accuracy parameter: ~1.33 % normalised rank error (99 % confidence), ~4 KiB serialised.
KLL_K = 200
#: Format of the serialised sketches. 2 stores HyperLogLog registers as text (``hll_text``),
#: 1 as base64 of raw or deflated bytes (``hll``); a reader refuses any other.
SKETCH_VERSION = 2
#: Formats :meth:`ColumnSketch.merge_state` reads: profiles stored by earlier versions merge.
READABLE_VERSIONS = (1, 2)
#: Distinct hashes kept in the serialised sketch (8 bytes each) so merged counts stay exact.
STORED_HASHES_MAX = 4096


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _lg_map_size(capacity: int) -> int:
    """The frequent-items map holds 3/4 of 2**lg items: the smallest lg fitting ``capacity``."""
    lg = 3
    while 0.75 * (1 << lg) < capacity:
        lg += 1
    return lg


class ColumnSketch:
    """The mergeable state of one column (see the module docstring)."""

    def __init__(self, exact_limit: int, counter_capacity: int, first_values: int) -> None:
        self.distinct = DistinctHashes(exact_limit)
        self.hll = HyperLogLog()
        self.kll = ds.kll_doubles_sketch(KLL_K)
        self.freq_capacity = counter_capacity
        self.lg_freq = _lg_map_size(counter_capacity)
        self.freq = ds.frequent_strings_sketch(self.lg_freq)
        # Undercount of any frequent value from batches cut to their top values before
        # they reached the sketch (converting every value of a high-cardinality batch to
        # Python would dominate the run time); 0 and ``freq_complete`` while none was.
        self.freq_cut = 0
        self.freq_complete = True
        self.moments = Moments()
        self.lengths = Moments()
        self.first = _FirstValues(first_values)

    # ------------------------------------------------------------------ feeding

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Non-null values' 64-bit hashes (distinct counts).

        The registers take them only once the exact set is dropped (the set's
        hashes then too): a column of few values never pays for HyperLogLog,
        and the registers are the same either way (a maximum per register).
        """
        if not self.distinct.exact:
            self.hll.add_hashes(hashes)
            return
        before = self.distinct.hashes
        self.distinct.add_hashes(hashes)
        if not self.distinct.exact:
            self.hll.add_hashes(before)
            self.hll.add_hashes(hashes)

    def add_numbers(self, values: np.ndarray) -> None:
        """Finite float64 values (moments, quantiles, histogram)."""
        if values.size == 0:
            return
        self.moments.add(values)
        # nanobind accepts only writeable, contiguous float64 arrays (Arrow buffers are read-only).
        self.kll.update(np.require(values, np.float64, ["C_CONTIGUOUS", "WRITEABLE"]))
        self.first.add(values)

    def add_counts(self, values: list[str], counts: list[int], cut: int = 0) -> None:
        """One batch's value counts; ``cut`` > 0: values counted at most ``cut`` were left out."""
        for value, count in zip(values, counts, strict=True):
            self.freq.update(value, count)
        if cut:
            self.freq_complete = False
            self.freq_cut += cut

    # ------------------------------------------------------------------ merging

    def merge_state(self, state: dict[str, Any]) -> None:
        """Fold in another part's sketches as :meth:`to_dict` wrote them.

        Merging from the stored state, rather than from a rebuilt sketch, decodes
        each part's bytes once and builds no objects for it: a dataset of 1,000
        files merges in well under a second. ``ValueError`` for another format.
        """
        if state.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"sketch format {state.get('version')!r}, not {READABLE_VERSIONS}")
        # Invariant: the registers hold every hash except, maybe, those of the exact
        # set (a part that kept its few hashes stored no registers: they follow from
        # the hashes). The set is folded in only when it is dropped or the registers
        # are needed, so merging parts of small domains never touches them.
        if state["distinct_exact"]:
            self.add_hashes(
                np.frombuffer(_unb64(state.get("hashes", "")), dtype="<u8").astype(np.uint64)
            )
        else:
            self._fold_set()
            if "hll_text" in state:
                self.hll.merge_text(state["hll_text"])
            else:  # format 1
                self.hll.merge_bytes(_unb64(state["hll"]))
            self.distinct.merge(
                DistinctHashes.from_state(0, False, int(state["distinct_floor"]), b"")
            )
        kll = None
        if "kll" in state:
            kll = ds.kll_doubles_sketch.deserialize(_unb64(state["kll"]))
            self.first.discard()  # the part's own values were not stored
        freq, cut, complete = None, 0, True
        if "frequent" in state:
            freq = ds.frequent_strings_sketch.deserialize(_unb64(state["frequent"]))
            cut, complete = int(state["frequent_cut"]), bool(state["frequent_complete"])
        lengths = Moments.from_list(state["lengths"])
        self._fold_sketches(kll, freq, cut, complete, Moments.from_list(state["moments"]), lengths)

    def merge(self, other: ColumnSketch) -> None:
        """Fold in another part's live sketches (parts of one file profiled side by side).

        Unlike :meth:`merge_state`, the parts' own numbers are at hand: while
        both kept every number the merged quantiles and histogram stay exact.
        """
        if self.distinct.exact and other.distinct.exact:
            self.add_hashes(other.distinct.hashes)
        else:
            self._fold_set()
            other._fold_set()
            self.hll.merge(other.hll)
            self.distinct.merge(other.distinct)
        self._fold_sketches(
            None if other.kll.is_empty() else other.kll,
            None if other.freq.is_empty() else other.freq,
            other.freq_cut,
            other.freq_complete,
            other.moments,
            other.lengths,
        )
        self.first.merge(other.first)

    def _fold_sketches(
        self,
        kll: Any,
        freq: Any,
        freq_cut: int,
        freq_complete: bool,
        moments: Moments,
        lengths: Moments,
    ) -> None:
        """Fold another part's quantiles, frequent values and moments into these (the
        same for live parts and stored ones; ``None``: the part had none)."""
        if kll is not None:
            self.kll.merge(kll)
        if freq is not None:
            self.freq.merge(freq)
        self.freq_cut += freq_cut
        self.freq_complete = self.freq_complete and freq_complete
        self.moments.merge(moments)
        self.lengths.merge(lengths)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: few distinct values as their hashes, many as HyperLogLog registers."""
        keep_hashes = self.distinct.exact and self.distinct.count <= STORED_HASHES_MAX
        out: dict[str, Any] = {
            "version": SKETCH_VERSION,
            "distinct_exact": keep_hashes,
            "distinct_floor": self.distinct.floor,
            "moments": self.moments.to_list(),
            "lengths": self.lengths.to_list(),
        }
        if keep_hashes:
            out["hashes"] = _b64(self.distinct.to_bytes())
        else:
            self._fold_set()
            out["hll_text"] = self.hll.to_text()
        if not self.kll.is_empty():
            out["kll"] = _b64(self.kll.serialize())
        if not self.freq.is_empty():
            out["frequent"] = _b64(self.freq.serialize())
            out["frequent_lg"] = self.lg_freq
            out["frequent_cut"] = self.freq_cut
            out["frequent_complete"] = self.freq_complete
        return out

    def _fold_set(self) -> None:
        """Make the registers cover the exact set too (see :meth:`merge_state`)."""
        if self.distinct.exact:
            self.hll.add_hashes(self.distinct.hashes)

    @classmethod
    def from_dict(cls, state: dict[str, Any], exact_limit: int) -> ColumnSketch:
        """The sketch :meth:`to_dict` wrote (``ValueError`` for another format)."""
        lg = int(state.get("frequent_lg", _lg_map_size(1)))
        out = cls(exact_limit, int(0.75 * (1 << lg)), 0)
        out.merge_state(state)
        return out

    # ------------------------------------------------------------------ answers

    def distinct_count(self, present: int) -> tuple[int, bool]:
        """The distinct count and whether it is exact.

        Exact while the hash set held every value; else HyperLogLog's estimate,
        clamped between what is known for sure: the distinct hashes seen before
        the set overflowed and the number of non-missing values (alone the
        estimate can exceed the rows: 400,000 ids estimated at 415,263).
        """
        if self.distinct.exact:
            return self.distinct.count, True
        return min(max(self.hll.estimate(), self.distinct.floor), present), False

    def quantiles(self, levels: tuple[float, ...]) -> tuple[list[float], bool] | None:
        """Values at ``levels``, and whether they are exact (``None`` without numbers).

        Exact (interpolated, as DuckDB's ``quantile_cont``) while every value is
        kept; else KLL's, within :meth:`error`'s ``quantile_rank`` of each level.
        """
        values = self.first.values
        if values is not None and values.size:
            return [float(v) for v in np.quantile(values, levels)], True
        if self.kll.is_empty():
            return None
        return [float(v) for v in self.kll.get_quantiles(list(levels))], False

    def histogram(self, lo: float, hi: float, bins: int) -> dict[str, Any] | None:
        """Equal-width bins between ``lo`` and ``hi`` with counts of all the numbers."""
        total = self.moments.n
        if total == 0:
            return None
        if lo == hi:
            return {"edges": [lo, hi], "counts": [total]}
        edges = np.linspace(lo, hi, bins + 1)
        values = self.first.values
        if values is not None:
            exact, _ = np.histogram(values, bins=edges)
            return {"edges": [float(e) for e in edges], "counts": [int(c) for c in exact]}
        # KLL's mass below each inner edge; the last bin is closed, like np.histogram's.
        masses = self.kll.get_pmf([float(e) for e in edges[1:-1]])
        counts = _rounded_to_total([m * total for m in masses], total)
        return {"edges": [float(e) for e in edges], "counts": counts}

    def top(self, k: int) -> list[tuple[str, int]]:
        """The ``k`` most frequent values with counts that never overstate."""
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        ranked = sorted(items, key=lambda it: (-it[2], -it[1], str(it[0])))
        return [(str(it[0]), int(it[2])) for it in ranked[:k]]

    def frequent_values(self) -> list[str] | None:
        """Every value seen, when the frequent-items sketch still counts all of them exactly."""
        if not self.top_exact():
            return None
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return [str(it[0]) for it in items]

    def top_exact(self) -> bool:
        """True while every value's count is exact."""
        return self.freq_complete and self._freq_offset() == 0

    def _freq_offset(self) -> int:
        """The sketch's own undercount bound (upper minus lower bound of any item)."""
        if self.freq.is_empty():
            return 0
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        if not items:
            return math.ceil(self.freq.epsilon * self.freq.total_weight)
        return int(items[0][3] - items[0][2])

    def error(self, kind: str, present: int) -> dict[str, Any]:
        """Error bounds of the approximate statistics (0 where exact).

        ``distinct_relative``: HyperLogLog's relative standard error;
        ``quantile_rank``: KLL's normalised rank error at 99 % confidence
        (a quantile reported for level q has true rank within q ± this);
        ``top_count``: most a reported top-value count can fall short.
        """
        out: dict[str, Any] = {
            "distinct_relative": 0.0 if self.distinct_count(present)[1] else HLL_RELATIVE_ERROR
        }
        if kind == "numeric":
            exact = self.first.values is not None or not self.kll.is_estimation_mode()
            out["quantile_rank"] = 0.0 if exact else self.kll.normalized_rank_error(False)
        if kind in ("string", "bool"):
            out["top_count"] = self._freq_offset() + self.freq_cut
        return out


def _rounded_to_total(values: list[float], total: int) -> list[int]:
    """Round counts so they still add up to ``total`` (largest remainders get the rest)."""
    floors = [math.floor(v) for v in values]
    short = total - sum(floors)
    order = sorted(range(len(values)), key=lambda i: floors[i] - values[i])
    for i in order[: max(short, 0)]:
        floors[i] += 1
    return floors


class _FirstValues:
    """Every number of a column while there are at most ``limit`` (not serialised).

    Past the limit, or once merged with a part whose values were not kept, the
    values are gone for good and ``values`` is ``None``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[np.ndarray] | None = [] if limit > 0 else None
        self.size = 0

    def add(self, values: np.ndarray) -> None:
        if self.parts is None:
            return
        self.size += int(values.size)
        if self.size > self.limit:
            self.parts = None
        else:
            self.parts.append(np.array(values, dtype=np.float64))

    def discard(self) -> None:
        self.parts = None

    def merge(self, other: _FirstValues) -> None:
        """Keep both parts' numbers while together they are at most ``limit``."""
        if self.parts is None or other.parts is None or self.size + other.size > self.limit:
            self.parts = None
            return
        self.parts.extend(other.parts)
        self.size += other.size

    @property
    def values(self) -> np.ndarray | None:
        if self.parts is None:
            return None
        return np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.float64)
