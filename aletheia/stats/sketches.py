"""Bounded-memory summaries of a column seen one batch at a time.

Each sketch keeps a fixed amount of state however many rows stream through,
which is what lets the profiler read a file many times bigger than its
memory: an exact set of hashes for distinct counts while it stays small and
HyperLogLog beyond, Misra-Gries counters for frequent values, a priority
reservoir for quantiles and histograms, Chan's merge of running moments for
mean and standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: HyperLogLog precision: 2**14 registers, ~0.8 % standard error, 16 KiB of state per column.
HLL_PRECISION = 14


#: Leading zeros of a byte, plus one (9 for a zero byte: look further).
_RANK_OF_TOP_BYTE = np.array([9] + [8 - int(b).bit_length() + 1 for b in range(1, 256)], np.uint8)


class HyperLogLog:
    """Approximate distinct count from 64-bit hashes (Flajolet et al., with linear counting)."""

    def __init__(self, precision: int = HLL_PRECISION) -> None:
        self.p = precision
        self.m = 1 << precision
        self.registers = np.zeros(self.m, dtype=np.uint8)

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Fold a batch of uint64 hashes into the registers."""
        if hashes.size == 0:
            return
        h = hashes.astype(np.uint64, copy=False)
        index = (h >> np.uint64(64 - self.p)).astype(np.intp)
        rest = h << np.uint64(self.p)
        # rank = leading zeros of the remaining bits + 1. The top byte decides for all but
        # 1 in 256 hashes (a table lookup); only those go the slow way.
        rank = _RANK_OF_TOP_BYTE[(rest >> np.uint64(56)).astype(np.intp)]
        deep = np.flatnonzero(rank > 8)
        if deep.size:
            rank[deep] = self._deep_rank(rest[deep])
        np.maximum.at(self.registers, index, rank)

    def _deep_rank(self, rest: np.ndarray) -> np.ndarray:
        """Rank of values whose top byte is zero (float log2 is exact enough here)."""
        bits = np.zeros(rest.shape, dtype=np.int64)
        nonzero = rest > 0
        bits[nonzero] = np.floor(np.log2(rest[nonzero].astype(np.float64))).astype(np.int64) + 1
        return np.where(nonzero, 64 - bits + 1, 64 - self.p + 1).astype(np.uint8)

    def estimate(self) -> int:
        """The distinct-count estimate."""
        m = float(self.m)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.power(2.0, -self.registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return round(m * math.log(m / zeros))
        return round(raw)


class DistinctHashes:
    """Exact distinct count of 64-bit hashes while at most ``limit`` of them are distinct.

    Beyond the limit the set is dropped (HyperLogLog takes over) and only a
    lower bound is kept: the number of distinct hashes seen when it overflowed.
    Different hashes are different values, so the count never overstates; equal
    hashes of different values (one in ~10^9 pairs at this size) would understate.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.hashes = np.empty(0, dtype=np.uint64)  # sorted, unique
        self.exact = True
        self.floor = 0

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Fold a batch of uint64 hashes into the set (or only the floor, past the limit)."""
        if not self.exact or hashes.size == 0:
            return
        h = hashes.astype(np.uint64, copy=False)
        if self.hashes.size:
            # Most batches of a low-cardinality column bring nothing new: a binary search
            # per value is cheaper than re-sorting the union.
            pos = np.minimum(np.searchsorted(self.hashes, h), self.hashes.size - 1)
            h = h[self.hashes[pos] != h]
            if h.size == 0:
                return
        merged = np.concatenate([self.hashes, h])
        merged.sort()  # sort + neighbour test: ~100x faster than np.union1d's hash path here
        merged = merged[np.concatenate(([True], merged[1:] != merged[:-1]))]
        self.floor = int(merged.size)
        if merged.size > self.limit:
            self.exact = False
            self.hashes = np.empty(0, dtype=np.uint64)
        else:
            self.hashes = merged

    @property
    def count(self) -> int:
        """Distinct hashes seen: exact while ``exact``, else a lower bound."""
        return self.floor


class FrequentValues:
    """Misra-Gries counters: the heavy hitters of a stream in ``capacity`` counters.

    While no counter was ever evicted the counts are exact (``exact``), which
    also makes the number of counters an exact distinct count for small
    domains.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[Any, int] = {}
        self.exact = True

    def add_counts(self, values: list[Any], counts: list[int], complete: bool = True) -> None:
        """Merge one batch's value counts.

        ``complete=False`` says the batch's counts were cut to its most frequent
        values before they got here: the counters then no longer hold every
        value, so they are not exact any more (neither as counts nor as a
        distinct count), even if they never overflow.
        """
        if not complete:
            self.exact = False
        for value, count in zip(values, counts, strict=True):
            self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > self.capacity:
            self.exact = False
            ordered = sorted(self.counts.values(), reverse=True)
            cut = ordered[self.capacity]
            self.counts = {v: c - cut for v, c in self.counts.items() if c > cut}

    def top(self, k: int) -> list[tuple[Any, int]]:
        """The ``k`` most frequent values with their (lower-bound) counts."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]


class Reservoir:
    """A uniform random sample of at most ``size`` values (priority sampling)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.keys = np.empty(0, dtype=np.float64)
        self.values = np.empty(0, dtype=np.float64)

    def add(self, values: np.ndarray) -> None:
        """Offer a batch of values; each survives with equal probability overall."""
        if values.size == 0:
            return
        keys = self.rng.random(values.size)
        if self.keys.size >= self.size:
            keep = keys > self.keys.min()
            keys, values = keys[keep], values[keep]
        all_keys = np.concatenate([self.keys, keys])
        all_values = np.concatenate([self.values, values.astype(np.float64)])
        if all_keys.size > self.size:
            top = np.argpartition(all_keys, -self.size)[-self.size :]
            all_keys, all_values = all_keys[top], all_values[top]
        self.keys, self.values = all_keys, all_values


@dataclass
class Moments:
    """Count, mean and sum of squared deviations, merged batch by batch (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Merge a batch of finite values."""
        n_b = int(values.size)
        if n_b == 0:
            return
        mean_b = float(np.mean(values))
        m2_b = float(np.sum((values - mean_b) ** 2))
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total

    @property
    def std(self) -> float | None:
        """Sample standard deviation (``None`` below two values)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None
