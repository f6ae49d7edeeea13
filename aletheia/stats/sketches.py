"""Bounded-memory summaries of a column seen one batch at a time.

Each sketch keeps a fixed amount of state however many rows stream through,
which is what lets the profiler read a file many times bigger than its
memory: an exact set of hashes for distinct counts while it stays small and
HyperLogLog beyond, Chan's merge of running moments for mean and standard
deviation. Quantiles and frequent values of big columns come from
Apache DataSketches (:mod:`aletheia.stats.colsketch`).

Every sketch here merges with another of its kind and serialises to bytes
or plain numbers, so profiles of parts of a table combine into the
profile of the whole (:mod:`aletheia.stats.merge`).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

#: HyperLogLog precision: 2**14 registers, ~0.8 % standard error, 16 KiB of state per column.
HLL_PRECISION = 14
#: Relative standard error of the estimate: 1.04 / sqrt(2**HLL_PRECISION).
HLL_RELATIVE_ERROR = 1.04 / math.sqrt(1 << HLL_PRECISION)


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

    def merge(self, other: HyperLogLog) -> None:
        """Fold ``other`` in: the register-wise maximum is the sketch of the union."""
        if other.p != self.p:
            raise ValueError(f"HyperLogLog precisions differ: {self.p} and {other.p}")
        np.maximum(self.registers, other.registers, out=self.registers)

    def merge_bytes(self, data: bytes) -> None:
        """Fold in registers as profiles of sketch format 1 stored them (bytes: precision,
        codec, then the registers raw or deflated)."""
        np.maximum(self.registers, _registers(data, self.p), out=self.registers)

    def to_text(self) -> str:
        """The registers as text, one character per register (``chr(35 + value)``).

        A profile is JSON, where bytes cost base64 and deflated bytes cost
        inflating too: merging 1,000 profiles spent most of its time there.
        A register is at most ``65 - p`` (51), so ``#`` (35) to ``V`` (86)
        hold every value without a character JSON escapes (quote, backslash),
        and reading it back is one copy and one subtraction.
        """
        return (self.registers + np.uint8(_TEXT_OFFSET)).tobytes().decode("ascii")

    def merge_text(self, text: str) -> None:
        """Fold in the registers :meth:`to_text` wrote (``ValueError`` for other text)."""
        np.maximum(self.registers, _text_registers(text, self.p), out=self.registers)

    def estimate(self) -> int:
        """The distinct-count estimate."""
        m = float(self.m)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.power(2.0, -self.registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return round(m * math.log(m / zeros))
        return round(raw)


_RAW, _DEFLATED = 0, 1
#: Register value 0 as text (:meth:`HyperLogLog.to_text`): ``#``.
_TEXT_OFFSET = 35


def _text_registers(text: str, precision: int) -> np.ndarray:
    """The registers :meth:`HyperLogLog.to_text` wrote, checked against ``precision``'s."""
    try:
        chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        raise ValueError("HyperLogLog registers are not ASCII text") from exc
    if chars.size != 1 << precision:
        raise ValueError(f"HyperLogLog registers: {chars.size}, not {1 << precision}")
    registers = chars - np.uint8(_TEXT_OFFSET)  # wraps below '#': caught by the bound
    if registers.size and int(registers.max()) > 64 - precision + 1:
        raise ValueError("HyperLogLog registers out of range")
    return registers


def _registers(data: bytes, precision: int) -> np.ndarray:
    """The read-only registers in format-1 ``data`` (``ValueError`` if not ``precision``'s)."""
    if data[0] != precision:
        raise ValueError(f"HyperLogLog precisions differ: {precision} and {data[0]}")
    body = zlib.decompress(data[2:]) if data[1] == _DEFLATED else data[2:]
    registers = np.frombuffer(body, dtype=np.uint8)
    if registers.size != 1 << precision:
        raise ValueError("HyperLogLog registers of the wrong size")
    return registers


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
        # A batch's own distinct values first (sort + neighbour test: NumPy's unique takes
        # a hash path ~10x slower here): a column of few values leaves only those few to
        # look up below.
        h = np.sort(hashes.astype(np.uint64, copy=False))
        h = h[np.concatenate(([True], h[1:] != h[:-1]))]
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

    def merge(self, other: DistinctHashes) -> None:
        """Fold ``other`` in: the union while both are exact, else only the lower bound."""
        if self.exact and other.exact:
            self.add_hashes(other.hashes)
            return
        self.floor = max(self.floor, other.floor)
        self.exact = False
        self.hashes = np.empty(0, dtype=np.uint64)

    def to_bytes(self) -> bytes:
        """The sorted hashes (little-endian uint64), meaningful only while ``exact``."""
        return self.hashes.astype("<u8").tobytes()

    @classmethod
    def from_state(cls, limit: int, exact: bool, floor: int, data: bytes) -> DistinctHashes:
        """A set as stored: its hashes while exact, else only the lower bound ``floor``."""
        out = cls(limit)
        out.exact = exact
        out.floor = floor
        if exact:
            out.hashes = np.frombuffer(data, dtype="<u8").astype(np.uint64)
            out.floor = int(out.hashes.size)
        return out


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
        self.merge(Moments(n_b, mean_b, float(np.sum((values - mean_b) ** 2))))

    def merge(self, other: Moments) -> None:
        """Fold ``other`` in (Chan et al.'s pairwise update: exact up to rounding)."""
        if other.n == 0:
            return
        total = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / total
        self.m2 += other.m2 + delta * delta * self.n * other.n / total
        self.n = total

    def to_list(self) -> list[float]:
        """``[n, mean, m2]``, JSON-safe."""
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_list(cls, state: list[float]) -> Moments:
        """The moments :meth:`to_list` wrote."""
        return cls(int(state[0]), float(state[1]), float(state[2]))

    @property
    def std(self) -> float | None:
        """Sample standard deviation (``None`` below two values)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None
