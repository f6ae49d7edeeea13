"""The run model: statuses, metric points and chunks, summaries and result rows, in one place.

Everything that writes a run (the writer, ``aletheia sync``, the MLflow
plugin) and everything that reads one (the read API, the CLI, the MLflow
views, the exporter) goes through these definitions, so a run is encoded
one way and decoded one way.

A metric series is stored as chunk documents of ``CHUNK_POINTS`` points:
point ``i`` of a key lives in chunk ``i // CHUNK_POINTS`` as parallel
``steps``/``values``/``times`` arrays starting at ``first_index``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aletheia.cloud import layout

RUNNING, FINISHED, FAILED, CRASHED, INTERRUPTED = (
    "running",
    "finished",
    "failed",
    "crashed",
    "interrupted",
)
STATUSES = (RUNNING, FINISHED, FAILED, CRASHED, INTERRUPTED)
#: Statuses a process writes when it ends a run (``crashed`` is only ever inferred or settled).
ENDED = (FINISHED, FAILED, INTERRUPTED)

#: Points per chunk document: ~30 KB per chunk, far below Firestore's 1 MiB.
CHUNK_POINTS = 1000
#: Default seconds between heartbeats.
HEARTBEAT_S = 30.0
#: A running run whose heartbeat is older than this many intervals is crashed.
STALE_HEARTBEATS = 3


def now() -> dt.datetime:
    """Timezone-aware UTC now."""
    return dt.datetime.now(dt.timezone.utc)


def utc(ts: float) -> dt.datetime:
    """A timezone-aware UTC datetime from epoch seconds."""
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


def epoch(value: Any) -> float:
    """Epoch seconds of a stored timestamp (0.0 when there is none)."""
    return value.timestamp() if hasattr(value, "timestamp") else 0.0


def effective_status(doc: Mapping[str, Any], at: dt.datetime | None = None) -> str:
    """The status a reader should show: a ``running`` run with a stale heartbeat is crashed."""
    status = str(doc.get("status", RUNNING))
    if status != RUNNING:
        return status
    beat = doc.get("heartbeat_at") or doc.get("started_at")
    interval = float(doc.get("heartbeat_interval_s") or HEARTBEAT_S)
    if isinstance(beat, dt.datetime):
        age = ((at or now()) - beat).total_seconds()
        if age > STALE_HEARTBEATS * interval:
            return CRASHED
    return status


@dataclass(frozen=True)
class RunRef:
    """Where a run lives."""

    project: str
    experiment: str
    run: str

    @property
    def path(self) -> str:
        """The run document."""
        return layout.run(self.project, self.experiment, self.run)

    def chunk_path(self, key: str, chunk: int) -> str:
        """A metric chunk document."""
        return layout.metric_chunk(self.project, self.experiment, self.run, key, chunk)


@dataclass
class Point:
    """One logged metric value: its per-key ``index``, ``step``, ``value`` and epoch ``ts``."""

    index: int
    step: int
    value: float
    ts: float

    @property
    def epoch_ms(self) -> int:
        """``ts`` in whole epoch milliseconds (MLflow's timestamps)."""
        return int(self.ts * 1000)


def chunk_of(index: int) -> int:
    """The chunk number holding per-key index ``index``."""
    return index // CHUNK_POINTS


def chunk_count(points: int) -> int:
    """How many chunk documents hold a series of ``points`` points."""
    return (points + CHUNK_POINTS - 1) // CHUNK_POINTS


def chunk_doc(key: str, chunk: int, points: Iterable[Point]) -> dict[str, Any]:
    """The document of one chunk: parallel arrays of steps, values and times."""
    pts = list(points)
    return {
        "key": key,
        "chunk": chunk,
        "first_index": chunk * CHUNK_POINTS,
        "count": len(pts),
        "steps": [p.step for p in pts],
        "values": [p.value for p in pts],
        "times": [utc(p.ts) for p in pts],
    }


def chunk_points(doc: Mapping[str, Any]) -> list[Point]:
    """The points of a stored chunk document, in index order."""
    first = int(doc.get("first_index", 0))
    rows = zip(doc["steps"], doc["values"], doc["times"], strict=False)
    return [
        Point(first + i, int(step), float(value), epoch(ts))
        for i, (step, value, ts) in enumerate(rows)
    ]


def merge_fields(into: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``update`` to ``into`` as successive Firestore ``set(..., merge=True)`` would.

    Nested maps merge key by key (three tag updates keep three tags); any other
    value, an empty map included, replaces. Neither argument's nested maps are
    mutated: they may be shared with a run's own ``fields``.
    """
    for key, value in update.items():
        old = into.get(key)
        if isinstance(value, Mapping) and value and isinstance(old, Mapping):
            into[key] = merge_fields(dict(old), value)
        else:
            into[key] = value
    return into


@dataclass
class Summary:
    """Running summary of one metric: what the run document shows."""

    count: int = 0
    last: float | None = None
    last_step: int | None = None
    min: float | None = None
    max: float | None = None
    nonfinite: int = 0

    def add(self, step: int, value: float) -> None:
        """Fold one point in (non-finite values are counted, not min/max'd)."""
        self.count += 1
        self.last, self.last_step = value, step
        if not math.isfinite(value):
            self.nonfinite += 1
            return
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)

    def to_doc(self) -> dict[str, Any]:
        """The ``summary.{key}`` map."""
        return {
            "count": self.count,
            "last": self.last,
            "last_step": self.last_step,
            "min": self.min,
            "max": self.max,
            "nonfinite": self.nonfinite,
        }


def summarize(points: Iterable[Point]) -> Summary:
    """Summary of a series, in index order."""
    summary = Summary()
    for p in sorted(points, key=lambda p: p.index):
        summary.add(p.step, p.value)
    return summary


def result_doc(
    ref: RunRef, fields: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The flat ``Results/{run}`` document for leaderboards."""
    model = fields.get("model") or {}
    return {
        "run": ref.run,
        "experiment": ref.experiment,
        "number": fields.get("number"),
        "status": fields.get("status"),
        "fold": fields.get("fold"),
        "model": model.get("name") if isinstance(model, Mapping) else None,
        "started_at": fields.get("started_at"),
        "ended_at": fields.get("ended_at"),
        "hyper_params": dict(fields.get("hyper_params") or {}),
        "params": dict(fields.get("params") or {}),
        "metrics": {k: s.get("last") for k, s in summaries.items()},
        "dataset_refs": list(fields.get("dataset_refs") or []),
    }
