"""Synchronous Firestore writes of runs that are not open in this process.

A run this process started logs through its buffered writer
(:class:`~aletheia.tracking.metrics.MetricWriter`). :class:`DirectWrites`
writes everything else, one Firestore call or transaction per call:

* ``create_run``: ``create`` of the run document, which is the lock on its id;
* ``log_batch`` to a finished or resumed run (MLflow lets a program log to
  any run): a metric point gets the next index of its series: the series'
  tail chunk is read and written back whole with the new points (chunks are
  whole documents, as the writer keeps them), and its summary continues
  from the stored one; params (a logged param never changes value), tags
  and fields are merged into the run document, and ``Results/{run}`` is
  rewritten from the result, so leaderboards agree;
* ``resume`` makes an ended run running again; ``end_run`` ends it.

A run still being logged by the buffered writer of another live process is
refused (:class:`~aletheia.errors.ConflictError`): that writer holds the tail
chunks in memory and would overwrite points appended here. A resumed run
carries ``resumed_at``, so several processes may log to it at once;
:class:`Heartbeat` keeps it from reading as crashed while it is resumed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aletheia.cloud import clients, layout, transient
from aletheia.cloud.lazy import firestore, gexc
from aletheia.errors import ConflictError, NotFoundError, ValidationError
from aletheia.tracking import ownership, validation
from aletheia.tracking.runmodel import (
    CHUNK_POINTS,
    ENDED,
    LATEST_FIELD,
    RUNNING,
    Point,
    RunRef,
    Summary,
    chunk_doc,
    chunk_of,
    chunk_points,
    effective_status,
    merge_fields,
    now,
    result_doc,
)
from aletheia.tracking.writing import TAGS_FIELD, MetricPoint, RunWriteStore, tag_fields

log = logging.getLogger(__name__)

#: Deadline of the few synchronous calls of a run's start (experiment and run creation);
#: generous because a fresh emulator takes seconds for its first write. Past it, the run
#: starts offline.
CREATE_TIMEOUT_S = 30.0


def start_call(*, idempotent: bool = True) -> dict[str, Any]:
    """``retry=``/``timeout=`` of every synchronous Firestore call of a run's start.

    The one place they are decided: each such call gives up within about
    :data:`CREATE_TIMEOUT_S` (read at call time), the library's own retry
    deadline (up to 300 s) never applies; a ``create`` is made once (see
    :func:`aletheia.cloud.transient.bounded`).
    """
    return transient.bounded(CREATE_TIMEOUT_S, idempotent=idempotent)


#: ``lifecycle_stage`` of a run deleted through MLflow (its soft delete): not loggable.
DELETED_STAGE = "deleted"


class RunExistsError(ConflictError):
    """``create_run`` found the run id taken: the caller picks another id."""


class DirectWrites(RunWriteStore):
    """Firestore writes of runs not open in this process, through client ``db``."""

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def create_run(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """``create`` the run document (fails with :class:`RunExistsError` if the id is taken).

        A start's fields carry its owner token, and then the create is retried within the
        start deadline: a retry that finds the document holding this token found its own
        earlier attempt, which landed. Without a token it is made once (a retry could not
        tell its own document from another starter's), and so fails at once while gRPC
        backs off from an outage's failed connects.
        """
        token = fields.get(ownership.OWNER)
        try:
            self.db.document(ref.path).create(
                dict(fields), **start_call(idempotent=token is not None)
            )
        except gexc.AlreadyExists as exc:
            if token is not None:
                found = self.db.document(ref.path).get([ownership.OWNER], **start_call())
                if ownership.owner_of(found) == token:
                    return
            raise RunExistsError(
                f"run {ref.run!r} already exists in {ref.experiment!r}", "choose another run_id"
            ) from exc

    def log_batch(
        self,
        ref: RunRef,
        metrics: Sequence[MetricPoint] = (),
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Append ``metrics``; merge ``params``, ``tags`` and other ``fields``: one transaction.

        For a signed-in user, firestore.rules keep an ended run (its document,
        chunks and result) a record that only a resume may change; so an ended
        run is resumed first, and this write ends it again as it was.
        """
        points = [(m.key, m.value, m.step, time.time() if m.ts is None else m.ts) for m in metrics]
        update = dict(fields or {})
        if clients.acting_uid(self.db) is not None and (points or params or tags):
            snap = self.db.document(ref.path).get()
            doc = snap.to_dict() or {} if snap.exists else {}
            if doc.get("status") in ENDED:
                _reopen(self.db, ref)
                update = {"status": doc["status"], "ended_at": doc.get("ended_at")} | update
                update.setdefault("resumed_at", None)
        # Wrapped at call time: a module-level decorator would import the client library.
        firestore.transactional(_apply)(
            self.db.transaction(),
            self.db,
            ref,
            points,
            {k: str(v) for k, v in (params or {}).items()},
            tags or {},
            update,
        )

    def set_fields(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into the run document as they are (no transaction)."""
        self.db.document(ref.path).set(dict(fields), merge=True)

    def heartbeat(self, ref: RunRef) -> None:
        """Set ``heartbeat_at`` to now."""
        self.db.document(ref.path).update({"heartbeat_at": now()})

    def end_run(
        self,
        ref: RunRef,
        status: str,
        *,
        ended_at: dt.datetime,
        error: str | None = None,
    ) -> bool:
        """End a run that is not open in this process (finished, or resumed)."""
        fields: dict[str, Any] = {"status": status, "ended_at": ended_at, "resumed_at": None}
        if error is not None:
            fields["error"] = error
        self.log_batch(ref, fields=fields)
        return True

    def resume(self, ref: RunRef, heartbeat_s: float) -> bool:
        """Make a run RUNNING again (``mlflow.start_run(run_id=...)``), writable from anywhere.

        False, and nothing changed, when the run is still running in the
        process that started it (another process may attach to it: its params
        and tags merge, its metric points are refused).
        """
        return bool(
            firestore.transactional(_resume)(self.db.transaction(), self.db, ref, heartbeat_s)
        )


def _reopen(db: firestore.Client, ref: RunRef) -> None:
    """Running again for one write (the resume firestore.rules allow), as ``resume``."""
    fields = {"status": RUNNING, "resumed_at": firestore.SERVER_TIMESTAMP}
    db.document(ref.path).set(fields, merge=True)


def _missing(ref: RunRef) -> NotFoundError:
    return NotFoundError(f"Run '{ref.run}' not found")


def _apply(
    transaction: firestore.Transaction,
    db: firestore.Client,
    ref: RunRef,
    points: list[tuple[str, float, int | None, float]],
    params: dict[str, str],
    tags: Mapping[str, str],
    fields: Mapping[str, Any],
) -> None:
    snap = db.document(ref.path).get(transaction=transaction)
    if not snap.exists:
        raise _missing(ref)
    doc = snap.to_dict() or {}
    if points or params or tags:
        _check_loggable(ref, doc, params, bool(points))
    update: dict[str, Any] = dict(fields)
    if points:
        update["summary"], latest = _append(transaction, db, ref, doc, points)
        if latest:
            update[LATEST_FIELD] = latest
    if params:
        # Checked whole, as the document will hold them, before anything is written.
        validation.validate_params({**(doc.get("params") or {}), **params}, "params")
        update["params"] = params
    if tags:
        update.update(tag_fields(tags))
    if doc.get("resumed_at") and "status" not in update:
        update["heartbeat_at"] = now()
    result = merge_fields(dict(doc), update)
    validation.validate_run_document(result)
    transaction.set(db.document(ref.path), update, merge=True)
    summaries = result.get("summary") or {}
    path = layout.result(ref.project, ref.experiment, ref.run)
    transaction.set(db.document(path), result_doc(ref, result, summaries))


def owned_elsewhere(doc: Mapping[str, Any]) -> bool:
    """True while another live process logs the run through its buffered writer."""
    return effective_status(doc) == RUNNING and not doc.get("resumed_at")


def _check_loggable(
    ref: RunRef, doc: Mapping[str, Any], params: Mapping[str, str], points: bool
) -> None:
    """A deleted run is not logged to, params never change, and metric series stay the
    buffered writer's own (params and tags are map merges, which its later merges keep)."""
    if doc.get("lifecycle_stage") == DELETED_STAGE:
        raise ValidationError(
            f"The run {ref.run} must be in the 'active' state. Current state is deleted."
        )
    if points and owned_elsewhere(doc):
        raise ConflictError(
            f"Run '{ref.run}' is being logged by process {doc.get('pid')} on "
            f"{doc.get('host')}: log to it from that process, or after it ends"
        )
    check_params_unchanged(ref.run, doc.get("params") or {}, params)


def check_params_unchanged(run: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """MLflow's rule, kept for every run: a logged param never changes value."""
    for key, value in new.items():
        if key in old and str(old[key]) != str(value):
            raise ValidationError(
                f"Changing param values is not allowed. Param with key='{key}' was already"
                f" logged with value='{old[key]}' for run ID='{run}'. Attempted logging"
                f" new value '{value}'."
            )


def _append(
    transaction: firestore.Transaction,
    db: firestore.Client,
    ref: RunRef,
    doc: Mapping[str, Any],
    points: list[tuple[str, float, int | None, float]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the points after the stored ones; returns the new ``summary.{key}`` maps and
    the ``metric_latest.{key}`` maps of the metrics whose latest is not their last point."""
    stored = doc.get("summary") or {}
    stored_latest = doc.get(LATEST_FIELD) or {}
    by_key: dict[str, list[tuple[str, float, int | None, float]]] = {}
    for point in points:
        by_key.setdefault(point[0], []).append(point)
    counts = {key: int((stored.get(key) or {}).get("count") or 0) for key in by_key}
    # A partly filled last chunk is read, so that writing it back keeps what it holds; a
    # full one only when the time of its last point is needed to go on folding the latest.
    reads = {
        (key, chunk_of(n - 1))
        for key, n in counts.items()
        if n and (n % CHUNK_POINTS or key not in stored_latest)
    }
    last_ts: dict[str, float] = {}
    chunks: dict[tuple[str, int], list[Point]] = {}
    # (No call for no document: the emulator fails a transaction's empty batch read.)
    tails = [db.document(ref.chunk_path(key, n)) for key, n in sorted(reads)]
    for snap in db.get_all(tails, transaction=transaction) if tails else ():
        if snap.exists:
            chunk = snap.to_dict() or {}
            key, pts = str(chunk["key"]), chunk_points(chunk)
            if pts:
                last_ts[key] = pts[-1].ts
            if counts[key] % CHUNK_POINTS:
                chunks[(key, int(chunk["chunk"]))] = pts
    summaries: dict[str, Any] = {}
    latest: dict[str, Any] = {}
    for key, series in by_key.items():
        summary = Summary.stored(stored.get(key) or {}, stored_latest.get(key), last_ts.get(key))
        for offset, (_, value, step, ts) in enumerate(series):
            index = counts[key] + offset
            stored_point = Point(index, index if step is None else step, value, ts)
            chunks.setdefault((key, chunk_of(index)), []).append(stored_point)
            summary.add(stored_point.step, value, ts)
        summaries[key] = summary.to_doc()
        if (latest_doc := summary.latest_doc()) is not None:
            latest[key] = latest_doc
    for (key, n), pts in chunks.items():
        transaction.set(db.document(ref.chunk_path(key, n)), chunk_doc(key, n, pts))
    return summaries, latest


def _resume(
    transaction: firestore.Transaction, db: firestore.Client, ref: RunRef, heartbeat_s: float
) -> bool:
    snap = db.document(ref.path).get(transaction=transaction)
    if not snap.exists:
        raise _missing(ref)
    if owned_elsewhere(snap.to_dict() or {}):
        return False
    fields = {
        "status": RUNNING,
        "ended_at": None,
        "error": None,
        # The server's time: firestore.rules let an ended run run again only when
        # resumed_at is the time of the write itself.
        "resumed_at": firestore.SERVER_TIMESTAMP,
        "heartbeat_at": now(),
        "heartbeat_interval_s": heartbeat_s,
    }
    transaction.set(db.document(ref.path), fields, merge=True)
    return True


class Heartbeat:
    """Beats ``heartbeat_at`` of a resumed run until :meth:`stop` (a silent run reads crashed)."""

    def __init__(self, writes: RunWriteStore, ref: RunRef, interval_s: float) -> None:
        self.writes = writes
        self.ref = ref
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"aletheia-heartbeat-{ref.run}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        warned = False
        while not self._stop.wait(self.interval_s):
            try:
                self.writes.heartbeat(self.ref)
            except Exception as exc:  # the next beat tries again; training goes on
                if not warned:
                    log.warning("aletheia: heartbeat of run %s failed: %s", self.ref.run, exc)
                    warned = True

    def stop(self) -> None:
        """Stop beating (the run has ended)."""
        self._stop.set()
        self._thread.join()


__all__ = [
    "CREATE_TIMEOUT_S",
    "TAGS_FIELD",
    "DirectWrites",
    "Heartbeat",
    "RunExistsError",
    "check_params_unchanged",
    "owned_elsewhere",
]
