"""Logging to runs through the MLflow tracking store: metrics, params, tags, inputs.

Every write goes through the tracker's run store interface
(:class:`~aletheia.tracking.writing.RunWriteStore`): a run this process
started logs through its buffered writer (memory + journal, flushed in the
background, so ``log_metric`` never waits on Firestore); any other run
(finished, resumed, or started elsewhere) is written directly, one
transaction per call. Metric histories are read back through the read
interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchUtils

from aletheia.cloud import layout
from aletheia.cloud.redact import redact_values
from aletheia.integrations.mlflow import dataset_links
from aletheia.integrations.mlflow import inputs as mlflow_inputs
from aletheia.integrations.mlflow.entities import (
    bad_input,
    metric_point,
    mlflow_metrics,
    string_map,
)
from aletheia.integrations.mlflow.errors import tracking_errors
from aletheia.integrations.mlflow.storebase import StoreBase
from aletheia.tracking.runmodel import RunRef


class RunLogging(StoreBase):
    """``log_batch`` and what goes through it, tags, histories, inputs (mixed into the store).

    The logged-model side (metrics logged for a model, models a run used) is
    the store's :class:`~aletheia.integrations.mlflow.logged_models.LoggedModels`.
    """

    if TYPE_CHECKING:

        def _log_model_metrics(self, run_id: str, metrics: Any) -> None: ...

        def _log_model_inputs(self, run_id: str, models: Any) -> None: ...

    def log_batch(self, run_id, metrics, params, tags):
        """Metrics, params and tags in one call of the run store interface.

        Everything is checked against Firestore's limits first, so a batch
        MLflow hands over is logged whole or refused whole
        (``INVALID_PARAMETER_VALUE``). A run open in this process logs through
        its background writer; any other run (finished, resumed, or started
        elsewhere and ended) is written directly, one transaction per call.
        """
        with bad_input():
            points = [metric_point(m) for m in metrics]
            new_params = string_map(params, "params")
            tag_map = redact_values(string_map(tags, "tags"))  # every viewer reads them
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
                tag_map = redact_values(string_map([tag], "tags"))
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


__all__ = ["RunLogging"]
