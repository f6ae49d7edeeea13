"""What Firestore actually holds of a run, compared with what its writer knows it should.

An acknowledgement only proves that Firestore held a write at that moment.
A local emulator killed and restarted from an older export (or a database
restored from a backup) forgets writes it acknowledged, and nothing tells
the writer: a restart between two flushes fails no commit at all. So the
writer checks at the end of every run (and after every reconnect), and
``aletheia sync --verify`` checks journals already marked synced: the run
document and each chunk's point count are read back and compared with what
was logged; what is missing is written again from the journal (whole
chunks, same ids, so rewriting is harmless).

Compared: every chunk's ``count`` (a chunk's content is fixed by its
points, so a full count is the right content); every top-level field the
run set; and values where an older copy shows in them and nobody else
changes them: a run that ended but is stored ``running`` (or without
``ended_at``), a metric summary counting fewer points than were logged.

Reads are cheap: one read of the run document and one ``get_all`` per 300
chunks, reading only each chunk's ``count`` field: O(chunks) documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.tracking.runmodel import Point

#: A run's status while it runs (as :mod:`aletheia.tracking.metastore` names it).
RUNNING = "running"

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
    chunks: Mapping[str, Mapping[int, int]],
    fields: Mapping[str, Any],
    summaries: Mapping[str, int] | None = None,
    *,
    call: Mapping[str, Any] | None = None,
) -> Gaps:
    """Compare Firestore with what a run logged (each read with ``call``'s ``retry=``/
    ``timeout=``, see :func:`aletheia.cloud.transient.bounded`; the library's if not given).

    ``chunk_path(key, n)`` builds a chunk's document path; ``chunks`` the
    number of points logged per key and chunk (:func:`chunk_counts`);
    ``fields`` the run-document fields set; ``summaries`` the points each
    summarised metric counts.
    """
    expected: dict[str, int] = {}  # chunk path -> points logged there
    where: dict[str, tuple[str, int]] = {}
    for key, per_chunk in chunks.items():
        for n, count in per_chunk.items():
            path = chunk_path(key, n)
            expected[path] = count
            where[path] = (key, n)
    gaps = Gaps()
    call = call or {}
    run = db.document(run_path).get(**call)
    if not run.exists:
        gaps.run_missing = True
        gaps.fields = sorted(fields)
    else:
        data = run.to_dict() or {}
        gaps.fields = sorted(k for k, v in fields.items() if _lacks(k, v, data))
        stored = data.get("summary") or {}
        behind = any(
            (stored.get(k) or {}).get("count", 0) < n for k, n in (summaries or {}).items()
        )
        if behind and "summary" not in gaps.fields:
            gaps.fields.append("summary")
    stored_counts = _stored_counts(db, list(expected), call)
    for path, count in expected.items():
        if stored_counts.get(path, 0) < count:
            key, n = where[path]
            gaps.chunks.setdefault(key, set()).add(n)
            gaps.points += count
    return gaps


def _lacks(name: str, value: Any, stored: Mapping[str, Any]) -> bool:
    """True when ``stored`` misses field ``name``, or holds an older value of it: a run
    that ended stored as ``running`` or without its end (unless resumed since, by MLflow).

    Other values, and the keys inside maps, may rightly have changed since
    the run set them (an MLflow tag deleted, a param merged by another
    process), so only their presence is checked.
    """
    if name not in stored:
        return True
    if stored.get("resumed_at"):
        return False
    if name == "status":
        return value not in (None, RUNNING) and stored[name] in (None, RUNNING)
    if name == "ended_at":
        return value is not None and stored[name] is None
    return False


def chunk_counts(
    points: Mapping[str, Iterable[Point]], chunk_points: int
) -> dict[str, dict[int, int]]:
    """Points per key and chunk, from a journal's points (any order, gaps allowed)."""
    return {key: _chunk_counts(pts, chunk_points) for key, pts in points.items()}


def gapless_counts(received: Mapping[str, int], chunk_points: int) -> dict[str, dict[int, int]]:
    """Points per key and chunk of series logged without gaps (indexes 0 .. n - 1)."""
    out: dict[str, dict[int, int]] = {}
    for key, n in received.items():
        out[key] = {
            c: min(chunk_points, n - c * chunk_points) for c in range(-(-n // chunk_points))
        }
    return out


def _chunk_counts(points: Iterable[Point], chunk_points: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for p in points:
        n = p.index // chunk_points
        counts[n] = counts.get(n, 0) + 1
    return counts


def _stored_counts(
    db: firestore.Client, paths: list[str], call: Mapping[str, Any]
) -> dict[str, int]:
    """``count`` of each chunk document that exists."""
    out: dict[str, int] = {}
    for start in range(0, len(paths), _READ_BATCH):
        refs = [db.document(p) for p in paths[start : start + _READ_BATCH]]
        for snap in db.get_all(refs, field_paths=["count"], **call):
            if snap.exists:
                out[snap.reference.path] = int((snap.to_dict() or {}).get("count") or 0)
    return out


def run_chunk_path(project: str, experiment: str, run: str) -> Any:
    """``chunk_path`` for :func:`find_gaps` of one run."""

    def build(key: str, n: int) -> str:
        return layout.metric_chunk(project, experiment, run, key, n)

    return build
