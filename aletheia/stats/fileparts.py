"""Where one data file can be cut into parts that are read side by side.

A CSV file is cut into byte ranges, each starting just after a line end;
a Parquet file into runs of whole row groups. The first part reads the
header as a single pass would; each later part reads its range with the
column names and types the first part found (:class:`Part`). A cut after a
line end is a row boundary unless that line end is inside a quoted value:
the reader notices any value or bad row spanning lines, and the profiler
then reads the file in one pass instead (:mod:`aletheia.stats.parallel`).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa

#: Longest stretch searched for a line end after a nominal cut (the reader's longest row).
_SEARCH_MAX = 16 << 20
_SEARCH_STEP = 64 << 10
_CPU_MAX = "/sys/fs/cgroup/cpu.max"


@dataclass(frozen=True)
class Part:
    """One part of a file: a byte range of a CSV file, or row groups of a Parquet file."""

    index: int = 0
    start: int = 0
    end: int | None = None  # exclusive; None: to the end of the file
    #: CSV parts after the first: every column name and the types the first part read.
    names: tuple[str, ...] = ()
    types: tuple[tuple[str, pa.DataType], ...] = ()
    #: CSV parts after the first: their blocks (at most the plan's). The first part's
    #: first block is the one a single pass infers the types from: it keeps the plan's.
    block_size: int | None = None
    row_groups: tuple[int, ...] | None = None  # Parquet

    @property
    def ranged(self) -> bool:
        """True if the part is a byte range rather than the whole stream."""
        return self.start > 0 or self.end is not None


def cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota.

    A container (Cloud Run, a Cloud Function) may see every core of its host
    but be allowed a fraction of one: parts beyond its quota only cost memory.
    """
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    try:
        quota, period = Path(_CPU_MAX).read_text().split()[:2]
        if quota != "max":
            count = min(count, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to honour
    return max(1, count)


def wanted_parts(size: int, parts: int, min_part_bytes: int) -> int:
    """How many parts a file of ``size`` bytes is worth (``parts`` 0: one per core)."""
    limit = parts if parts > 0 else cores()
    return max(1, min(limit, size // max(min_part_bytes, 1)))


def header_end(head: bytes, skip_rows: int, header: bool, delimiter: str) -> int | None:
    """Offset just after the skipped lines and the header line in ``head``, or ``None``.

    ``None`` when that is unsure: the head holds fewer line ends, or a quoted
    field there spans lines (then lines are not rows).
    """
    at = 0
    for _ in range(skip_rows):
        at = head.find(b"\n", at) + 1
        if at == 0:
            return None
    if header:
        while head[at : at + 1] in (b"\n", b"\r"):  # blank lines before the header
            at += 1
        at = head.find(b"\n", at) + 1
        if at == 0:
            return None
    text = head[:at].decode("utf-8", errors="replace")
    try:
        records = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        return None
    return at if records == text.count("\n") else None


def csv_cuts(stream: IO[bytes], size: int, n: int, first: int) -> list[int]:
    """Up to ``n - 1`` offsets, each just after a line end, splitting ``size`` bytes evenly.

    No cut falls before ``first`` (the end of the header); nominal cuts with
    no line end within reach are dropped, so fewer parts may come back.
    """
    cuts: list[int] = []
    for i in range(1, n):
        nominal = max(size * i // n, first, cuts[-1] if cuts else 0)
        cut = _next_line_start(stream, nominal, size)
        if cut is not None and cut < size and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    return cuts


def _next_line_start(stream: IO[bytes], at: int, size: int) -> int | None:
    """The offset just after the first ``\\n`` at or after ``at - 1``."""
    position = max(at - 1, 0)  # a line ending right before ``at`` makes ``at`` a cut
    stream.seek(position)
    while position < min(size, at + _SEARCH_MAX):
        data = stream.read(_SEARCH_STEP)
        if not data:
            return None
        found = data.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(data)
    return None


def byte_parts(cuts: Sequence[int]) -> list[tuple[int, int | None]]:
    """The byte ranges ``cuts`` make: ``[(0, c1), (c1, c2), ..., (ck, None)]``."""
    starts = [0, *cuts]
    ends: list[int | None] = [*cuts, None]
    return list(zip(starts, ends, strict=True))


def row_group_parts(rows: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """Consecutive row groups in at most ``n`` runs of about equal rows (``rows``: per group)."""
    total = sum(rows)
    if n <= 1 or len(rows) <= 1 or total == 0:
        return [tuple(range(len(rows)))]
    runs: list[tuple[int, ...]] = []
    current: list[int] = []
    done = 0
    for index, count in enumerate(rows):
        current.append(index)
        done += count
        # Close the run once it reaches its share of all rows.
        if done * n >= total * (len(runs) + 1) and len(runs) < n - 1:
            runs.append(tuple(current))
            current = []
    if current:
        runs.append(tuple(current))
    return runs


class RangeReader(io.RawIOBase):
    """Bytes ``[start, end)`` of a seekable stream, read as a stream of their own."""

    def __init__(self, raw: IO[bytes], start: int, end: int | None) -> None:
        super().__init__()
        self._raw = raw
        raw.seek(start)
        self._left = None if end is None else end - start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left is not None:
            if self._left <= 0:
                return b""
            size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(size)
        if self._left is not None:
            self._left -= len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()
