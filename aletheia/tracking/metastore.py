"""The tracking API: ``Metastore`` -> ``Experiment`` -> ``Run``.

As in the original aletheia README::

    ms = Metastore("my-project")
    ms.set_downloader(local_cache_dir)
    exper = ms.exper("exper name", debug=False, auto_inc_ids=True)
    exper.desc = "Description / notes etc"
    with exper.start_run(fold=1) as run:
        ds = run.get_dataset("ds_name", download=True)
        run.set_model("resnet18")
        run.set_hyper_params({"lr": 0.1})
        exper.add_artifact("weights", "out/", is_local=True, is_dir=True, upload_file=True)
        exper.add_metric("loss", 0.3)

Starting a run captures git and environment state (under the git policy),
then creates ``Runs/{id}``; from then on everything the run logs goes through
its :class:`~aletheia.tracking.metrics.MetricWriter` (memory + journal, flushed in the
background), so Firestore being slow or gone never stops training. Leaving
the ``with`` block (or interpreter exit) flushes; an exception marks the run
``failed`` with its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aletheia.cloud import config, layout, limits, members
from aletheia.cloud.lazy import firestore, gexc
from aletheia.errors import ConfigError, ValidationError
from aletheia.tracking import (
    direct,
    exithooks,
    journal,
    openruns,
    ownership,
    runids,
    runstart,
    validation,
)
from aletheia.tracking.compose import Backend
from aletheia.tracking.direct import DirectWrites
from aletheia.tracking.journal_loss import JournalLoss
from aletheia.tracking.metrics import FLUSH_INTERVAL_S, MetricWriter
from aletheia.tracking.openruns import MAX_ERROR_CHARS, ending_of
from aletheia.tracking.readapi import (
    ArtifactEntry,
    DatasetEntry,
    ExperimentView,
    ProjectView,
    RunPage,
    RunReader,
    RunView,
)
from aletheia.tracking.runids import time_run_id
from aletheia.tracking.runmodel import (
    FAILED,
    FINISHED,
    HEARTBEAT_S,
    INTERRUPTED,
    RUNNING,
    STATUSES,
    Point,
    RunRef,
    merge_fields,
    now,
    result_doc,
)
from aletheia.tracking.store import Write
from aletheia.tracking.writing import (
    HEARTBEAT,
    STARTED,
    MetricPoint,
    Observers,
    RunEvent,
    RunObserver,
    ending_event,
    tag_fields,
)

if TYPE_CHECKING:
    import pandas

    from aletheia.data.artifacts import ArtifactStore, ArtifactVersion
    from aletheia.data.blobstore import BlobStore
    from aletheia.data.cache import LocalCache
    from aletheia.models import Model, ModelInfo, ModelRegistry, ModelVersion

log = logging.getLogger(__name__)

__all__ = [
    "MAX_ERROR_CHARS",
    "Experiment",
    "Metastore",
    "Run",
    "active_runs",
    "ending_of",
    "time_run_id",
]


class Metastore:
    """Entry point: one aletheia project (``Projects/{project}``) on the configured target.

    ``settings`` (or keyword ``overrides`` of any :mod:`aletheia.cloud.config`
    setting) choose the cloud project or local stack. ``flush_interval_s``
    and ``heartbeat_s`` tune the background writer of every run;
    ``final_retry_s`` is how long a run's end keeps retrying an unreachable
    Firestore before leaving the rest to ``aletheia sync``. With
    ``sync_on_start`` each new run replays, in the background, the journals
    of earlier runs of its experiment that never fully reached Firestore.
    ``observers`` (:class:`~aletheia.tracking.writing.RunObserver`) are told
    of every run's lifecycle: started, heartbeat, completed | failed | interrupted.
    """

    def __init__(
        self,
        project: str,
        *,
        settings: config.Settings | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        final_retry_s: float = 30.0,
        sync_on_start: bool = True,
        observers: Iterable[RunObserver] = (),
        **overrides: Any,
    ) -> None:
        self.project = layout.validate_id(project, "project name")
        self.settings = settings or config.resolve(overrides)
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.final_retry_s = final_retry_s
        self.sync_on_start = sync_on_start
        #: Told of every run's lifecycle events (see :mod:`aletheia.tracking.writing`).
        self.observers = Observers(observers)
        #: Clients and stores, built from the settings on first use (the composition root).
        self.backend = Backend(self.settings, self.project)
        #: Every write of this project's runs goes through it (its stats count the commits).
        self.store = self.backend.writes()
        self._project_ensured = False

    # ----------------------------------------------------------- plumbing

    @property
    def db(self) -> firestore.Client:
        """The Firestore client (the emulator is probed on first use)."""
        return self.backend.db

    @property
    def blobstore(self) -> BlobStore:
        """The project's content-addressed :class:`~aletheia.data.blobstore.BlobStore`."""
        return self.backend.blobs

    @property
    def direct(self) -> DirectWrites:
        """Synchronous writes of runs not open in this process (and the creation of runs)."""
        return DirectWrites(self.db)

    @property
    def journal_root(self) -> Path:
        """Where this target's run journals live."""
        return self.backend.journal_root

    def set_downloader(self, cache_dir: str | os.PathLike[str]) -> None:
        """Use ``cache_dir`` as the local content-addressed cache for datasets and artifacts."""
        self.backend.cache_dir = Path(cache_dir).expanduser()

    @property
    def cache(self) -> LocalCache:
        """The :class:`~aletheia.data.cache.LocalCache` set by :meth:`set_downloader`."""
        return self.backend.cache

    def _check_bucket(self) -> None:
        """A bucket that does not exist is a :class:`ConfigError` before any document is
        written; storage that cannot be asked now is not (runs work offline)."""
        try:
            self.blobstore.require_bucket()
        except ConfigError:
            raise
        except Exception as exc:
            log.debug("aletheia: bucket not checked (%s)", exc)

    def _ensure_project(self) -> None:
        """Create the project on first use, or check this client may write into it."""
        if self._project_ensured:
            return
        members.ensure_project(
            self.db, self.project, owner=self.settings.owner, timeout=direct.CREATE_TIMEOUT_S
        )
        self._project_ensured = True

    # ----------------------------------------------------------- API

    def exper(
        self,
        name: str,
        debug: bool = False,
        auto_inc_ids: bool = True,
        *,
        git_policy: str | None = None,
    ) -> Experiment:
        """The experiment ``name`` (created on first use).

        ``auto_inc_ids`` numbers runs 1, 2, 3 ...; otherwise run ids are
        sortable ``20261123T101500-ab12cd``. ``debug`` runs are tagged
        ``debug: true`` and hidden by ``aletheia runs list`` unless asked for.
        """
        return Experiment(self, name, debug=debug, auto_inc_ids=auto_inc_ids, git_policy=git_policy)

    def sync(self) -> Any:
        """Replay every unfinished journal of this target (see :mod:`aletheia.tracking.sync`)."""
        from aletheia.tracking import sync

        return sync.sync_all(self.settings, store=self.store)

    def _add_artifact(
        self,
        exper: str,
        run_id: str | None,
        name: str,
        path: str | Path,
        *,
        is_local: bool,
        is_dir: bool,
        upload_file: bool,
    ) -> dict[str, Any]:
        """Save a new version of an artifact of ``exper``, produced by ``run_id`` if given."""
        return self.artifacts.add(
            exper,
            name,
            path,
            run_id=run_id,
            is_local=is_local,
            is_dir=is_dir,
            upload_file=upload_file,
        )

    @property
    def artifacts(self) -> ArtifactStore:
        """The project's :class:`~aletheia.data.artifacts.ArtifactStore` (via ``cache``)."""
        return self.backend.artifacts()

    # ----------------------------------------------------------- reading (readapi)

    @property
    def reader(self) -> RunReader:
        """The project's :class:`~aletheia.tracking.readapi.RunReader` (reads, never writes)."""
        from aletheia.tracking.firestore_reader import FirestoreReader

        return FirestoreReader(lambda: self.db, self.project)

    def projects(self) -> list[ProjectView]:
        """Every aletheia project of the configured cloud project (needs server credentials)."""
        return self.reader.projects()

    def experiments(self) -> list[ExperimentView]:
        """Every experiment of this project, read-only (``.runs()``, ``.run(id)``, frames)."""
        return self.reader.experiments()

    def experiment(self, name: str) -> ExperimentView:
        """Experiment ``name`` read-only, without creating it (``exper()`` creates)."""
        return self.reader.experiment(name)

    # ----------------------------------------------------------- models (aletheia.models)

    @property
    def model_registry(self) -> ModelRegistry:
        """The project's :class:`~aletheia.models.ModelRegistry`."""
        from aletheia.tracking import modelreg

        return modelreg.registry(self)

    def model(self, name: str) -> Model:
        """Registered model ``name``: ``.versions()``, ``.get(alias=...)``, ``.set_alias()``."""
        return self.model_registry.model(name)

    def models(self) -> list[ModelInfo]:
        """Every registered model of the project."""
        return self.model_registry.models()

    def register_model(
        self,
        name: str,
        *,
        run: Any,
        artifact: Any,
        version: str | None = None,
        flavor: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Register an artifact version a run saved as a new version of model ``name``.

        ``run`` is a run, a run read back or ``"experiment/run"``; ``artifact``
        an artifact name (``version``: which of the run's saves, default its
        last) or an ``ArtifactVersion``. See :mod:`aletheia.tracking.modelreg`.
        """
        from aletheia.tracking import modelreg

        return modelreg.register_model(
            self,
            name,
            run=run,
            artifact=artifact,
            version=version,
            flavor=flavor,
            description=description,
            tags=tags,
        )

    def models_trained_on(self, dataset: str, version: str) -> list[ModelVersion]:
        """Model versions whose training run used ``dataset@version`` (lineage)."""
        return self.model_registry.trained_on(dataset, version)


def _create_if_missing(db: firestore.Client, path: str, data: dict[str, Any]) -> bool:
    """``create`` a document; False if it already existed."""
    try:
        db.document(path).create(data, **direct.start_call(idempotent=False))
    except gexc.AlreadyExists:
        return False
    return True


class Experiment:
    """``Projects/{p}/Experiments/{name}``: a family of runs."""

    def __init__(
        self,
        ms: Metastore,
        name: str,
        *,
        debug: bool = False,
        auto_inc_ids: bool = True,
        git_policy: str | None = None,
    ) -> None:
        self.ms = ms
        self.name = layout.validate_id(name, "experiment name")
        self.debug = bool(debug)
        self.auto_inc_ids = bool(auto_inc_ids)
        self.git_policy = git_policy or ms.settings.git_policy
        self.path = layout.experiment(ms.project, self.name)
        self._desc = ""
        self.active_run: Run | None = None
        self.online = self._ensure()

    def _ensure(self) -> bool:
        from aletheia.cloud.transient import TRANSIENT

        self.ms._check_bucket()
        try:
            self.ms._ensure_project()
            doc = {"name": self.name, "desc": "", "next_run_id": 1, "created_at": now()}
            if not _create_if_missing(self.ms.db, self.path, doc):
                snap = self.ms.db.document(self.path).get(**direct.start_call())
                self._desc = str((snap.to_dict() or {}).get("desc", ""))
        except TRANSIENT as exc:
            log.warning("aletheia: Firestore unreachable (%s); experiment works offline", exc)
            return False
        return True

    @property
    def desc(self) -> str:
        """Free-text description; assigning it saves it."""
        return self._desc

    @desc.setter
    def desc(self, value: str) -> None:
        from aletheia.cloud.transient import TRANSIENT

        self._desc = limits.validate_text(value, "experiment description")
        try:
            self.ms.store.commit([Write(self.path, {"desc": self._desc}, merge=True)])
        except TRANSIENT as exc:  # a description is not worth stopping training for
            log.warning("aletheia: could not save the description of %s (%s)", self.name, exc)

    def start_run(
        self,
        fold: int | None = None,
        *,
        run_id: str | None = None,
        model: Any = None,
        params: Mapping[str, Any] | None = None,
        hyper_params: Mapping[str, Any] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        git_policy: str | None = None,
        repo_path: str | os.PathLike[str] | None = None,
    ) -> Run:
        """Start a run (use it as a context manager).

        Git is checked under ``git_policy`` (default: the experiment's, then
        the ``git_policy`` setting) *before* anything is written, so a strict
        refusal leaves no trace.
        """
        fields = {
            "fold": runstart.fold_value(fold),
            "model": runstart.model_doc(model),
            "params": validation.validate_params(params or {}, "params"),
            "hyper_params": validation.validate_params(hyper_params or {}, "hyper_params"),
            "log_dir": limits.validate_text(log_dir, "log_dir") if log_dir else None,
        }
        policy = git_policy or self.git_policy
        fields.update(runstart.capture_code_and_env(lambda: self.ms.blobstore, policy, repo_path))
        if run_id is not None:
            layout.validate_id(run_id, "run id")
        run = Run._start(self, fields, run_id)
        self.active_run = run
        if self.ms.sync_on_start and self.online:
            threading.Thread(
                target=self._settle_leftovers, name="aletheia-sync", daemon=True
            ).start()
        return run

    def _settle_leftovers(self) -> None:
        """Replay journals of earlier runs of this experiment that never reached Firestore."""
        from aletheia.tracking import sync

        sync.settle_leftovers(self.ms.settings, self.ms.project, self.name, self.ms.store)

    def add_metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Log a metric to the experiment's active run."""
        self._run_for("add_metric").add_metric(name, value, step)

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log several metrics to the active run."""
        self._run_for("log_metrics").log_metrics(values, step)

    def add_artifact(
        self,
        name: str,
        path: str | Path,
        is_local: bool = True,
        is_dir: bool = False,
        upload_file: bool = True,
    ) -> dict[str, Any]:
        """Save a new version of an artifact of the experiment (see :meth:`Run.add_artifact`).

        Inside a run it is that run's save (and listed on its document);
        outside, the version names no run.
        """
        if self.active_run is not None and self.active_run.is_active:
            return self.active_run.add_artifact(name, path, is_local, is_dir, upload_file)
        return self.ms._add_artifact(
            self.name, None, name, path, is_local=is_local, is_dir=is_dir, upload_file=upload_file
        )

    def get_artifact(self, name: str, version: str | None = None) -> ArtifactVersion:
        """Version ``version`` (default: the latest) of artifact ``name``, whichever run saved it.

        The result lists the files and downloads them through the local cache
        (``.download(to)``), verified by sha256.
        """
        return self.ms.artifacts.get(self.name, name, version)

    def _run_for(self, what: str) -> Run:
        run = self.active_run
        if run is None or not run.is_active:
            raise ValidationError(
                f"{what} on experiment {self.name!r} needs an active run",
                "call it inside `with exper.start_run(...) as run:`",
            )
        return run

    # ----------------------------------------------------------- reading (readapi)

    def runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        model: str | None = None,
        dataset: str | None = None,
        debug: bool | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> RunPage:
        """Runs of this experiment as read-only views, e.g. ``status="finished"``,
        ``order_by="metrics.val/acc DESC"``, ``limit=10`` (every argument:
        :meth:`aletheia.tracking.readapi.RunReader.search_runs`)."""
        return self.ms.reader.search_runs(
            [self.name],
            status=status,
            params=params,
            model=model,
            dataset=dataset,
            debug=debug,
            order_by=order_by,
            limit=limit,
            page_token=page_token,
        )

    def run(self, run_id: str) -> RunView:
        """Run ``run_id`` as a read-only :class:`~aletheia.tracking.readapi.RunView`."""
        return self.ms.reader.get_run(self.name, run_id)

    def runs_frame(self, **search: Any) -> pandas.DataFrame:
        """The runs (filtered as :meth:`runs`) as a pandas DataFrame, one row per run."""
        from aletheia.tracking import frames

        return frames.runs_frame(self.runs(**search))

    def fold_table(self, *, status: str | None = FINISHED, **search: Any) -> pandas.DataFrame:
        """Mean ± std of final metrics per hyper-parameter set over folds (finished runs)."""
        from aletheia.tracking import frames

        return frames.fold_table(frames.runs_frame(self.runs(status=status, **search)))


class Run:
    """One run of an experiment: ``.../Runs/{id}``."""

    def __init__(self, exper: Experiment, run_id: str, fields: dict[str, Any]) -> None:
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
            claimed=False,  # _start says whether the document was created
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

    @classmethod
    def _start(cls, exper: Experiment, fields: dict[str, Any], run_id: str | None) -> Run:
        from aletheia.cloud.transient import TRANSIENT

        ms = exper.ms
        fields.update(
            runstart.lifecycle_fields(ms.project, exper.name, ms.heartbeat_s, exper.debug)
        )
        started = fields["started_at"]
        # Whole, as Firestore will hold it (names, int64, size), before anything is written.
        validation.validate_run_document(fields)
        journal.ensure_writable(ms.journal_root)  # before the document: no orphan `running` run
        created = False
        try:
            if exper.online:
                run_id, fields = runids.create_run(
                    ms.direct,
                    ms.db,
                    ms.project,
                    exper.name,
                    fields,
                    run_id,
                    numbered=exper.auto_inc_ids,
                )
                created = True
        except TRANSIENT as exc:
            log.warning("aletheia: Firestore unreachable (%s); the run starts offline", exc)
        if run_id is None:
            run_id = time_run_id()
        fields["run"] = run_id
        if created:
            runstart.register_blobs(ms.db, ms.project, exper.name, run_id, fields)
        try:
            run = cls(exper, run_id, fields)
        except OSError as exc:  # the journal could not be opened after all (a race, a quota)
            if created:
                runstart.record_unjournaled(ms.direct, RunRef(ms.project, exper.name, run_id), exc)
            raise journal.unwritable(ms.journal_root, exc) from exc
        run.writer.claimed = created
        info = {
            "cloud_project": ms.settings.cloud_project,
            "created": created,
            "heartbeat_s": ms.heartbeat_s,
        }
        event = RunEvent(STARTED, run.ref, started, fields=fields, info=info)
        run.writer.journal_safely(run.journal.on_event, event)  # the journal's header
        run.writer.create_run(run.ref, fields)  # started offline: the first flush creates it
        run.writer.start()
        openruns.opened(run)
        ms.observers.notify(event)
        return run

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
        if status not in STATUSES or status == RUNNING:
            raise ValidationError(f"cannot end a run as {status!r}", f"use one of {STATUSES[1:]}")
        if self._ended.is_set():
            return True
        dying = exithooks.ending()
        if status == FINISHED and dying is not None:
            # The process is already ending of an uncaught exception or a failing exit
            # code; whoever ends the run now (an integration's own exit hook, such as
            # MLflow's end_run) cannot have seen it finish.
            status, error = ending_of(dying)
        handling = sys.exc_info()[1]
        if error is None and status in (FAILED, INTERRUPTED) and handling is not None:
            # Ended while an exception is being handled (an integration's __exit__, e.g.
            # MLflow's ActiveRun, passes only a status): that exception is the reason.
            error = exithooks.describe(handling, MAX_ERROR_CHARS)
        self._ended.set()
        self.status = status
        ended_at = now()
        self.fields.update({"status": status, "ended_at": ended_at, "error": error})
        complete = self.writer.end_run(self.ref, status, ended_at=ended_at, error=error)
        if complete:
            complete = self._write_result()
        # A journal that cannot be written (disk full) never stops the run: see _report_unkept.
        event = RunEvent(ending_event(status), self.ref, ended_at, status=status, error=error)
        self.writer.journal_safely(self.journal.on_event, event)  # the journal's end record
        if complete and not self.writer.rejections:
            self.writer.journal_safely(self.journal.synced)
        self.writer.journal_safely(self.journal.close)
        unkept = None if complete else self.writer.unkept()
        if unkept is not None and (unkept.points or not unkept.ended):
            self._report_unkept(unkept)
        elif self.writer.rejections:  # reported when refused; the journal keeps it for sync
            complete = False
            log.warning(
                "aletheia: run %s ended as %s; Firestore refused part of it (reported above), "
                "which its journal %s keeps",
                self.id,
                status,
                self.journal.path,
            )
        elif not complete:
            log.warning(
                "aletheia: run %s ended offline; its journal %s holds everything: "
                "run `aletheia sync` when Firestore is reachable",
                self.id,
                self.journal.path,
            )
        openruns.closed(self)
        if self.exper.active_run is self:
            self.exper.active_run = None
        self.ms.observers.notify(event)
        return complete

    def _report_unkept(self, loss: JournalLoss) -> None:
        """Say exactly what neither Firestore nor the journal could keep (no traceback)."""
        log.warning("aletheia: %s", loss.describe(self.id, self.status, self.journal.path))

    def _write_result(self) -> bool:
        summaries = {k: s.to_doc() for k, s in self.writer.summaries().items()}
        doc = result_doc(self.ref, {**self.fields, "status": self.status}, summaries)
        path = layout.result(self.ms.project, self.exper.name, self.id)
        try:
            self.ms.store.commit([Write(path, doc)], retry_for_s=self.ms.final_retry_s)
        except Exception as exc:
            log.warning("aletheia: could not write Results/%s (%s)", self.id, exc)
            return False
        return True

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
