"""Which aletheia artifact version holds the files of a model version MLflow registers.

MLflow hands the registry a ``source`` URI. Every model MLflow logged to
``aletheia://PROJECT`` is stored by aletheia, so the source is resolved to the
artifact version holding its files, and the version records it: ``aletheia
models pull``, ``ModelVersion.download()`` and lineage then work as for a
version registered natively.

* ``models:/m-<id>`` and ``aletheia-model://P/EXP/m-<id>``: a logged model,
  whose files are a version of the artifact named after its id (an external
  model has none: its version records no files, as MLflow's does);
* ``runs:/RUN/PATH`` and ``aletheia-art://P/EXP/RUN/PATH``: files logged to a
  run (``mlflow.log_artifacts``), made into a version of the experiment's
  artifact named after ``PATH`` without moving a byte (the blobs are already
  stored); ``runs:/RUN/NAME`` is also a logged model ``NAME`` of the run, as
  MLflow resolves it;
* ``models:/NAME/VERSION`` (or ``@alias``, ``/Stage``): a registered version,
  whose artifact version is recorded again (``copy_model_version``).

Anything else (``s3://``, a local path, another project) is refused with
``INVALID_PARAMETER_VALUE``: aletheia's registry holds only versions whose
files it stores.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from aletheia.cloud import layout, queries
from aletheia.data.artifacts import ArtifactVersion
from aletheia.data.manifests import FileEntry
from aletheia.errors import AletheiaError, NotFoundError
from aletheia.integrations.mlflow.artifacts import parse_uri
from aletheia.integrations.mlflow.model_artifacts import parse_model_uri
from aletheia.integrations.mlflow.schemes import ARTIFACT_SCHEME, MODEL_ARTIFACT_SCHEME
from aletheia.tracking.firestore_reader import FirestoreReader
from aletheia.tracking.readapi import thaw
from aletheia.tracking.runmodel import RunRef

#: How many registered versions a ``models:/NAME/VERSION`` source may lead through.
MAX_HOPS = 5


@dataclass(frozen=True)
class Resolved:
    """The artifact version holding a source's files, and the MLflow run that logged them."""

    #: None for a logged model without files (``mlflow.create_external_model``).
    artifact: ArtifactVersion | None
    run_id: str | None


def _missing(message: str) -> MlflowException:
    return MlflowException(message, error_code=RESOURCE_DOES_NOT_EXIST)


class SourceResolver:
    """Resolves MLflow model sources within one project (``store``: the registry plugin)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.ms = store.ms
        self.project: str = store.project

    def foreign(self, source: str) -> MlflowException:
        """The refusal of a source aletheia does not store, saying what to do instead."""
        return MlflowException(
            f"model source {source!r} is not stored in aletheia project {self.project!r}: "
            "its registry keeps versions whose files it holds. Log the model with the "
            f"tracking URI aletheia://{self.project} (mlflow.<flavor>.log_model) and register "
            "runs:/RUN_ID/NAME or models:/MODEL_ID",
            error_code=INVALID_PARAMETER_VALUE,
        )

    def resolve(self, source: str, model_id: str | None = None, hops: int = 0) -> Resolved:
        """The artifact version of ``source`` (``model_id``: MLflow's, when it gives one)."""
        scheme = urlparse(source).scheme
        try:
            if scheme == "models":
                return self._models_uri(source, model_id, hops)
            if scheme == "runs":
                return self._runs_uri(source)
            if scheme == ARTIFACT_SCHEME:
                project, experiment, run, path = parse_uri(source)
                self._same_project(project, source)
                return self._run_files(experiment, run, path)
            if scheme == MODEL_ARTIFACT_SCHEME:
                project, _, found, path = parse_model_uri(source)
                self._same_project(project, source)
                return self._logged_model(found, path)
            if model_id:  # a source elsewhere, for a logged model stored here
                return self._logged_model(model_id)
        except NotFoundError as exc:
            raise _missing(str(exc)) from exc
        except AletheiaError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        raise self.foreign(source)

    def _same_project(self, project: str, source: str) -> None:
        if project != self.project:
            raise self.foreign(source)

    # ------------------------------------------------------------- logged models

    def _logged_model(self, model_id: str, path: str = "") -> Resolved:
        snap = self.ms.db.document(layout.logged_model(self.project, model_id)).get()
        if not snap.exists:
            raise _missing(f"logged model {model_id!r} not found in project {self.project!r}")
        doc = snap.to_dict() or {}
        art = doc.get("artifact")
        run_id = doc.get("source_run_id")
        if not art:  # an external model (an agent, a service): nothing to pull, as in MLflow
            return Resolved(None, run_id)
        whole = self.ms.artifacts.get(str(art["experiment"]), str(art["name"]), str(art["version"]))
        return Resolved(self._subtree(whole, path, run_id), run_id)

    # ------------------------------------------------------------- run files

    def _runs_uri(self, source: str) -> Resolved:
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        run_id, path = RunsArtifactRepository.parse_runs_uri(source)
        path = (path or "").strip("/")
        experiment = self._experiment_of(run_id)
        try:
            return self._run_files(experiment, run_id, path)
        except NotFoundError:
            pass
        # As MLflow's register_model: runs:/RUN/NAME is also the run's logged model NAME.
        for snap in queries.logged_models_of_run(self.ms.db, self.project, run_id).stream():
            if (snap.to_dict() or {}).get("name") == path:
                return self._logged_model(snap.id)
        raise NotFoundError(f"run {run_id} has no files and no logged model at {path!r}")

    def _experiment_of(self, run_id: str) -> str:
        snap = self.ms.db.document(layout.mlflow_run(self.project, run_id)).get()
        if not snap.exists:
            raise NotFoundError(f"run {run_id!r} not found in project {self.project!r}")
        return str((snap.to_dict() or {}).get("experiment"))

    def _run_files(self, experiment: str, run_id: str, path: str) -> Resolved:
        """The files MLflow logged to run ``run_id`` under ``path``, as an artifact version."""
        reader = FirestoreReader(self.ms.db, self.project)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries = [
            FileEntry(str(e["path"])[len(prefix) :], str(e["sha256"]), int(e["size"]))
            for e in map(thaw, reader.run_files(RunRef(self.project, experiment, run_id)))
            if str(e.get("path", "")).startswith(prefix)
        ]
        if not entries:
            raise NotFoundError(f"run {run_id} has no artifacts under {path!r}")
        name = artifact_name(path)
        version = self.ms.artifacts.add_stored(experiment, name, entries, run_id=run_id)
        return Resolved(version, run_id)

    def _subtree(self, whole: ArtifactVersion, path: str, run_id: str | None) -> ArtifactVersion:
        """``whole``, or the files under ``path`` of it as a version of their own."""
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if not prefix:
            return whole
        entries = [
            FileEntry(e.path[len(prefix) :], e.sha256, e.size)
            for e in whole.files
            if e.path.startswith(prefix)
        ]
        if not entries:
            raise NotFoundError(f"{whole.name} {whole.version} has no files under {path!r}")
        name = artifact_name(f"{whole.name}/{path}")
        return self.ms.artifacts.add_stored(whole.experiment, name, entries, run_id=run_id)

    # ------------------------------------------------------------- registered versions

    def _models_uri(self, source: str, model_id: str | None, hops: int) -> Resolved:
        from mlflow.store.artifact.utils.models import _parse_model_uri

        parsed = _parse_model_uri(source)
        if parsed.model_id is not None or (model_id and not parsed.name):
            return self._logged_model(str(parsed.model_id or model_id))
        name = str(parsed.name)
        if parsed.alias:
            mv = self.store.get_model_version_by_alias(name, parsed.alias)
        elif parsed.version:
            mv = self.store.get_model_version(name, parsed.version)
        else:
            stages = [parsed.stage] if parsed.stage else None
            latest = self.store.get_latest_versions(name, stages)
            if not latest:
                raise NotFoundError(f"model {name!r} has no version in stage {parsed.stage!r}")
            mv = latest[-1]
        registered = self.store.registry.get(name, int(mv.version))
        if registered.artifact is not None:
            ref = registered.artifact
            av = self.ms.artifacts.get(ref.experiment, ref.name, ref.version)
            return Resolved(av, mv.run_id)
        if hops >= MAX_HOPS or not mv.source:  # a version recorded before sources resolved
            raise self.foreign(source)
        return self.resolve(mv.source, None, hops + 1)


def artifact_name(path: str) -> str:
    """The artifact name for files at ``path`` of a run: the path, ``/`` read as ``-``."""
    parts = [p for p in posixpath.normpath(path or "").split("/") if p not in ("", ".", "..")]
    name = "-".join(parts) or "artifacts"
    try:
        return layout.validate_id(name[:128], "artifact name")
    except AletheiaError:
        return "model"


__all__ = ["Resolved", "SourceResolver", "artifact_name"]
