"""The writer-side state of one metric series: its unsent chunks and its summary."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from aletheia.tracking.runmodel import CHUNK_POINTS, Summary, chunk_columns_doc, chunk_of

#: A point as the writer holds it until Firestore has it: ``(index, step, value, ts)``. A plain
#: tuple of numbers, which the garbage collector stops tracking after its first pass: a run
#: holds tens of thousands while Firestore is behind, and as tracked objects (``Point``) they
#: were walked by every full collection of the training process (a 0.2 s ``add_metric`` stall).
Row = tuple[int, int, float, float]


def rows_doc(key: str, chunk: int, rows: list[Row]) -> dict[str, Any]:
    """The chunk document of ``rows``, its columns split apart in C (``zip``): no ``Point``
    per row, which the collector would track, and no Python frame per value."""
    if not rows:
        return chunk_columns_doc(key, chunk, [], [], [])
    _, steps, values, times = zip(*rows, strict=True)
    return chunk_columns_doc(key, chunk, list(steps), list(values), list(times))


class Columns:
    """The points of one key logged since the writer last drained: steps, values and times
    in typed arrays: C numbers, no object per point for the garbage collector to count."""

    __slots__ = ("steps", "times", "values")

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.times = array("d")

    def __len__(self) -> int:
        return len(self.steps)


def new_columns() -> Columns:
    """Empty columns for a key's next points."""
    return Columns()


@dataclass
class Series:
    """Writer-side state of one metric: unsent chunks and its summary."""

    key: str
    summary: Summary = field(default_factory=Summary)
    chunks: dict[int, list[Row]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    received: int = 0  # points drained from the buffer
    summarized: bool = True  # within the run document's summary budget
    refused: set[int] = field(default_factory=set)  # chunks Firestore refused: not resent

    def add(self, index: int, step: int, value: float, ts: float) -> None:
        """One point, drained from the writer's buffer."""
        n = chunk_of(index)
        self.chunks.setdefault(n, []).append((index, step, value, ts))
        self.dirty.add(n)
        self.summary.add(step, value, ts)
        self.received += 1

    def extend(self, first: int, columns: Columns) -> None:
        """The points of ``columns``, the first of them at per-key index ``first``."""
        for index, step, value, ts in zip(
            range(first, first + len(columns)),
            columns.steps,
            columns.values,
            columns.times,
            strict=True,
        ):
            self.add(index, step, value, ts)

    def acknowledged(self, sent: set[int]) -> None:
        """Forget sent chunks that are full; keep the tail (it will grow)."""
        self.dirty -= sent
        for n in sent:
            if len(self.chunks.get(n, ())) >= CHUNK_POINTS:
                del self.chunks[n]
