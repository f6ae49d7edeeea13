"""A run of an experiment: ``Run``, what training code logs through.

Everything a run logs goes through its
:class:`~aletheia.tracking.metrics.MetricWriter` (memory + journal, flushed in
the background), so Firestore being slow or gone never stops training.
Leaving the ``with`` block (or interpreter exit) flushes; an exception marks
the run ``failed`` with its traceback (:mod:`aletheia.tracking.runend`). A
run is opened by :mod:`aletheia.tracking.runopen` (``exper.start_run()``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from aletheia.cloud import layout, limits
from aletheia.cloud.lazy import firestore
from aletheia.errors import ValidationError
from aletheia.tracking import (
    direct,
    journal,
    openruns,
    ownership,
    runcapture,
    runend,
    runstart,
    validation,
)
from aletheia.tracking.metrics import MetricWriter
from aletheia.tracking.openruns import ending_of
from aletheia.tracking.project import Project
from aletheia.tracking.readapi import ArtifactEntry, DatasetEntry
from aletheia.tracking.runcapture import RunCapture
from aletheia.tracking.runmodel import FINISHED, RUNNING, Point, RunRef, merge_fields, now
from aletheia.tracking.writing import (
    HEARTBEAT,
    MetricPoint,
    RunEvent,
    ending_event,
    tag_fields,
)

if TYPE_CHECKING:
    from aletheia.data.artifacts import ArtifactVersion
    from aletheia.models import ModelVersion


class Parent(Protocol):
    """What a run needs of its experiment (an :class:`~aletheia.tracking.experiment.Experiment`)."""

    ms: Project
    name: str
    debug: bool
    auto_inc_ids: bool
    online: bool
    active_run: Run | None
    next_number: int | None


class Run:
    """One run of an experiment: ``.../Runs/{id}``."""

    def __init__(self, exper: Parent, run_id: str, fields: dict[str, Any]) -> None:
        self.exper = exper
        self.ms = exper.ms
        self.id = run_id
        self.fields = fields
        self.status = RUNNING
        self.ref = RunRef(self.ms.project, exper.name, run_id)
        self._datasets: list[dict[str, Any]] = []
        self._artifacts: list[dict[str, str]] = []  # what this run saved, in order
        self._keys: set[str] = set()  # metric names already validated
        self._ended = threading.Event()
        self._capture_lock = threading.Lock()  # the capture's fields land before the end, or not
        #: The background capture of the run's code and environment (runopen sets it).
        self.capture: RunCapture | None = None
        self.journal = journal.JournalWriter(
            journal.new_journal_path(self.ms.journal_root, self.ms.project, exper.name, run_id)
        )
        self.writer = MetricWriter(
            self.ref,
            self.ms.store,
            self.journal,
            flush_interval_s=self.ms.flush_interval_s,
            heartbeat_s=self.ms.heartbeat_s,
            owner=fields.get(ownership.OWNER),
            claimed=False,  # runopen says whether the document was created
            on_renamed=self._renamed,
            on_heartbeat=self._heard,
            final_retry_s=self.ms.final_retry_s,
        )

    def _heard(self, at: Any) -> None:
        """Firestore acknowledged a heartbeat: the observers hear it."""
        self.ms.observers.notify(RunEvent(HEARTBEAT, self.ref, at))

    def _renamed(self, run_id: str) -> None:
        """The id belonged to another process's run: this one goes on under ``run_id``."""
        self.id = run_id
        self.ref = self.writer.ref
        self.fields["run"] = run_id

    # ----------------------------------------------------------- lifecycle

    @property
    def is_active(self) -> bool:
        """True until the run has ended."""
        return not self._ended.is_set()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, error = ending_of(exc)
        self.finish(status, error=error)

    def finish(self, status: str = FINISHED, *, error: str | None = None) -> bool:
        """End the run with ``status``; flush everything. True if Firestore has it all."""
        runend.check_status(status)
        if self._ended.is_set():
            return True
        if self.capture is not None:  # its fields go with the final flush, if it finishes
            self.capture.join(self.ms.final_retry_s)
        with self._capture_lock:
            if self._ended.is_set():
                return True
            self._ended.set()
        status, error = runend.earned(status, error)
        self.status = status
        ended_at = now()
        self.fields.update({"status": status, "ended_at": ended_at, "error": error})
        complete = self.writer.end_run(self.ref, status, ended_at=ended_at, error=error)
        if complete:
            complete = runend.write_result(
                self.ms.store,
                self.ref,
                self.fields,
                self.writer.summaries(),
                retry_for_s=self.ms.final_retry_s,
            )
        event = RunEvent(ending_event(status), self.ref, ended_at, status=status, error=error)
        complete = runend.close_journal(self.writer, self.journal, event, complete)
        openruns.closed(self)
        if self.exper.active_run is self:
            self.exper.active_run = None
        self.ms.observers.notify(event)
        return complete

    def flush(self) -> bool:
        """Send everything logged so far now; True if Firestore acknowledged it."""
        return self.writer.flush()

    # ----------------------------------------------------------- metrics

    def add_metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Log one value of metric ``name`` (never blocks on the network)."""
        key = name if name in self._keys else self._new_key(name)
        number = validation.validate_metric_value(value, key)
        if self._ended.is_set():
            self._require_active()
        self.writer.add(key, number, None if step is None else validation.validate_step(step))

    def _new_key(self, name: str) -> str:
        key = validation.validate_metric_key(name)
        self._keys.add(key)
        return key

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log several metrics at one step; all are validated before any is logged."""
        checked = {
            validation.validate_metric_key(k): validation.validate_metric_value(v, str(k))
            for k, v in values.items()
        }
        s = validation.validate_step(step)
        self._require_active()
        for key, number in checked.items():
            self.writer.add(key, number, s)

    def log_batch(
        self,
        metrics: Sequence[MetricPoint] = (),
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Log metric points, params, tags and other fields together (never blocks).

        Everything is checked first, the run document whole as it will be,
        so a batch is logged whole or refused whole
        (:class:`~aletheia.errors.ValidationError`). Unlike
        :meth:`set_params`, a param already logged keeps its value: logging
        another value is refused (MLflow's rule for ``log_batch``). Steps
        may be negative; ``ts`` is epoch seconds (default: now).
        """
        self._require_active()
        points = [
            MetricPoint(
                key := validation.validate_metric_key(p.key),
                validation.validate_metric_value(p.value, key),
                validation.validate_step(p.step, negative=True),
                None if p.ts is None else validation.validate_timestamp(p.ts, "metric timestamp"),
            )
            for p in metrics
        ]
        update: dict[str, Any] = {}
        if params:
            new = validation.validate_params(params, "params")
            old = self.fields.get("params") or {}
            direct.check_params_unchanged(self.id, old, new)
            update["params"] = validation.validate_params({**old, **new}, "params")
        if tags:
            merge_fields(update, tag_fields(validation.validate_params(tags, "tags")))
        if fields:
            merge_fields(update, fields)
        if update:
            self._set(update)  # the whole run document is checked before anything is queued
        if points:
            self.writer.log_batch(self.ref, points)

    # ----------------------------------------------------------- fields

    def set_fold(self, fold: int | None = None) -> None:
        """Record the fold (default: the one given to ``start_run``)."""
        value = runstart.fold_value(fold) if fold is not None else self.fields.get("fold")
        self._set({"fold": value})

    def set_model(self, model: Any = None, **info: Any) -> None:
        """Record the model: a name, a dict, or the model object (its class is kept).

        Extra keyword ``info`` (``version=...``) is merged into the map.
        """
        doc = runstart.model_doc(model) or {}
        doc.update(validation.validate_params(info, "model info"))
        self._set({"model": doc or None})

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's params (validated before any write)."""
        clean = validation.validate_params(params, "params")
        merged = {**(self.fields.get("params") or {}), **clean}
        validation.validate_params(merged, "params")
        self._set({"params": merged})

    def set_hyper_params(self, hyper_params: Mapping[str, Any]) -> None:
        """Merge ``hyper_params`` into the run's hyper-parameters."""
        clean = validation.validate_params(hyper_params, "hyper_params")
        merged = {**(self.fields.get("hyper_params") or {}), **clean}
        validation.validate_params(merged, "hyper_params")
        self._set({"hyper_params": merged})

    def set_log_dir(self, log_dir: str | os.PathLike[str]) -> None:
        """Where the run's logs (e.g. TensorBoard) are."""
        self._set({"log_dir": limits.validate_text(log_dir, "log_dir")})

    def set_saved_model(self, location: str | os.PathLike[str]) -> None:
        """Where the trained model was saved."""
        self._set({"saved_model": limits.validate_text(location, "saved_model")})

    def set_fields(self, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into the run document (checked whole first; nested maps merge).

        For fields of the run's own (``run_name``, an integration's maps);
        the ``set_*`` methods above check what they set.
        """
        self._set(dict(fields))

    def record_capture(self, fields: dict[str, Any]) -> bool:
        """Queue what the background capture found (:mod:`aletheia.tracking.runcapture`);
        False once the run has ended (its record then says the capture is incomplete)."""
        with self._capture_lock:
            if self._ended.is_set():
                return False
            try:
                validation.validate_run_document({**self.fields, **fields})
            except ValidationError as exc:
                fields = {runcapture.FIELD: runcapture.incomplete(exc.message)}
            for key, value in fields.items():
                # Whole values, replaced: the training thread may be reading these maps.
                self.fields[key] = value
            self.writer.set_fields(self.ref, fields)
            return True

    def _set(self, fields: dict[str, Any]) -> None:
        self._require_active()
        # As the document will: nested maps merge. Checked whole before anything is applied.
        validation.validate_run_document(merge_fields(dict(self.fields), fields))
        merge_fields(self.fields, fields)
        self.writer.set_fields(self.ref, fields)

    def _require_active(self) -> None:
        if self._ended.is_set():
            raise ValidationError(
                f"run {self.id} has ended ({self.status})", "start a new run to log more"
            )

    # ----------------------------------------------------------- data and artifacts

    def get_dataset(self, name: str, download: bool = True, version: str | None = None) -> Any:
        """Fetch a dataset (version) and record that this run used it."""
        layout.validate_id(name, "dataset name")
        store = self.ms.backend.datasets()
        handle = store.get(name, version=version, download=download)
        self.record_dataset(handle.name, handle.version)
        return handle

    def record_dataset(self, name: str, version: str) -> None:
        """Record the use of dataset ``name@version`` (``datasets`` and ``dataset_refs``)."""
        entry = {"name": name, "version": version}
        if entry not in self._datasets:
            self._datasets.append(entry)
        refs = [layout.dataset_ref(d["name"], d["version"]) for d in self._datasets]
        self._set({"datasets": list(self._datasets), "dataset_refs": refs})

    def add_artifact(
        self,
        name: str,
        path: str | Path,
        is_local: bool = True,
        is_dir: bool = False,
        upload_file: bool = True,
    ) -> dict[str, Any]:
        """Save a new version of artifact ``name`` (a file, a directory or a remote URI).

        Every save is a version of its own, naming this run; the run document
        lists them (``artifacts: [{name, version}]``). Returns the version's
        fields and files.
        """
        record: dict[str, Any] = self.ms._add_artifact(
            self.exper.name,
            self.id,
            name,
            path,
            is_local=is_local,
            is_dir=is_dir,
            upload_file=upload_file,
        )
        entry = {"name": name, "version": str(record["version"])}
        self._artifacts.append(entry)
        if self.is_active:
            self._set({"artifacts": list(self._artifacts)})
        else:  # the writer has stopped: append to the document itself
            doc = self.ms.db.document(self.ref.path)
            doc.update({"artifacts": firestore.ArrayUnion([entry])})
        return record

    def get_artifact(self, name: str, version: str | None = None) -> ArtifactVersion:
        """A version of artifact ``name`` that this run saved (default: its last save of it).

        The result lists the files and downloads them through the local cache
        (``.download(to)``), verified by sha256. A version another run saved
        is a :class:`~aletheia.errors.NotFoundError`: use
        :meth:`Experiment.get_artifact` for those.
        """
        if version is None:
            mine = [a["version"] for a in self._artifacts if a["name"] == name]
            version = mine[-1] if mine else None
        return self.ms.artifacts.get(self.exper.name, name, version, run=self.id)

    def log_model(
        self,
        name: str,
        model: Any,
        flavor: str | None = None,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Save ``model`` and register it: an artifact version and a model version at once.

        ``model`` is a file or directory (stored as it is) or any Python object
        (pickled to ``model.pkl``, flavor ``pickle``). The version records this
        run, the dataset versions it used, its commit, params and metrics so far.
        """
        from aletheia.tracking import modelreg

        return modelreg.log_model(self, name, model, flavor, description=description, tags=tags)

    # ----------------------------------------------------------- reading (readapi)

    def metric_history(self, key: str) -> list[Point]:
        """Every point of metric ``key`` logged so far (flushed first, then read back)."""
        self.flush()
        return self.ms.reader.metric_history(self.ref, key)

    def artifacts(self) -> list[ArtifactEntry]:
        """The artifact versions this run saved, in order."""
        return [ArtifactEntry(a["name"], a["version"]) for a in self._artifacts]

    def datasets(self) -> list[DatasetEntry]:
        """The dataset versions this run recorded using."""
        return [DatasetEntry(d["name"], d["version"]) for d in self._datasets]


def active_runs() -> list[Run]:
    """Runs of this process that have not ended, most recently started first.

    Integrations (the MLflow plugin) use it to nest their runs under the
    aletheia run the user code is inside.
    """
    return [run for run in openruns.active_runs() if isinstance(run, Run)]


__all__ = ["Parent", "Run", "active_runs"]
