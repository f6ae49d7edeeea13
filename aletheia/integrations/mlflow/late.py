"""Logging to MLflow runs that are not open in this process: finished and resumed runs.

MLflow lets a program log to any run: ``mlflow.start_run(run_id=...)`` resumes
a finished run (it is RUNNING again until it ends), and
``MlflowClient().log_metric`` on a finished run records the point. A run this
process started logs through its buffered writer (:mod:`aletheia.tracking.metrics`);
every other run is written here, one Firestore transaction per call:

* a metric point gets the next index of its series: the series' tail chunk is
  read and written back whole with the new points (chunks are whole documents,
  as the writer keeps them), and its summary continues from the stored one;
* params (MLflow's rule: a param never changes value), tags and status are
  merged into the run document;
* ``Results/{run}`` is rewritten from the result, so leaderboards agree.

A run still being logged by the buffered writer of another live process is
refused (``INVALID_STATE``): that writer holds the tail chunks in memory and
would overwrite points appended here. A resumed run carries ``resumed_at``,
so several processes may log to it at once; :class:`Heartbeat` keeps it from
reading as crashed while it is resumed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from google.cloud import firestore
from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
)

from aletheia.cloud import clients, layout
from aletheia.tracking import validation
from aletheia.tracking.runmodel import (
    CHUNK_POINTS,
    ENDED,
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

logger = logging.getLogger(__name__)


#: One metric point as MLflow logs it: ``(key, value, step, epoch seconds)``.
LatePoint = tuple[str, float, int, float]


def log(  # the store's ``log_batch`` for runs not open here
    db: firestore.Client,
    ref: RunRef,
    points: Sequence[LatePoint] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Append ``points``; merge ``params``, ``tags`` and other ``fields``: one transaction.

    For a signed-in user, firestore.rules keep an ended run (its document,
    chunks and result) a record that only a resume may change; so an ended
    run is resumed first, and this write ends it again as it was.
    """
    update = dict(fields or {})
    if clients.acting_uid(db) is not None and (points or params or tags):
        snap = db.document(ref.path).get()
        doc = snap.to_dict() or {} if snap.exists else {}
        if doc.get("status") in ENDED:
            _reopen(db, ref)
            update = {"status": doc["status"], "ended_at": doc.get("ended_at")} | update
            update.setdefault("resumed_at", None)
    _apply(db.transaction(), db, ref, list(points), dict(params or {}), tags or {}, update)


def _reopen(db: firestore.Client, ref: RunRef) -> None:
    """Running again for one write (the resume firestore.rules allow), as :func:`resume`."""
    fields = {"status": RUNNING, "resumed_at": firestore.SERVER_TIMESTAMP}
    db.document(ref.path).set(fields, merge=True)


@firestore.transactional
def _apply(
    transaction: firestore.Transaction,
    db: firestore.Client,
    ref: RunRef,
    points: list[LatePoint],
    params: dict[str, str],
    tags: Mapping[str, str],
    fields: Mapping[str, Any],
) -> None:
    snap = db.document(ref.path).get(transaction=transaction)
    if not snap.exists:
        raise MlflowException(f"Run '{ref.run}' not found", error_code=RESOURCE_DOES_NOT_EXIST)
    doc = snap.to_dict() or {}
    if points or params or tags:
        _check_loggable(ref, doc, params, bool(points))
    update: dict[str, Any] = dict(fields)
    if points:
        update["summary"] = _append(transaction, db, ref, doc, points)
    if params:
        # Checked whole, as the document will hold them, before anything is written.
        validation.validate_params({**(doc.get("params") or {}), **params}, "params")
        update["params"] = params
    if tags:
        update["mlflow_tags"] = dict(tags)
        if name := tags.get("mlflow.runName"):
            update["run_name"] = name
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
    """MLflow's rules (active run, params never change) and the buffered writer's ownership.

    Params and tags are map merges, which the owner's later merges keep; only
    metric series are the owner's alone.
    """
    if doc.get("lifecycle_stage") == LifecycleStage.DELETED:
        raise MlflowException(
            f"The run {ref.run} must be in the 'active' state. Current state is deleted.",
            error_code=INVALID_PARAMETER_VALUE,
        )
    if points and owned_elsewhere(doc):
        raise MlflowException(
            f"Run '{ref.run}' is being logged by process {doc.get('pid')} on "
            f"{doc.get('host')}: log to it from that process, or after it ends",
            error_code=INVALID_STATE,
        )
    old = doc.get("params") or {}
    for key, value in params.items():
        if key in old and str(old[key]) != value:
            raise MlflowException(
                f"Changing param values is not allowed. Param with key='{key}' was already"
                f" logged with value='{old[key]}' for run ID='{ref.run}'. Attempted logging"
                f" new value '{value}'.",
                error_code=INVALID_PARAMETER_VALUE,
            )


def _append(
    transaction: firestore.Transaction,
    db: firestore.Client,
    ref: RunRef,
    doc: Mapping[str, Any],
    points: list[LatePoint],
) -> dict[str, Any]:
    """Write the points after the stored ones; returns the new ``summary.{key}`` maps."""
    stored = doc.get("summary") or {}
    by_key: dict[str, list[LatePoint]] = {}
    for point in points:
        by_key.setdefault(point[0], []).append(point)
    counts = {key: int((stored.get(key) or {}).get("count") or 0) for key in by_key}
    # A partly filled last chunk is read, so that writing it back keeps what it holds.
    tails = [
        db.document(ref.chunk_path(key, chunk_of(n)))
        for key, n in counts.items()
        if n % CHUNK_POINTS
    ]
    chunks: dict[tuple[str, int], list[Point]] = {}
    # (No call for no document: the emulator fails a transaction's empty batch read.)
    for snap in db.get_all(tails, transaction=transaction) if tails else ():
        if snap.exists:
            chunk = snap.to_dict() or {}
            chunks[(str(chunk["key"]), int(chunk["chunk"]))] = chunk_points(chunk)
    summaries: dict[str, Any] = {}
    for key, series in by_key.items():
        summary = Summary(**{k: v for k, v in (stored.get(key) or {}).items() if k in _FIELDS})
        for offset, (_, value, step, ts) in enumerate(series):
            index = counts[key] + offset
            chunks.setdefault((key, chunk_of(index)), []).append(Point(index, step, value, ts))
            summary.add(step, value)
        summaries[key] = summary.to_doc()
    for (key, n), pts in chunks.items():
        transaction.set(db.document(ref.chunk_path(key, n)), chunk_doc(key, n, pts))
    return summaries


_FIELDS = {"count", "last", "last_step", "min", "max", "nonfinite"}


def resume(db: firestore.Client, ref: RunRef, heartbeat_s: float) -> bool:
    """Make a run RUNNING again (``mlflow.start_run(run_id=...)``), writable from anywhere.

    False, and nothing changed, when the run is still running in the process
    that started it (MLflow lets another process attach to it: its params and
    tags merge, its metric points are refused).
    """
    return bool(_resume(db.transaction(), db, ref, heartbeat_s))


@firestore.transactional
def _resume(
    transaction: firestore.Transaction, db: firestore.Client, ref: RunRef, heartbeat_s: float
) -> bool:
    snap = db.document(ref.path).get(transaction=transaction)
    if not snap.exists:
        raise MlflowException(f"Run '{ref.run}' not found", error_code=RESOURCE_DOES_NOT_EXIST)
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


def end(db: firestore.Client, ref: RunRef, status: str, ended_at: dt.datetime) -> None:
    """End a run that is not open in this process (finished, or resumed)."""
    log(db, ref, fields={"status": status, "ended_at": ended_at, "resumed_at": None})


class Heartbeat:
    """Beats ``heartbeat_at`` of a resumed run until :meth:`stop` (a silent run reads crashed)."""

    def __init__(self, db: firestore.Client, ref: RunRef, interval_s: float) -> None:
        self.db = db
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
                self.db.document(self.ref.path).update({"heartbeat_at": now()})
            except Exception as exc:  # the next beat tries again; training goes on
                if not warned:
                    logger.warning("aletheia: heartbeat of run %s failed: %s", self.ref.run, exc)
                    warned = True

    def stop(self) -> None:
        """Stop beating (the run has ended)."""
        self._stop.set()
        self._thread.join()


__all__ = ["Heartbeat", "LatePoint", "end", "log", "owned_elsewhere", "resume"]
