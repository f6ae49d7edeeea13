"""The write side of run tracking: one store interface, and a run's lifecycle as events.

:class:`RunWriteStore` is what every backend that *writes* runs implements,
in the spirit of MLflow's ``AbstractStore``: ``create_run``, ``log_batch``
(metric points, params and other run-document fields in one call; the
single-item calls go through it), ``set_fields``, ``heartbeat`` and
``end_run``. Today's implementations:

* :class:`~aletheia.tracking.metrics.MetricWriter`: the buffered, journaled
  writer of a run open in this process (memory + journal, flushed to
  Firestore in the background); ``Metastore``'s runs log through it;
* :class:`~aletheia.tracking.direct.DirectWrites`: synchronous Firestore
  writes (one transaction per call) for runs not open in this process:
  creating the run document (the id lock), and logging to a finished or
  resumed run, as MLflow allows.

:class:`RunObserver` is a run's lifecycle as Sacred's observers see it:
``started``, ``heartbeat``, then one of ``completed``, ``failed`` or
``interrupted``. A run's journal is an observer (a header when the run
starts, an ``end`` record when it ends), every :class:`RunWriteStore` is one
(the events map onto its calls), and user code adds its own with
``Metastore(..., observers=[...])``. A failing observer never stops
training (:class:`Observers`, Sacred's ``_safe_call``).
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aletheia.tracking.runmodel import FAILED, FINISHED, INTERRUPTED, RunRef

log = logging.getLogger(__name__)

#: The lifecycle events, in the order a run sees them (``heartbeat`` repeats).
STARTED, HEARTBEAT, COMPLETED, FAILED_EVENT, INTERRUPTED_EVENT = (
    "started",
    "heartbeat",
    "completed",
    "failed",
    "interrupted",
)
EVENTS = (STARTED, HEARTBEAT, COMPLETED, FAILED_EVENT, INTERRUPTED_EVENT)


#: The run-document map of free-form string tags (MLflow's tags; the name is kept for the
#: documents already written), and the tag that also names the run.
TAGS_FIELD = "mlflow_tags"
RUN_NAME_TAG = "mlflow.runName"


def tag_fields(tags: Mapping[str, str]) -> dict[str, Any]:
    """The run-document merge that sets ``tags`` (the run-name tag renames the run too)."""
    fields: dict[str, Any] = {TAGS_FIELD: dict(tags)}
    if name := tags.get(RUN_NAME_TAG):
        fields["run_name"] = name
    return fields


def ending_event(status: str) -> str:
    """The event that ends a run with ``status`` (``crashed`` is a failure nobody saw)."""
    return {FINISHED: COMPLETED, INTERRUPTED: INTERRUPTED_EVENT}.get(status, FAILED_EVENT)


class MetricPoint(NamedTuple):
    """One metric value to log: ``step`` defaults to the point's index, ``ts`` to now."""

    key: str
    value: float
    step: int | None = None
    ts: float | None = None


@dataclass(frozen=True)
class RunEvent:
    """One lifecycle event of run ``ref`` at time ``at``.

    ``started`` carries the run's initial ``fields`` and, in ``info``, where
    it is kept (``cloud_project``, whether Firestore ``created`` its document,
    ``heartbeat_s``); the ending events carry the ``status`` and ``error``.
    """

    kind: str
    ref: RunRef
    at: dt.datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    status: str | None = None
    error: str | None = None


class RunObserver:
    """Sees a run's lifecycle events; override the ones of interest (the rest do nothing)."""

    def started_event(self, event: RunEvent) -> None:
        """The run exists and logging begins."""

    def heartbeat_event(self, event: RunEvent) -> None:
        """Firestore acknowledged a heartbeat of the still running run."""

    def completed_event(self, event: RunEvent) -> None:
        """The run finished (``status == "finished"``)."""

    def failed_event(self, event: RunEvent) -> None:
        """The run failed: an exception or a failing exit code (``event.error`` says which)."""

    def interrupted_event(self, event: RunEvent) -> None:
        """The run was interrupted (``KeyboardInterrupt``)."""

    def on_event(self, event: RunEvent) -> None:
        """Dispatch ``event`` to its ``<kind>_event`` method."""
        getattr(self, f"{event.kind}_event")(event)


class Observers:
    """The observers of a project's runs, told of each event in order.

    An observer that raises is reported once per kind of event and skipped:
    tracking never stops training.
    """

    def __init__(self, observers: Iterable[RunObserver] = ()) -> None:
        self._observers = list(observers)
        self._reported: set[tuple[int, str]] = set()

    def add(self, observer: RunObserver) -> None:
        """Tell ``observer`` of every later event."""
        self._observers.append(observer)

    def __iter__(self) -> Iterator[RunObserver]:
        return iter(list(self._observers))

    def __len__(self) -> int:
        return len(self._observers)

    def notify(self, event: RunEvent) -> None:
        """Tell every observer of ``event``; failures are logged, never raised."""
        for observer in self:
            try:
                observer.on_event(event)
            except Exception as exc:
                key = (id(observer), event.kind)
                if key not in self._reported:
                    self._reported.add(key)
                    log.warning(
                        "aletheia: observer %r failed on the %s event of run %s: %r",
                        observer,
                        event.kind,
                        event.ref.run,
                        exc,
                    )


class RunWriteStore(RunObserver, abc.ABC):
    """The write half of a run store: what every backend that records runs implements.

    Runs are named by :class:`~aletheia.tracking.runmodel.RunRef`. Fields are
    merges into the run document (nested maps merge, as Firestore's merge
    does); ``params`` are merged into the run's ``params`` map (a backend that
    sees the params already stored refuses to change a logged value), ``tags``
    into its string tags (:data:`TAGS_FIELD`).
    As an observer, the lifecycle events map onto these calls.
    """

    @abc.abstractmethod
    def create_run(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """Record the new run ``ref`` with its initial ``fields``.

        Raises :class:`~aletheia.errors.ConflictError` when ``ref`` is
        already taken (the document is the lock on its id).
        """

    @abc.abstractmethod
    def log_batch(
        self,
        ref: RunRef,
        metrics: Sequence[MetricPoint] = (),
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Log metric points, params, tags and field merges of run ``ref`` together."""

    def set_fields(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into the run document (a :meth:`log_batch` of fields only)."""
        self.log_batch(ref, fields=fields)

    @abc.abstractmethod
    def heartbeat(self, ref: RunRef) -> None:
        """Say the run is alive (a ``running`` run with a stale heartbeat reads crashed)."""

    @abc.abstractmethod
    def end_run(
        self,
        ref: RunRef,
        status: str,
        *,
        ended_at: dt.datetime,
        error: str | None = None,
    ) -> bool:
        """End the run with ``status``; True when the backend holds everything it was given."""

    # ------------------------------------------------------------- as an observer

    def started_event(self, event: RunEvent) -> None:
        """A started run is created in this store."""
        self.create_run(event.ref, event.fields)

    def heartbeat_event(self, event: RunEvent) -> None:
        """A heartbeat is recorded."""
        self.heartbeat(event.ref)

    def _ended(self, event: RunEvent) -> None:
        status = event.status or {COMPLETED: FINISHED, INTERRUPTED_EVENT: INTERRUPTED}.get(
            event.kind, FAILED
        )
        self.end_run(event.ref, status, ended_at=event.at, error=event.error)

    completed_event = failed_event = interrupted_event = _ended
