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
from collections.abc import Mapping

from mlflow.entities import LifecycleStage, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_STATE
from mlflow.store.tracking.abstract_store import AbstractStore

from aletheia.cloud import layout, limits
from aletheia.cloud.redact import redact_values
from aletheia.integrations.mlflow import (
    model_artifacts,  # noqa: F401  (registers aletheia-model://)
)
from aletheia.integrations.mlflow.entities import (
    ARTIFACT_SCHEME,
    FROM_MLFLOW_STATUS,
    PARENT_TAG,
    RUN_NAME_TAG,
    artifact_uri,
    bad_input,
    experiment_id_of,
    experiment_name_of,
    invalid,
    mlflow_metrics,
    string_map,
    to_mlflow_run,
)
from aletheia.integrations.mlflow.errors import tracking_errors
from aletheia.integrations.mlflow.experiments import ExperimentMethods
from aletheia.integrations.mlflow.features import AbsentFeatures, disable_unimplemented, unsupported
from aletheia.integrations.mlflow.logged_models import LoggedModels
from aletheia.integrations.mlflow.runlog import RunLogging
from aletheia.integrations.mlflow.schemes import TRACKING_SCHEME
from aletheia.integrations.mlflow.search import RunSearching
from aletheia.tracking import metastore, validation
from aletheia.tracking.direct import Heartbeat


@disable_unimplemented
class AletheiaStore(
    RunSearching, RunLogging, ExperimentMethods, LoggedModels, AbsentFeatures, AbstractStore
):
    """MLflow's ``AbstractStore`` over an aletheia project (``aletheia://PROJECT``).

    This class holds the runs' lifecycle (create, read, end or resume,
    rename, delete); the rest comes from its parts: the project and lookups
    (:class:`~aletheia.integrations.mlflow.storebase.StoreBase`), experiments
    (:mod:`~aletheia.integrations.mlflow.experiments`), logging
    (:mod:`~aletheia.integrations.mlflow.runlog`), ``search_runs``
    (:mod:`~aletheia.integrations.mlflow.search`) and logged models
    (:class:`~aletheia.integrations.mlflow.logged_models.LoggedModels`). What
    MLflow asks of a store beyond runs, experiments and models (traces, ...)
    is answered by :mod:`aletheia.integrations.mlflow.features`: empty
    searches, else ``FEATURE_DISABLED``.
    """

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
            tag_map = string_map(tags, "tags")
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

    def delete_run(self, run_id):
        """Mark the run deleted (MLflow's soft delete)."""
        self._set_fields(run_id, {"lifecycle_stage": LifecycleStage.DELETED})

    def restore_run(self, run_id):
        """Undo :meth:`delete_run`."""
        self._set_fields(run_id, {"lifecycle_stage": LifecycleStage.ACTIVE})

    def link_traces_to_run(self, trace_ids, run_id):
        """Not supported (tracing)."""
        raise unsupported("traces")


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
