"""How aletheia's run and experiment documents read as MLflow entities.

The mapping of docs/MLFLOW.md, shared by the tracking store
(:mod:`aletheia.integrations.mlflow.store` and its parts): ids, run documents
as MLflow ``Run`` objects, metric points both ways, params and tags as
checked maps, and which search filters aletheia evaluates faithfully.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.search_utils import SearchUtils

from aletheia.errors import AletheiaError
from aletheia.integrations.mlflow import inputs as mlflow_inputs
from aletheia.integrations.mlflow.schemes import ARTIFACT_SCHEME
from aletheia.tracking import runmodel, validation
from aletheia.tracking.writing import MetricPoint

#: MLflow's default experiment id and the aletheia experiment it maps to.
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

_TO_MLFLOW_STATUS = {
    runmodel.RUNNING: "RUNNING",
    runmodel.FINISHED: "FINISHED",
    runmodel.FAILED: "FAILED",
    runmodel.CRASHED: "FAILED",
    runmodel.INTERRUPTED: "KILLED",
}
FROM_MLFLOW_STATUS = {"FINISHED": runmodel.FINISHED, "FAILED": runmodel.FAILED}
FROM_MLFLOW_STATUS["KILLED"] = runmodel.INTERRUPTED
#: Filter entity types evaluated faithfully over aletheia's runs.
_SUPPORTED_FILTER_TYPES = {"metric", "parameter", "tag", "attribute"}
_SUPPORTED_ATTRIBUTES = {"status", "run_name", "start_time", "end_time", "run_id"}


def statuses_of(mlflow_status: str) -> frozenset[str]:
    """The effective aletheia statuses shown as ``mlflow_status`` (none for one it never shows)."""
    return frozenset(s for s, shown in _TO_MLFLOW_STATUS.items() if shown == mlflow_status)


def invalid(message: str) -> MlflowException:
    """MLflow's INVALID_PARAMETER_VALUE error."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


@contextmanager
def bad_input() -> Iterator[None]:
    """Turn aletheia's refusals of a value into MLflow's error for bad input."""
    try:
        yield
    except AletheiaError as exc:
        raise invalid(f"{exc.message}; {exc.hint}") from exc


def ms(value: Any) -> int | None:
    """Epoch milliseconds of a Firestore timestamp (None for anything else)."""
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else None


def experiment_id_of(name: str) -> str:
    """The MLflow experiment id of aletheia experiment ``name``."""
    return DEFAULT_EXPERIMENT_ID if name == DEFAULT_EXPERIMENT_NAME else name


def experiment_name_of(experiment_id: str) -> str:
    """The aletheia experiment behind MLflow experiment id ``experiment_id``."""
    return DEFAULT_EXPERIMENT_NAME if str(experiment_id) == DEFAULT_EXPERIMENT_ID else experiment_id


def artifact_uri(project: str, experiment: str, run: str) -> str:
    """``aletheia-art://PROJECT/EXPERIMENT/RUN``: where MLflow sends a run's artifacts."""
    return f"{ARTIFACT_SCHEME}://{project}/{experiment}/{run}"


def run_params(doc: Mapping[str, Any]) -> dict[str, str]:
    """A run's params as MLflow sees them: params and hyper-params, as text."""
    merged = {**(doc.get("hyper_params") or {}), **(doc.get("params") or {})}
    return {k: v if isinstance(v, str) else str(v) for k, v in merged.items()}


def run_tags(doc: Mapping[str, Any]) -> dict[str, str]:
    """A run's MLflow tags, with run name and parent filled in from aletheia's fields."""
    tags = {k: str(v) for k, v in (doc.get("mlflow_tags") or {}).items()}
    parent = doc.get("parent") or {}
    if parent.get("run") and PARENT_TAG not in tags:
        tags[PARENT_TAG] = str(parent["run"])
    tags.setdefault(RUN_NAME_TAG, str(doc.get("run_name") or doc.get("run")))
    return tags


def to_mlflow_run(project: str, experiment: str, doc: Mapping[str, Any]) -> Run:
    """An aletheia run document as an MLflow :class:`~mlflow.entities.Run`."""
    run_id = str(doc["run"])
    status = _TO_MLFLOW_STATUS.get(runmodel.effective_status(doc), "RUNNING")
    end = ms(doc.get("ended_at"))
    tags = run_tags(doc)
    info = RunInfo(
        run_id=run_id,
        experiment_id=experiment_id_of(experiment),
        user_id=str(doc.get("user_id") or ""),
        status=status,
        start_time=ms(doc.get("started_at")) or 0,
        end_time=end,
        lifecycle_stage=str(doc.get("lifecycle_stage") or LifecycleStage.ACTIVE),
        artifact_uri=artifact_uri(project, experiment, run_id),
        run_name=tags[RUN_NAME_TAG],
    )
    stamp = end or ms(doc.get("heartbeat_at")) or info.start_time
    # MLflow's latest value of a metric (greatest step, then time, then value), not
    # aletheia's last logged: the two differ when steps were logged out of order.
    metrics = [
        Metric(k, value, stamp if at is None else at, step)
        for k, (value, step, at) in runmodel.latest_points(doc).items()
    ]
    params = [Param(k, v) for k, v in run_params(doc).items()]
    data = RunData(metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in tags.items()])
    run_inputs = RunInputs(
        dataset_inputs=mlflow_inputs.dataset_inputs(doc),
        model_inputs=mlflow_inputs.model_inputs(doc),
    )
    return Run(info, data, run_inputs=run_inputs, run_outputs=mlflow_inputs.run_outputs(doc))


def mlflow_metrics(key: str, points: Iterable[runmodel.Point]) -> list[Metric]:
    """A metric's points (as the read interface returns them, in logging order) as MLflow
    metrics."""
    return [Metric(key, p.value, p.epoch_ms, p.step) for p in points]


def metric_point(metric: Any) -> MetricPoint:
    """The point of an MLflow metric (timestamp in epoch seconds, or None), or raise."""
    key = validation.validate_metric_key(metric.key)
    value = validation.validate_metric_value(metric.value, key)
    step = validation.validate_step(metric.step or 0, negative=True) or 0
    ts = None
    if metric.timestamp:
        ts = validation.validate_timestamp(metric.timestamp, "metric timestamp", per_second=1000)
    return MetricPoint(key, value, step, ts)


def string_map(entries: Iterable[Any] | None, what: str) -> dict[str, str]:
    """MLflow params or tags (``.key``/``.value``) as a checked map of strings."""
    found = {e.key: str(e.value) for e in entries or ()}
    return validation.validate_params(found, what) if found else {}


def check_filter(filter_string: str | None) -> None:
    """Refuse a search filter aletheia cannot evaluate faithfully (MLflow's own error)."""
    if not filter_string:
        return
    for clause in SearchUtils.parse_search_filter(filter_string):
        kind, key = clause.get("type"), clause.get("key")
        if kind not in _SUPPORTED_FILTER_TYPES or (
            kind == "attribute" and key not in _SUPPORTED_ATTRIBUTES
        ):
            raise invalid(
                f"aletheia's MLflow store cannot evaluate the filter on {kind} {key!r} "
                f"in {filter_string!r}: it supports metrics.*, params.*, tags.* and "
                f"attributes.{{{', '.join(sorted(_SUPPORTED_ATTRIBUTES))}}} joined by AND"
            )


__all__ = [
    "ARTIFACT_SCHEME",
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "FROM_MLFLOW_STATUS",
    "PARENT_TAG",
    "RUN_NAME_TAG",
    "artifact_uri",
    "check_filter",
    "experiment_id_of",
    "experiment_name_of",
    "invalid",
    "metric_point",
    "mlflow_metrics",
    "ms",
    "run_params",
    "run_tags",
    "statuses_of",
    "string_map",
    "to_mlflow_run",
]
