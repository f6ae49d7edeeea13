"""MLflow 3 logged models (``mlflow.<flavor>.log_model``, ``create_logged_model``) on aletheia.

A logged model is the document ``Projects/{p}/LoggedModels/{model_id}``
(``m-<32 hex>``, unique in the project because MLflow looks models up by id
alone, as it does runs)::

    experiment, name, source_run_id, model_type, status, status_message,
    creation_timestamp, last_updated_timestamp (epoch ms, as MLflow keeps them),
    lifecycle_stage, tags {k: v}, params {k: v},
    metrics {key: {group: {value, step, timestamp, run_id, dataset_name, dataset_digest}}},
    artifact {experiment, name, version}      the files, once logged

Its files are an ordinary versioned aletheia artifact of the experiment,
named after the model id (:mod:`aletheia.integrations.mlflow.model_artifacts`
writes them; content-addressed, so a model logged twice is stored once).

The run side: ``log_outputs`` merges ``mlflow_outputs {model_id: step}`` and
model inputs ``mlflow_model_inputs {model_id: true}`` into the run document
(read back by :mod:`aletheia.integrations.mlflow.inputs`). A metric logged
with a ``model_id`` keeps, per dataset, the point MLflow's own store keeps:
the one with the highest ``(step, timestamp, value)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from mlflow.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.search_utils import SearchLoggedModelsUtils
from mlflow.utils.validation import _validate_logged_model_name

from aletheia.cloud import layout, limits, queries
from aletheia.cloud.redact import redact_values
from aletheia.integrations.mlflow.entities import bad_input, experiment_id_of
from aletheia.integrations.mlflow.inputs import MODEL_INPUTS_FIELD, OUTPUTS_FIELD
from aletheia.integrations.mlflow.schemes import MODEL_ARTIFACT_SCHEME
from aletheia.tracking import validation

#: The run tag MLflow's own stores append each ``record_logged_model`` to.
HISTORY_TAG = "mlflow.log-model.history"
#: MLflow's default page size for ``search_logged_models``.
DEFAULT_MAX_RESULTS = 100
#: The group of metrics logged without a dataset.
_NO_DATASET = "-"


def model_artifact_uri(project: str, experiment: str, model_id: str) -> str:
    """``aletheia-model://PROJECT/EXPERIMENT/MODEL_ID``: where MLflow sends a model's files."""
    return f"{MODEL_ARTIFACT_SCHEME}://{project}/{experiment}/{model_id}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _status(value: Any) -> str:
    """A ``LoggedModelStatus`` (enum, name or proto number) as its name."""
    if isinstance(value, LoggedModelStatus):
        return value.value
    if isinstance(value, int):
        return LoggedModelStatus.from_int(value).value
    return LoggedModelStatus(str(value)).value


def to_logged_model(project: str, doc: Mapping[str, Any]) -> LoggedModel:
    """A logged-model document as MLflow's :class:`~mlflow.entities.LoggedModel`."""
    model_id = str(doc["model_id"])
    metrics = [
        Metric(
            key=key,
            value=float(p["value"]),
            timestamp=int(p["timestamp"]),
            step=int(p["step"]),
            model_id=model_id,
            dataset_name=p.get("dataset_name"),
            dataset_digest=p.get("dataset_digest"),
            run_id=p.get("run_id"),
        )
        for key, groups in sorted((doc.get("metrics") or {}).items())
        for p in groups.values()
    ]
    experiment = str(doc["experiment"])
    return LoggedModel(
        experiment_id=experiment_id_of(experiment),
        model_id=model_id,
        name=str(doc["name"]),
        artifact_location=model_artifact_uri(project, experiment, model_id),
        creation_timestamp=int(doc["creation_timestamp"]),
        last_updated_timestamp=int(doc["last_updated_timestamp"]),
        model_type=doc.get("model_type"),
        source_run_id=doc.get("source_run_id"),
        status=LoggedModelStatus(str(doc.get("status") or "PENDING")),
        status_message=doc.get("status_message"),
        tags={k: str(v) for k, v in (doc.get("tags") or {}).items()},
        params={k: str(v) for k, v in (doc.get("params") or {}).items()},
        metrics=metrics,
    )


def _strings(entries: Any, what: str) -> dict[str, str]:
    """MLflow's tags or params (entities with ``key``/``value``, or a dict) as checked text."""
    if entries is None:
        return {}
    items: Iterable[tuple[Any, Any]] = (
        entries.items() if isinstance(entries, Mapping) else ((e.key, e.value) for e in entries)
    )
    found = {str(k): "" if v is None else str(v) for k, v in items}
    return validation.validate_params(found, what) if found else {}


def _group(metric: Metric) -> str:
    """Which of a model's points for one key ``metric`` competes with: its dataset's."""
    if metric.dataset_name is None and metric.dataset_digest is None:
        return _NO_DATASET
    raw = f"{metric.dataset_name}\0{metric.dataset_digest}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _newer(point: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """MLflow keeps the point with the highest ``(step, timestamp, value)``."""
    if old is None:
        return True
    key = ("step", "timestamp", "value")
    return tuple(point[k] for k in key) >= tuple(old[k] for k in key)


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in map by map, as Firestore's ``merge=True`` does."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        both_maps = isinstance(value, Mapping) and isinstance(old, Mapping)
        out[key] = _deep_merge(old, value) if both_maps else value  # type: ignore[arg-type]
    return out


class LoggedModels:
    """The logged-model methods of MLflow's ``AbstractStore`` (mixed into the store).

    The store provides ``db``, ``project``, ``get_experiment``, ``get_run``,
    ``set_tag`` and ``_merge_run_fields`` (a run-document merge that works on
    open and ended runs alike).
    """

    if TYPE_CHECKING:
        project: str

        @property
        def db(self) -> firestore.Client: ...

        def get_experiment(self, experiment_id: Any) -> Any: ...

        def get_run(self, run_id: Any) -> Any: ...

        def set_tag(self, run_id: Any, tag: Any) -> Any: ...

        def _merge_run_fields(self, run_id: str, fields: dict[str, Any]) -> None: ...

    # ------------------------------------------------------------- documents

    def _model_ref(self, model_id: str) -> firestore.DocumentReference:
        with bad_input():
            return self.db.document(layout.logged_model(self.project, model_id))

    def _model_doc(self, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
        snap = self._model_ref(model_id).get()
        doc = snap.to_dict() if snap.exists else None
        if doc is None or (
            not allow_deleted and doc.get("lifecycle_stage") == LifecycleStage.DELETED
        ):
            raise MlflowException(
                f"Model '{model_id}' not found", error_code=RESOURCE_DOES_NOT_EXIST
            )
        return doc

    def _update_model(self, model_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into a model document (checked against Firestore's limits)."""
        merged = _deep_merge(self._model_doc(model_id), fields)
        with bad_input():
            limits.validate_document(merged, "logged model", "log fewer or shorter tags/params")
        self._model_ref(model_id).set({**fields, "last_updated_timestamp": _now_ms()}, merge=True)

    # ------------------------------------------------------------- MLflow's API

    def create_logged_model(
        self,
        experiment_id: str = "0",
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Any = None,
        params: Any = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """A new logged model (status ``PENDING`` until MLflow finalizes it)."""
        _validate_logged_model_name(name)
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"Could not create model under non-active experiment with ID {experiment_id}.",
                error_code=INVALID_STATE,
            )
        with bad_input():
            param_map = _strings(params, "logged model params")
            tag_map = redact_values(_strings(tags, "logged model tags"))
        model_id = f"m-{uuid.uuid4().hex}"
        now = _now_ms()
        doc = {
            "model_id": model_id,
            "project": self.project,
            "experiment": experiment.name,
            "name": name or _generate_random_name(),
            "source_run_id": source_run_id,
            "model_type": model_type,
            "status": LoggedModelStatus.PENDING.value,
            "status_message": None,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "tags": tag_map,
            "params": param_map,
            "metrics": {},
            "artifact": None,
        }
        with bad_input():
            limits.validate_document(doc, "logged model", "log fewer or shorter tags/params")
        # The id is a fresh uuid: if it exists, it is this create, which landed and whose
        # answer was lost, sent again by the client library's retry.
        with contextlib.suppress(gexc.AlreadyExists):
            self._model_ref(model_id).create(doc)
        return to_logged_model(self.project, doc)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The logged model ``model_id`` (``RESOURCE_DOES_NOT_EXIST`` if none or deleted)."""
        return to_logged_model(self.project, self._model_doc(model_id, allow_deleted))

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Models of the experiments, filtered, sorted and paged by MLflow's own rules."""
        if datasets and not all(d.get("dataset_name") for d in datasets):
            raise MlflowException(
                "`dataset_name` in the `datasets` clause must be specified.",
                error_code=INVALID_PARAMETER_VALUE,
            )
        models: list[LoggedModel] = []
        for experiment_id in experiment_ids:
            try:
                name = self.get_experiment(experiment_id).name
            except MlflowException:
                continue  # as MLflow's file store: an unknown experiment has no models
            query = queries.logged_models_of_experiment(self.db, self.project, name)
            for snap in query.stream():
                doc = snap.to_dict() or {}
                if doc.get("lifecycle_stage") != LifecycleStage.DELETED:
                    models.append(to_logged_model(self.project, doc))
        found = SearchLoggedModelsUtils.filter_logged_models(models, filter_string, datasets)
        ordered = SearchLoggedModelsUtils.sort(found, order_by)
        page, token = SearchLoggedModelsUtils.paginate(
            ordered, page_token, max_results or DEFAULT_MAX_RESULTS
        )
        return PagedList(page, token)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        """Set the model's final status (``READY`` once its files are logged, or ``FAILED``)."""
        self._update_model(model_id, {"status": _status(status)})
        return self.get_logged_model(model_id)

    def set_logged_model_tags(self, model_id: str, tags: Any) -> None:
        """Set (or overwrite) tags of a model."""
        with bad_input():
            tag_map = redact_values(_strings(tags, "logged model tags"))
        if tag_map:
            self._update_model(model_id, {"tags": tag_map})

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove one tag (``RESOURCE_DOES_NOT_EXIST`` if the model has no such tag)."""
        if key not in (self._model_doc(model_id).get("tags") or {}):
            raise MlflowException(
                f"No tag with key {key!r} found for model with ID {model_id!r}.",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        self._model_ref(model_id).update(
            {
                FieldPath("tags", key).to_api_repr(): firestore.DELETE_FIELD,
                "last_updated_timestamp": _now_ms(),
            }
        )

    def log_logged_model_params(self, model_id: str, params: Any) -> None:
        """Set params of a model."""
        with bad_input():
            param_map = _strings(params, "logged model params")
        if param_map:
            self._update_model(model_id, {"params": param_map})

    def delete_logged_model(self, model_id: str) -> None:
        """Mark the model deleted (MLflow's soft delete; its files stay versioned)."""
        self._update_model(model_id, {"lifecycle_stage": LifecycleStage.DELETED})

    # ------------------------------------------------------------- the run side

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        """Record the models ``run_id`` produced (``Run.outputs``)."""
        if not models:
            return
        for m in models:
            self._model_doc(m.model_id)  # MLflow's error for an unknown model
        outputs = {m.model_id: int(m.step or 0) for m in models}
        self._merge_run_fields(run_id, {OUTPUTS_FIELD: outputs})

    def _log_model_inputs(self, run_id: str, models: list[LoggedModelInput]) -> None:
        """Record the logged models ``run_id`` used (``Run.inputs.model_inputs``)."""
        for m in models:
            self._model_doc(m.model_id)
        self._merge_run_fields(run_id, {MODEL_INPUTS_FIELD: {m.model_id: True for m in models}})

    def _log_model_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        """Keep, per model, key and dataset, the point MLflow's store keeps."""
        by_model: dict[str, list[Metric]] = {}
        for m in metrics:
            if m.model_id is not None:
                by_model.setdefault(m.model_id, []).append(m)
        for model_id, points in by_model.items():
            stored = self._model_doc(model_id).get("metrics") or {}
            changed: dict[str, dict[str, Any]] = {}
            for m in points:
                point = {
                    "value": float(m.value),
                    "step": int(m.step or 0),
                    "timestamp": int(m.timestamp or _now_ms()),
                    "run_id": run_id,
                    "dataset_name": m.dataset_name,
                    "dataset_digest": m.dataset_digest,
                }
                group = _group(m)
                old = changed.get(m.key, {}).get(group) or (stored.get(m.key) or {}).get(group)
                if _newer(point, old):
                    changed.setdefault(m.key, {})[group] = point
            if changed:
                self._update_model(model_id, {"metrics": changed})

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        """Append the model's description to the run's ``mlflow.log-model.history`` tag."""
        from mlflow.entities import RunTag
        from mlflow.models import Model

        if not isinstance(mlflow_model, Model):
            raise TypeError(
                f"Argument 'mlflow_model' should be mlflow.models.Model, got '{type(mlflow_model)}'"
            )
        old = self.get_run(run_id).data.tags.get(HISTORY_TAG)
        history = json.loads(old) if old else []
        self.set_tag(
            run_id, RunTag(HISTORY_TAG, json.dumps([*history, mlflow_model.get_tags_dict()]))
        )


__all__ = [
    "HISTORY_TAG",
    "LoggedModels",
    "model_artifact_uri",
    "to_logged_model",
]
