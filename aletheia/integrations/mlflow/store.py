"""MLflow tracking-store plugin: ``mlflow.set_tracking_uri("aletheia://PROJECT")``.

MLflow code logs into aletheia's own documents, unchanged. The mapping
(see docs/MLFLOW.md):

* experiment id = the aletheia experiment's name (its document id); MLflow's
  default experiment ``"0"`` is the aletheia experiment ``Default``;
* run id = a 32-hex uuid that *is* the aletheia run id (``Runs/{uuid}``);
  ``Projects/{p}/MlflowRuns/{uuid}`` records which experiment holds it, since
  MLflow looks runs up by id alone;
* params -> the run's ``params``; tags -> ``mlflow_tags``; every write goes
  through the tracker's run store interface
  (:class:`~aletheia.tracking.writing.RunWriteStore`): a run this process
  started logs through its buffered writer (memory + journal, flushed in the
  background, so ``log_metric`` never waits on Firestore);
* a run MLflow starts while an aletheia run of this process is open is
  nested under it (``parent`` field and tag ``mlflow.parentRunId``).

Finished and resumed runs (``mlflow.start_run(run_id=...)``) are written
directly, one transaction per call (:class:`~aletheia.tracking.direct.DirectWrites`).
Reads (``get_run``, ``search_runs``) work on every run, including runs
aletheia itself created. What MLflow asks beyond runs
(logged models, traces ...) is answered by :mod:`aletheia.integrations.mlflow.features`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from mlflow.entities import (
    Experiment,
    ExperimentTag,
    LifecycleStage,
    Run,
    RunStatus,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_STATE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

from aletheia.cloud import layout, limits
from aletheia.cloud.redact import redact_values
from aletheia.errors import AletheiaError, NotFoundError
from aletheia.integrations.mlflow import (
    dataset_links,
    model_artifacts,  # noqa: F401  (registers aletheia-model://)
)
from aletheia.integrations.mlflow import inputs as mlflow_inputs
from aletheia.integrations.mlflow.entities import (
    ARTIFACT_SCHEME,
    DEFAULT_EXPERIMENT_NAME,
    FROM_MLFLOW_STATUS,
    PARENT_TAG,
    RUN_NAME_TAG,
    artifact_uri,
    bad_input,
    check_filter,
    experiment_id_of,
    experiment_name_of,
    invalid,
    mlflow_metrics,
    ms,
    to_mlflow_run,
)
from aletheia.integrations.mlflow.errors import tracking_errors
from aletheia.integrations.mlflow.features import AbsentFeatures, disable_unimplemented, unsupported
from aletheia.integrations.mlflow.logged_models import LoggedModels
from aletheia.integrations.mlflow.schemes import TRACKING_SCHEME
from aletheia.tracking import metastore, validation
from aletheia.tracking.direct import DirectWrites, Heartbeat
from aletheia.tracking.readapi import RunReader
from aletheia.tracking.runmodel import RunRef
from aletheia.tracking.writing import MetricPoint


@disable_unimplemented
class AletheiaStore(LoggedModels, AbsentFeatures, AbstractStore):
    """MLflow's ``AbstractStore`` over an aletheia project (``aletheia://PROJECT``).

    Logged models come from :class:`~aletheia.integrations.mlflow.logged_models.LoggedModels`.
    What MLflow asks of a store beyond runs, experiments and models (traces,
    ...) is answered by :mod:`aletheia.integrations.mlflow.features`: empty
    searches, else ``FEATURE_DISABLED``.
    """

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        parsed = urlparse(store_uri or "")
        project = parsed.netloc or parsed.path.strip("/")
        if not project:
            raise invalid(f"tracking URI {store_uri!r} names no project: use aletheia://PROJECT")
        try:
            self.ms = metastore.Metastore(project)
        except AletheiaError as exc:
            raise invalid(f"{exc.message} ({exc.hint})") from exc
        self.project = self.ms.project
        self._open: dict[str, metastore.Run] = {}
        self._beats: dict[str, Heartbeat] = {}  # runs resumed by this process

    # ------------------------------------------------------------- plumbing

    @property
    def db(self) -> firestore.Client:
        """The Firestore client."""
        return self.ms.db

    @property
    def _direct(self) -> DirectWrites:
        """Writes of runs not open in this process (finished, resumed, started elsewhere)."""
        return self.ms.direct

    def _exper_name(self, experiment_id: Any) -> str:
        name = experiment_name_of(str(experiment_id))
        with bad_input():
            return layout.validate_id(name, "experiment name")

    def _get(self, path: str) -> firestore.DocumentSnapshot:
        """A document; a signed-in user's first read of a project that does not exist
        yet makes it theirs, as ``Metastore.exper`` does (the rules let only members
        read), and a user who is no member gets MLflow's PERMISSION_DENIED."""
        try:
            return self.db.document(path).get()
        except gexc.PermissionDenied:
            try:
                self.ms._ensure_project()
            except AletheiaError as exc:
                raise MlflowException(
                    f"{exc.message}; {exc.hint}", error_code=PERMISSION_DENIED
                ) from exc
            return self.db.document(path).get()

    def _exper_doc(self, name: str) -> dict[str, Any] | None:
        snap = self._get(layout.experiment(self.project, name))
        return snap.to_dict() if snap.exists else None

    def _locate(self, run_id: str) -> str:
        """The experiment holding MLflow run ``run_id``."""
        run = self._open.get(run_id)
        if run is not None:
            return run.exper.name
        with bad_input():
            snap = self._get(layout.mlflow_run(self.project, run_id))
        if not snap.exists:
            raise MlflowException(
                f"Run '{run_id}' not found in aletheia project {self.project!r}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        return str((snap.to_dict() or {})["experiment"])

    @property
    def reader(self) -> RunReader:
        """The read interface every read of runs goes through."""
        return self.ms.reader

    def _run_doc(self, run_id: str) -> tuple[str, Mapping[str, Any]]:
        """The experiment and (read-only) document of run ``run_id``."""
        exper = self._locate(run_id)
        run = self._open.get(run_id)
        if run is not None:
            run.flush()  # a read sees everything logged so far
        try:
            view = self.reader.get_run(exper, run_id)
        except NotFoundError as exc:
            raise MlflowException(
                f"Run '{run_id}' not found", error_code=RESOURCE_DOES_NOT_EXIST
            ) from exc
        return exper, view.doc

    # ------------------------------------------------------------- experiments

    def _to_experiment(self, name: str, doc: Mapping[str, Any]) -> Experiment:
        tags = [ExperimentTag(k, str(v)) for k, v in (doc.get("mlflow_tags") or {}).items()]
        created = ms(doc.get("created_at"))
        return Experiment(
            experiment_id=experiment_id_of(name),
            name=name,
            artifact_location=f"{ARTIFACT_SCHEME}://{self.project}/{name}",
            lifecycle_stage=str(doc.get("lifecycle_stage") or LifecycleStage.ACTIVE),
            tags=tags,
            creation_time=created,
            last_update_time=created,
        )

    def create_experiment(self, name, artifact_location=None, tags=None):
        """Create aletheia experiment ``name``; its id is its name."""
        exper_name = self._exper_name(experiment_id_of(name))
        if self._exper_doc(exper_name) is not None:
            raise MlflowException(
                f"Experiment '{name}' already exists.", error_code=RESOURCE_ALREADY_EXISTS
            )
        self.ms.exper(exper_name)
        if tags:
            self._set_experiment_tags(exper_name, {t.key: t.value for t in tags})
        return experiment_id_of(exper_name)

    def get_experiment(self, experiment_id):
        """The experiment (the default one is created on first use, as MLflow expects)."""
        name = self._exper_name(experiment_id)
        doc = self._exper_doc(name)
        if doc is None and name == DEFAULT_EXPERIMENT_NAME:
            self.ms.exper(name)
            doc = self._exper_doc(name)
        if doc is None:
            raise MlflowException(
                f"Could not find experiment with ID {experiment_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        return self._to_experiment(name, doc)

    def get_experiment_by_name(self, experiment_name):
        """The experiment called ``experiment_name``, or None."""
        try:
            return self.get_experiment(experiment_id_of(experiment_name))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def search_experiments(
        self,
        view_type=ViewType.ACTIVE_ONLY,
        max_results=1000,
        filter_string=None,
        order_by=None,
        page_token=None,
    ):
        """Every experiment of the project, filtered and sorted by MLflow's own rules."""
        exps = [self._to_experiment(e.name, e.doc) for e in self.reader.experiments()]
        exps = [e for e in exps if LifecycleStage.matches_view_type(view_type, e.lifecycle_stage)]
        if filter_string:
            exps = SearchExperimentsUtils.filter(exps, filter_string)
        exps = SearchExperimentsUtils.sort(exps, order_by or ["creation_time DESC"])
        start = SearchUtils.parse_start_offset_from_page_token(page_token)
        end = start + max_results
        token = SearchUtils.create_page_token(end) if end < len(exps) else None
        return PagedList(exps[start:end], token)

    def _set_lifecycle(self, path: str, stage: str) -> None:
        self.db.document(path).set({"lifecycle_stage": stage}, merge=True)

    def delete_experiment(self, experiment_id):
        """Mark the experiment deleted (its runs stay; MLflow's soft delete)."""
        self.get_experiment(experiment_id)
        path = layout.experiment(self.project, self._exper_name(experiment_id))
        self._set_lifecycle(path, LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id):
        """Undo :meth:`delete_experiment`."""
        self.get_experiment(experiment_id)
        path = layout.experiment(self.project, self._exper_name(experiment_id))
        self._set_lifecycle(path, LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id, new_name):
        """Not supported: an aletheia experiment's name is its document id."""
        raise unsupported("renaming experiments", "an experiment's name is its id in aletheia")

    def _set_experiment_tags(self, name: str, tags: Mapping[str, str]) -> None:
        with bad_input():
            clean = redact_values(
                validation.validate_params({k: str(v) for k, v in tags.items()}, "tags")
            )
            path = layout.experiment(self.project, name)
            old = (self._exper_doc(name) or {}).get("mlflow_tags") or {}
            validation.validate_run_document({"mlflow_tags": {**old, **clean}}, "experiment")
        self.db.document(path).set({"mlflow_tags": clean}, merge=True)

    def set_experiment_tag(self, experiment_id, tag):
        """Set one tag of an experiment."""
        self.get_experiment(experiment_id)
        self._set_experiment_tags(self._exper_name(experiment_id), {tag.key: tag.value})

    def delete_experiment_tag(self, experiment_id, key):
        """Remove one tag of an experiment (MLflow's error if it has no such tag)."""
        if key not in self.get_experiment(experiment_id).tags:
            raise MlflowException(
                f"No tag with name: {key} in experiment with id {experiment_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        path = layout.experiment(self.project, self._exper_name(experiment_id))
        field = FieldPath("mlflow_tags", key).to_api_repr()
        self.db.document(path).update({field: firestore.DELETE_FIELD})

    # ------------------------------------------------------------- runs

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        """Start an aletheia run whose id is a fresh uuid; nested under an open aletheia run."""
        exper = self._exper_name(experiment_id)
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"Experiment {experiment_id} is deleted", error_code=INVALID_STATE
            )
        with bad_input():
            tag_map = _strings(tags, "tags")
            if run_name:
                run_name = limits.validate_text(run_name, "run name")
        if run_name and tag_map.get(RUN_NAME_TAG) not in (None, run_name):
            raise invalid(  # MLflow's own stores refuse the contradiction too
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                f"different values (run_name='{run_name}', "
                f"mlflow.runName='{tag_map[RUN_NAME_TAG]}')."
            )
        run_name = run_name or tag_map.get(RUN_NAME_TAG) or f"run-{uuid.uuid4().hex[:8]}"
        tag_map[RUN_NAME_TAG] = run_name
        parent = self._parent(tag_map)
        if parent is not None:
            tag_map.setdefault(PARENT_TAG, parent["run"])
        run_id = uuid.uuid4().hex
        with bad_input():
            run = self.ms.exper(exper).start_run(run_id=run_id)
        self._open[run_id] = run
        self.db.document(layout.mlflow_run(self.project, run_id)).set(
            {"experiment": exper, "run": run_id}
        )
        self._set_fields(
            run_id,
            {
                "run_name": run_name,
                "user_id": user_id or getpass.getuser(),
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "mlflow_tags": redact_values(tag_map),
                "parent": parent,
                "source": "mlflow",
            },
        )
        return self.get_run(run_id)

    def _parent(self, tags: Mapping[str, str]) -> dict[str, str] | None:
        """The parent from MLflow's tag, else the innermost open aletheia run of the process."""
        pid = tags.get(PARENT_TAG)
        if pid:
            try:
                return {"experiment": self._locate(pid), "run": pid}
            except MlflowException:
                return {"experiment": None, "run": pid}  # type: ignore[dict-item]
        for run in metastore.active_runs():
            if run.id not in self._open:
                return {"experiment": run.exper.name, "run": run.id}
        return None

    def get_run(self, run_id):
        """The run, read from Firestore (after flushing what this process logged to it)."""
        exper, doc = self._run_doc(run_id)
        return to_mlflow_run(self.project, exper, doc)

    def update_run_info(self, run_id, run_status, end_time, run_name):
        """End the run (status, end time), resume it (RUNNING) and/or rename it."""
        status = RunStatus.to_string(run_status) if isinstance(run_status, int) else run_status
        run = self._open.get(run_id)
        open_here = run is not None and run.is_active
        with bad_input():  # both checked before either is written
            if run_name:
                run_name = limits.validate_text(run_name, "run name")
            seconds = validation.validate_timestamp(end_time or 0, "end time", per_second=1000)
        if run_name:
            self._set_fields(
                run_id, {"run_name": run_name, "mlflow_tags": {RUN_NAME_TAG: run_name}}
            )
        if status in FROM_MLFLOW_STATUS:
            if run is not None and open_here:
                run.finish(FROM_MLFLOW_STATUS[status])
                self._open.pop(run_id, None)  # ended: later calls go through Firestore
            else:
                end = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
                beat = self._beats.pop(run_id, None)
                if beat is not None:
                    beat.stop()
                with tracking_errors():
                    self._direct.end_run(
                        self._ref(run_id), FROM_MLFLOW_STATUS[status], ended_at=end
                    )
        elif status == "RUNNING" and not open_here and run_id not in self._beats:
            # mlflow.start_run(run_id=...): the run is running again, logged to from here.
            ref = self._ref(run_id)
            with tracking_errors():
                if self._direct.resume(ref, self.ms.heartbeat_s):
                    self._beats[run_id] = Heartbeat(self._direct, ref, self.ms.heartbeat_s)
        return self.get_run(run_id).info

    def _ref(self, run_id: str) -> RunRef:
        return RunRef(self.project, self._locate(run_id), run_id)

    def _set_fields(self, run_id: str, fields: dict[str, Any]) -> None:
        run = self._open.get(run_id)
        if run is not None and run.is_active:
            with bad_input():
                run.set_fields(fields)
        else:
            self._direct.set_fields(self._ref(run_id), fields)

    def delete_run(self, run_id):
        """Mark the run deleted (MLflow's soft delete)."""
        self._set_fields(run_id, {"lifecycle_stage": LifecycleStage.DELETED})

    def restore_run(self, run_id):
        """Undo :meth:`delete_run`."""
        self._set_fields(run_id, {"lifecycle_stage": LifecycleStage.ACTIVE})

    # ------------------------------------------------------------- logging

    def log_batch(self, run_id, metrics, params, tags):
        """Metrics, params and tags in one call of the run store interface.

        Everything is checked against Firestore's limits first, so a batch
        MLflow hands over is logged whole or refused whole
        (``INVALID_PARAMETER_VALUE``). A run open in this process logs through
        its background writer; any other run (finished, resumed, or started
        elsewhere and ended) is written directly, one transaction per call.
        """
        with bad_input():
            points = [_point(m) for m in metrics]
            new_params = _strings(params, "params")
            tag_map = redact_values(_strings(tags, "tags"))  # every viewer reads them
        run = self._open.get(run_id)
        with tracking_errors():
            if run is not None and run.is_active:
                run.log_batch(points, params=new_params, tags=tag_map)
            else:
                self._direct.log_batch(self._ref(run_id), points, params=new_params, tags=tag_map)
        self._log_model_metrics(run_id, metrics)  # metrics MLflow logged for a logged model

    def log_metric(self, run_id, metric):
        """One metric point (through :meth:`log_batch`)."""
        self.log_batch(run_id, [metric], [], [])

    def log_param(self, run_id, param):
        """One param (through :meth:`log_batch`)."""
        self.log_batch(run_id, [], [param], [])

    def set_tag(self, run_id, tag):
        """One tag; works on any run (a field merge)."""
        if run_id in self._open and self._open[run_id].is_active:
            self.log_batch(run_id, [], [], [tag])
        else:
            with bad_input():
                tag_map = redact_values(_strings([tag], "tags"))
            self._set_fields(run_id, {"mlflow_tags": tag_map})

    def delete_tag(self, run_id, key):
        """Remove one tag."""
        exper, doc = self._run_doc(run_id)
        if key not in (doc.get("mlflow_tags") or {}):
            raise MlflowException(
                f"No tag with name: {key} in run with id {run_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        path = FieldPath("mlflow_tags", key).to_api_repr()
        self.db.document(layout.run(self.project, exper, run_id)).update(
            {path: firestore.DELETE_FIELD}
        )
        run = self._open.get(run_id)
        if run is not None:
            (run.fields.get("mlflow_tags") or {}).pop(key, None)

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        """Every point of a metric, read from its chunk documents."""
        exper, doc = self._run_doc(run_id)
        points = self.reader.metric_history(RunRef(self.project, exper, run_id), metric_key, doc)
        history = mlflow_metrics(metric_key, points)
        start = SearchUtils.parse_start_offset_from_page_token(page_token) if page_token else 0
        end = len(history) if max_results is None else start + max_results
        token = SearchUtils.create_page_token(end) if end < len(history) else None
        return PagedList(history[start:end], token)

    def log_inputs(self, run_id, datasets=None, models=None):
        """Dataset inputs (``mlflow.log_input``) as the run's ``mlflow_inputs`` map; logged
        models the run used as ``mlflow_model_inputs``."""
        if datasets:
            with bad_input():
                entries = mlflow_inputs.inputs_field(datasets)
            links = self._link_datasets(datasets, entries)
            fields: dict[str, Any] = {mlflow_inputs.FIELD: entries}
            run = self._open.get(run_id)
            if run is not None and run.is_active:
                for name, version in links:  # as run.get_dataset records them
                    with bad_input():
                        run.record_dataset(name, version)
            elif links:
                fields.update(dataset_links.run_fields(self._run_doc(run_id)[1], links))
            self._merge_run_fields(run_id, fields)
        if models:
            self._log_model_inputs(run_id, models)

    def _link_datasets(self, datasets: Any, entries: dict[str, Any]) -> list[tuple[str, str]]:
        """The aletheia dataset versions among ``datasets`` (noted in their entries)."""
        links = []
        for item in datasets:
            path = dataset_links.local_path(item.dataset.source_type, item.dataset.source)
            found = path and dataset_links.find_version(
                self.db, self.project, self.ms.cache.root, path
            )
            if found:
                entries[mlflow_inputs.entry_key(item.dataset)]["aletheia_dataset"] = {
                    "name": found[0],
                    "version": found[1],
                }
                links.append(found)
        return links

    def _merge_run_fields(self, run_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the run document, open here or not (checked whole first)."""
        run = self._open.get(run_id)
        with bad_input():
            if run is not None and run.is_active:
                run.set_fields(fields)
            else:
                self._direct.log_batch(self._ref(run_id), fields=fields)

    def link_traces_to_run(self, trace_ids, run_id):
        """Not supported (tracing)."""
        raise unsupported("traces")

    # ------------------------------------------------------------- search

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        """Runs of the experiments, filtered and sorted in Python by MLflow's own rules."""
        check_filter(filter_string)
        for run in self._open.values():
            if run.is_active:
                run.flush()
        names = [self._exper_name(experiment_id) for experiment_id in experiment_ids]
        views = self.reader.search_runs(names) if names else []
        runs: list[Run] = [to_mlflow_run(self.project, v.experiment, v.doc) for v in views]
        runs = [
            r
            for r in runs
            if LifecycleStage.matches_view_type(run_view_type, r.info.lifecycle_stage)
        ]
        runs = SearchUtils.filter(runs, filter_string)
        runs = SearchUtils.sort(runs, order_by)
        return SearchUtils.paginate(runs, page_token, max_results)


def _point(metric: Any) -> MetricPoint:
    """The point of an MLflow metric (timestamp in epoch seconds, or None), or raise."""
    key = validation.validate_metric_key(metric.key)
    value = validation.validate_metric_value(metric.value, key)
    step = validation.validate_step(metric.step or 0, negative=True) or 0
    ts = None
    if metric.timestamp:
        ts = validation.validate_timestamp(metric.timestamp, "metric timestamp", per_second=1000)
    return MetricPoint(key, value, step, ts)


def _strings(entries: Iterable[Any] | None, what: str) -> dict[str, str]:
    """MLflow params or tags (``.key``/``.value``) as a checked map of strings."""
    found = {e.key: str(e.value) for e in entries or ()}
    return validation.validate_params(found, what) if found else {}


def _register_scheme() -> None:
    """Make sure MLflow knows ``aletheia://``, however the imports were ordered.

    MLflow loads tracking-store entry points when its registry is first
    imported; when that happens from inside this package's own imports, the
    entry point fails with only a warning and ``aletheia://`` is refused for
    the life of the process. Registering again once the class exists is
    idempotent.
    """
    from mlflow.tracking._tracking_service import utils

    utils._tracking_store_registry.register(TRACKING_SCHEME, AletheiaStore)


_register_scheme()

__all__ = [
    "ARTIFACT_SCHEME",
    "AletheiaStore",
    "artifact_uri",
    "experiment_id_of",
    "experiment_name_of",
    "mlflow_metrics",
    "to_mlflow_run",
    "unsupported",
]
