"""The experiment methods of the MLflow tracking store.

An MLflow experiment is an aletheia experiment; its id is its name (MLflow's
default experiment ``"0"`` is ``Default``). MLflow's tags are the map
``mlflow_tags``, its soft delete the field ``lifecycle_stage``; searches are
filtered and sorted by MLflow's own rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from mlflow.entities import Experiment, ExperimentTag, LifecycleStage, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

from aletheia.cloud import layout
from aletheia.cloud.redact import redact_values
from aletheia.integrations.mlflow.entities import (
    ARTIFACT_SCHEME,
    DEFAULT_EXPERIMENT_NAME,
    bad_input,
    experiment_id_of,
    ms,
)
from aletheia.integrations.mlflow.features import unsupported
from aletheia.integrations.mlflow.storebase import StoreBase
from aletheia.tracking import validation


class ExperimentMethods(StoreBase):
    """Create, read, search, delete and tag experiments (mixed into the store)."""

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


__all__ = ["ExperimentMethods"]
