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
import functools
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


#: :func:`utc` as one C callable, mapped over a chunk's times without a Python frame each.
_UTC = functools.partial(dt.datetime.fromtimestamp, tz=dt.timezone.utc)


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
    return chunk_columns_doc(
        key, chunk, [p.step for p in pts], [p.value for p in pts], [p.ts for p in pts]
    )


def chunk_columns_doc(
    key: str, chunk: int, steps: list[int], values: list[float], times: list[float]
) -> dict[str, Any]:
    """:func:`chunk_doc` from the chunk's columns (``times`` in epoch seconds): the writer's
    path, which holds its points as plain rows and builds no :class:`Point` for them."""
    return {
        "key": key,
        "chunk": chunk,
        "first_index": chunk * CHUNK_POINTS,
        "count": len(steps),
        "steps": steps,
        "values": values,
        "times": list(map(_UTC, times)),
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


#: Run-document map of the points MLflow reports as a metric's latest, for the metrics whose
#: latest is not their last logged point (docs/DESIGN.md). Exempt from indexing
#: (firestore.indexes.json), so it costs none of the run document's index entries.
LATEST_FIELD = "metric_latest"

#: A point's MLflow order: the latest is the greatest ``(step, timestamp ms, value)``.
LatestKey = tuple[int, int, float]


def epoch_ms(ts: float) -> int:
    """Epoch seconds as MLflow's whole epoch milliseconds.

    Rounded, not truncated: a millisecond stamp read back from a Firestore
    timestamp is a float a hair below or above it.
    """
    return round(ts * 1000)


@dataclass
class Summary:
    """Running summary of one metric: what the run document shows.

    ``last`` is the last point logged (aletheia's rule). Beside it the summary
    folds MLflow's rule: ``latest`` is the greatest ``(step, timestamp ms,
    value)`` in logging order, as MLflow's stores keep it (a later point
    replaces it only when strictly greater, so among NaN ties the first
    stays). While the last logged point is also the latest (steps in order,
    the common case) nothing more is stored; once they part, :meth:`latest_doc`
    is written to the run document's :data:`LATEST_FIELD` and kept up to date.
    """

    count: int = 0
    last: float | None = None
    last_step: int | None = None
    min: float | None = None
    max: float | None = None
    nonfinite: int = 0
    latest: LatestKey | None = None
    #: True once the latest and the last logged point parted (the latest is then stored).
    parted: bool = False

    def add(self, step: int, value: float, ts: float | None = None) -> None:
        """Fold one point in (non-finite values are counted, not min/max'd)."""
        self.count += 1
        self.last, self.last_step = value, step
        point = (step, 0 if ts is None else epoch_ms(ts), value)
        if self.latest is None or point > self.latest:
            self.latest = point
        elif point != self.latest:
            self.parted = True
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

    def latest_doc(self) -> dict[str, Any] | None:
        """The ``metric_latest.{key}`` map, or None while the last point is the latest."""
        if not self.parted or self.latest is None:
            return None
        step, stamp, value = self.latest
        return {"step": step, "timestamp": stamp, "value": value}

    @classmethod
    def stored(
        cls,
        summary: Mapping[str, Any],
        latest: Mapping[str, Any] | None,
        last_ts: float | None,
    ) -> Summary:
        """Continue a stored summary: its ``summary.{key}`` map, its ``metric_latest.{key}``
        map (if any) and the time of its last logged point."""
        out = cls(**{k: summary[k] for k in _SUMMARY_FIELDS if k in summary})
        if latest:
            out.parted = True
            out.latest = (int(latest["step"]), int(latest["timestamp"]), float(latest["value"]))
        elif out.last is not None:
            stamp = 0 if last_ts is None else epoch_ms(last_ts)
            out.latest = (int(out.last_step or 0), stamp, float(out.last))
        return out


_SUMMARY_FIELDS = ("count", "last", "last_step", "min", "max", "nonfinite")


def summarize(points: Iterable[Point]) -> Summary:
    """Summary of a series, in index order."""
    summary = Summary()
    for p in sorted(points, key=lambda p: p.index):
        summary.add(p.step, p.value, p.ts)
    return summary


def latest_points(doc: Mapping[str, Any]) -> dict[str, tuple[float, int, int | None]]:
    """Each summarised metric's latest point by MLflow's rule: ``key -> (value, step, ms)``.

    The last logged point, unless the run document stores another as the
    latest (the time is then known; otherwise it is None).
    """
    stored = doc.get(LATEST_FIELD) or {}
    out: dict[str, tuple[float, int, int | None]] = {}
    for key, summary in (doc.get("summary") or {}).items():
        latest = stored.get(key)
        if latest and latest.get("value") is not None:
            out[key] = (float(latest["value"]), int(latest["step"]), int(latest["timestamp"]))
        elif summary.get("last") is not None:
            out[key] = (float(summary["last"]), int(summary.get("last_step") or 0), None)
    return out


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
