"""The writer-side state of one metric series: its unsent chunks and its summary.

Points are held as columns of C numbers (:class:`Columns`, typed arrays),
from ``add_metric`` until Firestore has them: no object per point. A tuple
per point (and before it a ``Point``) was a tracked allocation that set off
a young collection every 700 points, and promoted tens of thousands of them
towards the full collection that walks every object of the training process
while ``add_metric`` waits for the GIL.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aletheia.tracking.runmodel import CHUNK_POINTS, Summary, chunk_columns_doc, chunk_of


class Columns:
    """Points in index order: their steps, values and times (epoch seconds) in typed arrays."""

    __slots__ = ("steps", "times", "values")

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.times = array("d")

    def __len__(self) -> int:
        return len(self.steps)

    def extend(self, other: Columns, start: int, stop: int) -> None:
        """Append ``other``'s points ``start`` to ``stop`` (C copies, no Python per point)."""
        self.steps.extend(other.steps[start:stop])
        self.values.extend(other.values[start:stop])
        self.times.extend(other.times[start:stop])


def new_columns() -> Columns:
    """Empty columns for a key's next points."""
    return Columns()


def columns_of(points: Iterable[tuple[int, float, float]]) -> Columns:
    """Columns holding ``(step, value, ts)`` points, in order."""
    out = Columns()
    for step, value, ts in points:
        out.steps.append(step)
        out.values.append(value)
        out.times.append(ts)
    return out


def columns_doc(key: str, chunk: int, columns: Columns) -> dict[str, Any]:
    """The chunk document of ``columns`` (lists made from the arrays in C)."""
    return chunk_columns_doc(
        key, chunk, columns.steps.tolist(), columns.values.tolist(), columns.times.tolist()
    )


@dataclass
class Series:
    """Writer-side state of one metric: unsent chunks and its summary."""

    key: str
    summary: Summary = field(default_factory=Summary)
    chunks: dict[int, Columns] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    received: int = 0  # points drained from the buffer
    summarized: bool = True  # within the run document's summary budget
    refused: set[int] = field(default_factory=set)  # chunks Firestore refused: not resent

    def extend(self, first: int, columns: Columns) -> None:
        """The points of ``columns``, the first of them at per-key index ``first``; a chunk's
        points start at its first index (``chunk * CHUNK_POINTS``)."""
        add = self.summary.add
        for step, value, ts in zip(columns.steps, columns.values, columns.times, strict=True):
            add(step, value, ts)
        done, total = 0, len(columns)
        while done < total:
            index = first + done
            n = chunk_of(index)
            take = min(total - done, (n + 1) * CHUNK_POINTS - index)
            chunk = self.chunks.get(n)
            if chunk is None:
                chunk = self.chunks[n] = Columns()
            chunk.extend(columns, done, done + take)
            self.dirty.add(n)
            done += take
        self.received += total

    def full(self, chunk: int) -> bool:
        """Whether chunk ``chunk`` holds all its points (it will not change again)."""
        return len(self.chunks.get(chunk, ())) >= CHUNK_POINTS

    def acknowledged(self, sent: set[int]) -> None:
        """Forget sent chunks that are full; keep the tail (it will grow)."""
        self.dirty -= sent
        for n in sent:
            if self.full(n):
                del self.chunks[n]
