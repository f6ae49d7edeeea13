"""The writer-side state of one metric series: its unsent chunks and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from aletheia.tracking.runmodel import CHUNK_POINTS, Point, Summary, chunk_of


@dataclass
class Series:
    """Writer-side state of one metric: unsent chunks and its summary."""

    key: str
    summary: Summary = field(default_factory=Summary)
    chunks: dict[int, list[Point]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    received: int = 0  # points drained from the buffer
    summarized: bool = True  # within the run document's summary budget
    refused: set[int] = field(default_factory=set)  # chunks Firestore refused: not resent

    def add(self, point: Point) -> None:
        n = chunk_of(point.index)
        self.chunks.setdefault(n, []).append(point)
        self.dirty.add(n)
        self.summary.add(point.step, point.value, point.ts)
        self.received += 1

    def acknowledged(self, sent: set[int]) -> None:
        """Forget sent chunks that are full; keep the tail (it will grow)."""
        self.dirty -= sent
        for n in sent:
            if len(self.chunks.get(n, ())) >= CHUNK_POINTS:
                del self.chunks[n]
