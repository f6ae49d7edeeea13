"""What every part of the MLflow tracking store shares: the project, its clients, run lookup.

:class:`StoreBase` holds the :class:`~aletheia.tracking.metastore.Metastore`
of ``aletheia://PROJECT``, the runs this process opened through MLflow (they
log through their background writer), and the few lookups every call needs:
an MLflow experiment id as an aletheia experiment, the experiment holding a
run (``Projects/{p}/MlflowRuns/{uuid}``, since MLflow looks runs up by id
alone), a run's document read back, and a merge into a run document that
works on open and ended runs alike. The store's parts
(:mod:`~aletheia.integrations.mlflow.experiments`,
:mod:`~aletheia.integrations.mlflow.runlog`,
:mod:`~aletheia.integrations.mlflow.search`) build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from google.api_core import exceptions as gexc
from google.cloud import firestore
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from aletheia.cloud import layout
from aletheia.errors import AletheiaError, NotFoundError
from aletheia.integrations.mlflow.entities import bad_input, experiment_name_of, invalid
from aletheia.tracking import metastore
from aletheia.tracking.direct import DirectWrites, Heartbeat
from aletheia.tracking.readapi import RunReader
from aletheia.tracking.runmodel import RunRef


class StoreBase:
    """The project of ``aletheia://PROJECT`` and the lookups every store method needs."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        parsed = urlparse(store_uri or "")
        project = parsed.netloc or parsed.path.strip("/")
        # ``aletheia://`` alone: the project setting (ALETHEIA_PROJECT, the repository's config).
        try:
            self.ms = metastore.Metastore(project or None)
        except AletheiaError as exc:
            raise invalid(f"{exc.message} ({exc.hint})") from exc
        self.project = self.ms.project
        self._open: dict[str, metastore.Run] = {}
        self._beats: dict[str, Heartbeat] = {}  # runs resumed by this process

    @property
    def db(self) -> firestore.Client:
        """The Firestore client."""
        return self.ms.db

    @property
    def reader(self) -> RunReader:
        """The read interface every read of runs goes through."""
        return self.ms.reader

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

    def _ref(self, run_id: str) -> RunRef:
        return RunRef(self.project, self._locate(run_id), run_id)

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

    def _set_fields(self, run_id: str, fields: dict[str, Any]) -> None:
        run = self._open.get(run_id)
        if run is not None and run.is_active:
            with bad_input():
                run.set_fields(fields)
        else:
            self._direct.set_fields(self._ref(run_id), fields)

    def _merge_run_fields(self, run_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the run document, open here or not (checked whole first)."""
        run = self._open.get(run_id)
        with bad_input():
            if run is not None and run.is_active:
                run.set_fields(fields)
            else:
                self._direct.log_batch(self._ref(run_id), fields=fields)


__all__ = ["StoreBase"]
