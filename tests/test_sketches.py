"""The profiler's sketches against exact answers computed the slow way."""

from __future__ import annotations

import numpy as np
import pytest

from aletheia.stats.sketches import HLL_PRECISION, DistinctHashes, HyperLogLog


def reference_registers(hashes: list[int], p: int = HLL_PRECISION) -> np.ndarray:
    """HyperLogLog registers by the definition, one hash at a time in plain Python."""
    registers = np.zeros(1 << p, dtype=np.uint8)
    for h in hashes:
        index = h >> (64 - p)
        rest = (h << p) & (2**64 - 1)
        rank = 64 - rest.bit_length() + 1 if rest else 64 - p + 1
        registers[index] = max(registers[index], rank)
    return registers


def test_registers_match_the_definition_including_long_runs_of_zeros() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64)
    # Remaining bits with a zero top byte (the table's fallback), all zero, or a single one.
    edge = [0, 1, 2**51, 2**52, 2**52 - 1, 2**43, 2**63, 2**64 - 1, (5 << 52) | 7]
    hashes = np.concatenate([hashes, np.array(edge, dtype=np.uint64)])
    sketch = HyperLogLog()
    for part in np.array_split(hashes, 7):
        sketch.add_hashes(part)
    assert (sketch.registers == reference_registers([int(h) for h in hashes])).all()


def test_estimate_is_within_a_few_standard_errors() -> None:
    rng = np.random.default_rng(11)
    sketch = HyperLogLog()
    distinct = rng.integers(0, 2**64 - 1, 500_000, dtype=np.uint64)
    for _ in range(3):  # repeats do not count twice
        sketch.add_hashes(distinct)
    assert abs(sketch.estimate() - 500_000) < 3 * 0.0163 * 500_000


def test_distinct_hashes_are_exact_up_to_the_limit_and_a_lower_bound_beyond() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(0, 5000, 60_000, dtype=np.uint64)  # ~5,000 distinct, repeated
    small, tight = DistinctHashes(10_000), DistinctHashes(1000)
    for part in np.array_split(values, 9):
        small.add_hashes(part)
        tight.add_hashes(part)
    truth = np.unique(values).size
    assert small.exact and small.count == truth
    assert not tight.exact and 1000 < tight.count <= truth


def test_registers_as_text_read_back_exactly_and_bad_text_is_refused() -> None:
    rng = np.random.default_rng(5)
    sketch = HyperLogLog()
    sketch.add_hashes(rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64))
    sketch.add_hashes(np.array([0, 1], dtype=np.uint64))  # the highest ranks: 51 and 64 - 13
    text = sketch.to_text()
    assert len(text) == 1 << HLL_PRECISION and text.isascii()
    assert '"' not in text and "\\" not in text  # nothing JSON escapes
    again = HyperLogLog()
    again.merge_text(text)
    assert (again.registers == sketch.registers).all()
    assert int(again.registers.max()) == 64 - HLL_PRECISION + 1
    for bad in (text[:-1], text[:-1] + "\u00e9", text[:-1] + "~", text[:-1] + " "):
        with pytest.raises(ValueError, match="HyperLogLog"):
            again.merge_text(bad)
