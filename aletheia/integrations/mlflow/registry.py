"""MLflow model-registry plugin: ``mlflow.register_model`` and ``MlflowClient``'s registry
calls on aletheia's model registry (``aletheia://PROJECT``, the tracking URI's scheme).

Registered models and versions are the documents of :mod:`aletheia.models`
(``Projects/{p}/Models/{name}/Versions/{n}``): what ``aletheia models`` and
``Metastore.model()`` show. The mapping (docs/MLFLOW.md):

* a version's ``source`` is MLflow's (``runs:/…``, ``models:/m-…``, ``aletheia-art://…``),
  resolved to the aletheia artifact version holding its files
  (:mod:`aletheia.integrations.mlflow.registry_sources`: ``aletheia models pull``
  works; a source aletheia does not store is refused);
  ``get_model_version_download_uri`` answers its storage location, as
  MLflow's own file store does, so ``mlflow.pyfunc.load_model("models:/NAME@ALIAS")``
  loads through the tracking store's artifacts;
* ``run_id``: when it names a run of the project, the version also records
  the run's experiment, params, metrics, dataset versions and commit (its
  lineage), as ``run.log_model`` does;
* aliases, tags, descriptions and the (deprecated) stages are the registry's;
  a version's record otherwise never changes.

Searches evaluate MLflow's own filter and order (``SearchModelUtils``,
``SearchModelVersionUtils``) over the project's models, as the file store
does. Renaming a model moves its documents (:mod:`aletheia.models.rename`).
MLflow's prompts and webhooks answer ``FEATURE_DISABLED``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from google.api_core import exceptions as gexc
from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils
from mlflow.utils.validation import (
    _validate_model_alias_name,
    _validate_model_alias_name_reserved,
    _validate_model_name,
)

from aletheia.cloud import layout, queries
from aletheia.errors import AletheiaError, ConflictError, NotFoundError, ValidationError
from aletheia.integrations.mlflow.entities import invalid, ms
from aletheia.integrations.mlflow.features import disable_unimplemented
from aletheia.integrations.mlflow.registry_sources import SourceResolver
from aletheia.models import ModelInfo
from aletheia.models import ModelVersion as AletheiaVersion
from aletheia.models.registry import ModelRegistry
from aletheia.tracking import metastore, modelreg

#: MLflow's most results per search page (its file store's limits).
MAX_RESULTS = 10_000
STAGE_NONE = "None"


@contextlib.contextmanager
def _as_mlflow() -> Iterator[None]:
    """aletheia's errors as MLflow's: not found, invalid, exists, denied."""
    try:
        yield
    except NotFoundError as exc:
        raise MlflowException(str(exc), error_code=RESOURCE_DOES_NOT_EXIST) from exc
    except ValidationError as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
    except ConflictError as exc:
        raise MlflowException(str(exc), error_code=RESOURCE_ALREADY_EXISTS) from exc
    except (AletheiaError, gexc.PermissionDenied) as exc:
        code = PERMISSION_DENIED if isinstance(exc, gexc.PermissionDenied) else None
        raise MlflowException(str(exc), error_code=code or INVALID_PARAMETER_VALUE) from exc


def _page(items: list[Any], max_results: Any, page_token: str | None) -> PagedList:
    if not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
        raise MlflowException(
            f"Invalid value for max_results: {max_results!r} (1 to {MAX_RESULTS})",
            INVALID_PARAMETER_VALUE,
        )
    start = SearchUtils.parse_start_offset_from_page_token(page_token)
    end = start + max_results
    token = SearchUtils.create_page_token(end) if end < len(items) else None
    return PagedList(items[start:end], token)


@disable_unimplemented
class AletheiaRegistryStore(AbstractStore):
    """MLflow's model-registry ``AbstractStore`` over an aletheia project's registry."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        parsed = urlparse(store_uri or "")
        project = parsed.netloc or parsed.path.strip("/")
        # ``aletheia://`` alone: the project setting (ALETHEIA_PROJECT, the repository's config).
        try:
            self.ms = metastore.Metastore(project or None)
        except AletheiaError as exc:
            raise invalid(str(exc)) from exc
        self.project = self.ms.project

    @property
    def registry(self) -> ModelRegistry:
        """The project's model registry."""
        return modelreg.registry(self.ms)

    # ------------------------------------------------------------- entities

    def _to_version(self, mv: AletheiaVersion, doc_extra: Mapping[str, Any]) -> ModelVersion:
        return ModelVersion(
            name=mv.name,
            version=mv.version,  # type: ignore[arg-type]  # an int, as MLflow's file store gives
            creation_timestamp=ms(mv.created_at) or 0,
            last_updated_timestamp=ms(mv.updated_at) or ms(mv.created_at),
            description=mv.description or None,
            user_id=mv.registered_by,
            current_stage=str(doc_extra.get("stage") or STAGE_NONE),
            source=mv.source,
            run_id=doc_extra.get("mlflow_run_id") or mv.run,
            tags=[ModelVersionTag(k, str(v)) for k, v in sorted(mv.tags.items())],
            run_link=doc_extra.get("run_link"),
            aliases=list(mv.aliases),
            model_id=doc_extra.get("model_id"),
        )

    def _versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` as MLflow entities, oldest first."""
        info = self.registry.info(name)
        query = queries.model_versions_newest_first(self.ms.db, self.project, name)
        docs = [s.to_dict() or {} for s in query.stream()]
        found = [
            self._to_version(AletheiaVersion.from_doc(self.project, d, info.aliases), d)
            for d in docs
        ]
        return sorted(found, key=lambda v: int(v.version))

    def _every_version(self) -> tuple[list[ModelInfo], dict[str, list[ModelVersion]]]:
        """Every model of the project and its versions (oldest first): two queries,
        whatever the number of models (the searches' one read of the registry)."""
        infos = self.registry.models()
        aliases = {info.name: info.aliases for info in infos}
        found: dict[str, list[ModelVersion]] = {info.name: [] for info in infos}
        query = queries.model_versions_of_project(self.ms.db, self.project)
        for snap in queries.under_project(query.stream(), self.project):
            doc = snap.to_dict() or {}
            name = str(doc.get("model"))
            if name in found:  # a version whose model is gone (mid-rename) is not listed
                mv = AletheiaVersion.from_doc(self.project, doc, aliases[name])
                found[name].append(self._to_version(mv, doc))
        for versions in found.values():
            versions.sort(key=lambda v: int(v.version))
        return infos, found

    def _version(self, name: str, version: Any) -> ModelVersion:
        with _as_mlflow():
            info = self.registry.info(name)
            number = self._number(version)
            snap = self.ms.db.document(layout.model_version(self.project, name, number)).get()
        if not snap.exists:
            raise MlflowException(
                f"Model Version (name={name}, version={version}) not found",
                RESOURCE_DOES_NOT_EXIST,
            )
        doc = snap.to_dict() or {}
        return self._to_version(AletheiaVersion.from_doc(self.project, doc, info.aliases), doc)

    @staticmethod
    def _number(version: Any) -> int:
        from aletheia.models.registry import parse_version

        return parse_version(str(version))

    def _to_model(self, info: ModelInfo, versions: list[ModelVersion]) -> RegisteredModel:
        return RegisteredModel(
            name=info.name,
            creation_timestamp=ms(info.created_at),
            last_updated_timestamp=ms(info.updated_at),
            description=info.description or None,
            latest_versions=_latest_per_stage(versions, None),
            tags=[RegisteredModelTag(k, str(v)) for k, v in sorted(info.tags.items())],
            aliases=[RegisteredModelAlias(a, str(v)) for a, v in sorted(info.aliases.items())],
        )

    def _check_name(self, name: str) -> None:
        _validate_model_name(name)
        with _as_mlflow():
            layout.model(self.project, name)

    def _await_model_version_creation(self, mv: Any, await_creation_for: Any) -> None:
        """Nothing to wait for: a version is ready when its document is created."""

    # ------------------------------------------------------------- registered models

    def create_registered_model(self, name, tags=None, description=None, deployment_job_id=None):
        """Create ``Models/{name}``; RESOURCE_ALREADY_EXISTS if it is registered."""
        self._check_name(name)
        try:
            with _as_mlflow():
                self.registry.create_model(
                    name,
                    description=description,
                    tags={t.key: t.value for t in tags or []},
                    exist_ok=False,
                )
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                raise MlflowException(
                    f"Registered Model (name={name}) already exists.", RESOURCE_ALREADY_EXISTS
                ) from exc
            raise
        return self.get_registered_model(name)

    def get_registered_model(self, name):
        """The registered model, its latest version per stage, tags and aliases."""
        self._check_name(name)
        try:
            info = self.registry.info(name)
        except NotFoundError as exc:
            raise MlflowException(
                f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST
            ) from exc
        with _as_mlflow():
            return self._to_model(info, self._versions(name))

    def update_registered_model(self, name, description, deployment_job_id=None):
        """Set the model's description."""
        self.get_registered_model(name)
        with _as_mlflow():
            self.registry.set_description(name, description or "")
        return self.get_registered_model(name)

    def rename_registered_model(self, name, new_name):
        """Rename the model: its versions, aliases, tags and description move; the old
        name is gone. RESOURCE_ALREADY_EXISTS if ``new_name`` is registered."""
        self._check_name(new_name)
        self.get_registered_model(name)
        try:
            with _as_mlflow():
                self.registry.rename_model(name, new_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                raise MlflowException(
                    f"Registered Model (name={new_name}) already exists.", RESOURCE_ALREADY_EXISTS
                ) from exc
            raise
        return self.get_registered_model(new_name)

    def delete_registered_model(self, name):
        """Delete the model and its versions (owners only, under the rules)."""
        self.get_registered_model(name)
        with _as_mlflow():
            self.registry.delete_model(name)

    def search_registered_models(
        self, filter_string=None, max_results=None, order_by=None, page_token=None
    ):
        """MLflow's filter and order over every registered model of the project."""
        with _as_mlflow():
            infos, versions = self._every_version()
            models = [self._to_model(info, versions[info.name]) for info in infos]
        filtered = SearchModelUtils.filter(models, filter_string)
        return _page(SearchModelUtils.sort(filtered, order_by), max_results, page_token)

    def get_latest_versions(self, name, stages=None):
        """The latest version in each of ``stages`` (default: every stage)."""
        self.get_registered_model(name)
        with _as_mlflow():
            return _latest_per_stage(self._versions(name), stages)

    def set_registered_model_tag(self, name, tag):
        """Tag the model."""
        self.get_registered_model(name)
        with _as_mlflow():
            self.registry.set_tag(name, tag.key, tag.value)

    def delete_registered_model_tag(self, name, key):
        """Remove a tag of the model."""
        self.get_registered_model(name)
        with _as_mlflow():
            self.registry.delete_tag(name, key)

    # ------------------------------------------------------------- model versions

    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        """Register the next version of ``name`` from MLflow's ``source``.

        When ``run_id`` is a run of this project, the version records its
        experiment, params, metrics, dataset versions and commit.
        """
        self._check_name(name)
        self.get_registered_model(name)
        resolved = SourceResolver(self).resolve(source, model_id)
        storage, run_id = _storage_location(self, source, run_id or resolved.run_id, model_id)
        facts = None
        if run_id:
            facts = self._run_facts(run_id)
        extra = {
            "mlflow_run_id": run_id,
            "storage_location": storage,
            "run_link": run_link,
            "model_id": model_id,
        }
        with _as_mlflow():
            mv = self.registry.register(
                name,
                artifact=resolved.artifact,
                source=source,
                run=facts,
                description=description,
                tags={t.key: t.value for t in tags or []},
                extra=extra,
            )
        return self._version(name, mv.version)

    def _run_facts(self, run_id: str) -> Any:
        """What the registry records of MLflow run ``run_id``; None if it is not here."""
        try:
            snap = self.ms.db.document(layout.mlflow_run(self.project, run_id)).get()
        except (ValidationError, gexc.PermissionDenied):
            return None
        if not snap.exists:
            return None
        experiment = str((snap.to_dict() or {}).get("experiment"))
        try:
            return modelreg.facts(self.ms.reader.get_run(experiment, run_id))
        except NotFoundError:
            return None

    def get_model_version(self, name, version):
        """One version."""
        self._check_name(name)
        return self._version(name, version)

    def update_model_version(self, name, version, description):
        """Set a version's description (its record does not change)."""
        mv = self._version(name, version)
        with _as_mlflow():
            self.registry.set_description(name, description or "", version=mv.version)
        return self._version(name, version)

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        """MLflow's deprecated stages, kept as an annotation of the version."""
        from mlflow.entities.model_registry.model_version_stages import (
            DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS,
            get_canonical_stage,
        )

        canonical = get_canonical_stage(stage)
        if archive_existing_versions and canonical not in DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS:
            raise MlflowException(
                f"Model version transition cannot archive existing model versions because "
                f"'{stage}' is not an Active stage. Valid stages are "
                f"{DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS}"
            )
        self._version(name, version)
        with _as_mlflow():
            if archive_existing_versions:
                for other in self._versions(name):
                    if str(other.version) != str(version) and other.current_stage == canonical:
                        self.registry.set_stage(name, other.version, "Archived")
            self.registry.set_stage(name, version, canonical)
        return self._version(name, version)

    def delete_model_version(self, name, version):
        """Delete one version and the aliases on it (owners only, under the rules)."""
        self._version(name, version)
        with _as_mlflow():
            self.registry.delete_version(name, version)

    def get_model_version_download_uri(self, name, version):
        """Where the version's files are: its storage location, else its source."""
        self._version(name, version)
        with _as_mlflow():
            doc = (
                self.ms.db.document(layout.model_version(self.project, name, self._number(version)))
                .get()
                .to_dict()
                or {}
            )
        return doc.get("storage_location") or doc.get("source")

    def search_model_versions(
        self, filter_string=None, max_results=None, order_by=None, page_token=None
    ):
        """MLflow's filter and order over every version of every model of the project."""
        with _as_mlflow():
            infos, by_model = self._every_version()
            versions = [v for info in infos for v in by_model[info.name]]
        filtered = SearchModelVersionUtils.filter(versions, filter_string)
        ordered = SearchModelVersionUtils.sort(
            filtered,
            order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"],
        )
        return _page(ordered, max_results, page_token)

    def set_model_version_tag(self, name, version, tag):
        """Tag one version."""
        self._version(name, version)
        with _as_mlflow():
            self.registry.set_tag(name, tag.key, tag.value, version=version)

    def delete_model_version_tag(self, name, version, key):
        """Remove a tag of one version."""
        self._version(name, version)
        with _as_mlflow():
            self.registry.delete_tag(name, key, version=version)

    # ------------------------------------------------------------- aliases

    def set_registered_model_alias(self, name, alias, version):
        """Point ``alias`` at ``version`` (it moves if set elsewhere)."""
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
        self.get_registered_model(name)
        self._version(name, version)
        with _as_mlflow():
            self.registry.set_alias(name, alias, version)

    def delete_registered_model_alias(self, name, alias):
        """Remove ``alias`` (nothing happens if it is not set, as in MLflow's stores)."""
        _validate_model_alias_name(alias)
        if alias in self.registry.info(name).aliases:
            with _as_mlflow():
                self.registry.delete_alias(name, alias)

    def get_model_version_by_alias(self, name, alias):
        """The version ``alias`` points at (``latest``: the highest version)."""
        self.get_registered_model(name)
        if alias.lower() == "latest":
            versions = self._versions(name)
            if not versions:
                raise MlflowException(
                    f"Registered model '{name}' has no versions", RESOURCE_DOES_NOT_EXIST
                )
            return versions[-1]
        aliases = self.registry.info(name).aliases
        if alias not in aliases:
            raise MlflowException(
                f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE
            )
        return self._version(name, aliases[alias])


def _latest_per_stage(versions: list[ModelVersion], stages: list[str] | None) -> list[ModelVersion]:
    """The highest version in each stage asked for (every stage when none is)."""
    from mlflow.entities.model_registry.model_version_stages import (
        ALL_STAGES,
        get_canonical_stage,
    )

    wanted = [get_canonical_stage(s) for s in (stages or ALL_STAGES)]
    latest: dict[str, ModelVersion] = {}
    for mv in versions:
        stage = mv.current_stage or STAGE_NONE
        if stage in wanted and (
            stage not in latest or int(latest[stage].version) < int(mv.version)
        ):
            latest[stage] = mv
    return [latest[s] for s in wanted if s in latest]


def _storage_location(
    store: AletheiaRegistryStore, source: str, run_id: str | None, model_id: str | None
) -> tuple[str, Any]:
    """Where a ``models:/`` source's files are, and its run (as MLflow's file store decides):
    a logged model's artifact location, or the download URI of a registered version."""
    if urlparse(source).scheme == "models":
        from mlflow.store.artifact.utils.models import _parse_model_uri

        parsed = _parse_model_uri(source)
        if parsed.model_id is None and parsed.name and parsed.version:
            return store.get_model_version_download_uri(parsed.name, parsed.version), run_id
        model_id = model_id or parsed.model_id
    if model_id is None:
        return source, run_id
    from mlflow.tracking.client import MlflowClient

    try:
        model = MlflowClient().get_logged_model(model_id)
    except MlflowException:  # a logged model this tracking store does not keep
        return source, run_id
    return model.artifact_location, run_id or model.source_run_id


__all__ = ["AletheiaRegistryStore"]
