"""What Firestore actually holds of a run, compared with what its journal says it should.

An acknowledgement only proves that Firestore held a write at that moment.
A local emulator killed and restarted from an older export (or a database
restored from a backup) forgets writes it acknowledged, and nothing tells
the writer. So after a reconnect the writer, and ``aletheia sync --verify``
for a journal already marked synced, read back the run document and the
chunk documents' counts and compare them with the journal: what is missing
is written again from the journal (whole chunks, same ids, so rewriting is
harmless).

Reads are cheap: one ``get_all`` of the run document and every chunk the
journal implies, reading only each chunk's ``count`` field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.tracking.runmodel import Point

#: Documents per ``get_all`` call.
_READ_BATCH = 300


@dataclass
class Gaps:
    """What Firestore lacks of a run."""

    #: Per metric key, the chunk numbers missing or holding fewer points than the journal.
    chunks: dict[str, set[int]] = field(default_factory=dict)
    #: Top-level run-document fields the journal set and the document lacks.
    fields: list[str] = field(default_factory=list)
    #: The run document itself is gone.
    run_missing: bool = False
    #: Points in the missing or short chunks (what a replay writes again).
    points: int = 0

    def __bool__(self) -> bool:
        return bool(self.chunks or self.fields or self.run_missing)

    def describe(self) -> str:
        """One line for a warning: how much is missing."""
        parts = []
        if self.points:
            n = sum(len(c) for c in self.chunks.values())
            parts.append(f"{self.points:,} points in {n} chunk(s)")
        if self.run_missing:
            parts.append("the run document")
        elif self.fields:
            parts.append(f"field(s) {', '.join(sorted(self.fields))}")
        return " and ".join(parts) or "nothing"


def find_gaps(
    db: firestore.Client,
    run_path: str,
    chunk_path: Any,
    points: Mapping[str, Sequence[Point]],
    fields: Mapping[str, Any],
    chunk_points: int,
) -> Gaps:
    """Compare Firestore with a run's journal.

    ``chunk_path(key, n)`` builds a chunk's document path; ``points`` are the
    journal's points per key (any order); ``fields`` the run-document fields
    the journal set (top-level names are checked, not values: a later write
    by the run itself may rightly have changed them).
    """
    expected: dict[str, int] = {}  # chunk path -> points the journal holds there
    where: dict[str, tuple[str, int]] = {}
    for key, pts in points.items():
        for n, count in _chunk_counts(pts, chunk_points).items():
            path = chunk_path(key, n)
            expected[path] = count
            where[path] = (key, n)
    gaps = Gaps()
    run = db.document(run_path).get()
    if not run.exists:
        gaps.run_missing = True
        gaps.fields = sorted(fields)
    else:
        data = run.to_dict() or {}
        gaps.fields = sorted(k for k in fields if k not in data)
    stored = _stored_counts(db, list(expected))
    for path, count in expected.items():
        if stored.get(path, 0) < count:
            key, n = where[path]
            gaps.chunks.setdefault(key, set()).add(n)
            gaps.points += count
    return gaps


def _chunk_counts(points: Iterable[Point], chunk_points: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for p in points:
        n = p.index // chunk_points
        counts[n] = counts.get(n, 0) + 1
    return counts


def _stored_counts(db: firestore.Client, paths: list[str]) -> dict[str, int]:
    """``count`` of each chunk document that exists."""
    out: dict[str, int] = {}
    for start in range(0, len(paths), _READ_BATCH):
        refs = [db.document(p) for p in paths[start : start + _READ_BATCH]]
        for snap in db.get_all(refs, field_paths=["count"]):
            if snap.exists:
                out[snap.reference.path] = int((snap.to_dict() or {}).get("count") or 0)
    return out


def run_chunk_path(project: str, experiment: str, run: str) -> Any:
    """``chunk_path`` for :func:`find_gaps` of one run."""

    def build(key: str, n: int) -> str:
        return layout.metric_chunk(project, experiment, run, key, n)

    return build
