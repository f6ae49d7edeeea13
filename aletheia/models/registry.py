"""The model registry in Firestore: models, numbered immutable versions, moving aliases.

::

    Projects/{p}/Models/{name}     name, project, description, tags{}, aliases{alias: n},
                                   version_count, latest_version, created_at, updated_at
      Versions/{n}                 project, model, version (n), flavor, source,
                                   experiment, run, artifact{experiment, name, version,
                                   manifest_sha256, file_count, total_bytes},
                                   datasets[{name, version}], dataset_refs[name@version],
                                   git{commit, branch, dirty, remote}, params, hyper_params,
                                   metrics{name: last value}, registered_by, created_at,
                                   tags{}, description, stage

* A version is a record of what was registered: run, artifact version, data,
  code, params and metrics never change after its ``create`` (the rules let
  only its tags, description and stage change; owners delete).
* Versions are numbered 1, 2, 3 ... by an optimistic ``create`` of
  ``Versions/{n}`` in the same batch as the model document's counter, as run
  ids and artifact versions are: concurrent registrations race on the
  ``create`` and the loser takes the next number; no transaction holds a lock.
* Aliases (``champion``, ``staging``, any name) are one map on the model
  document: moving one is a single field update, and reading a model gives
  every alias at once.
* A version's files are the artifact version it names (content-addressed
  blobs and a manifest, :mod:`aletheia.data.artifacts`); the model also
  registers them in :mod:`aletheia.data.blobrefs`, so ``datasets rm`` keeps
  them. A version registered from a bare ``source`` URI (MLflow's
  ``runs:/...``) names no artifact.
* Lineage both ways: a version names its run and the dataset versions that
  run used (``dataset_refs``); :meth:`ModelRegistry.trained_on` finds the
  versions trained on a dataset version with one collection-group query.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from aletheia.cloud import layout, limits, members, queries
from aletheia.data import blobrefs
from aletheia.data.artifacts import ArtifactStore, ArtifactVersion
from aletheia.data.cache import Verify
from aletheia.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from aletheia.models import holds, packaging, records, rename
from aletheia.models.entities import Model, ModelInfo, ModelVersion, RunFacts

#: What may change on a version after its creation (annotations, never what it records).
MUTABLE_VERSION_FIELDS = ("tags", "description", "stage", "updated_at")
#: MLflow's deprecated stages, kept as an annotation for its registry API.
STAGES = ("None", "Staging", "Production", "Archived")

_ALIAS = re.compile(r"^[\w-]{1,255}$")  # as MLflow: word characters and "-"
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def parse_version(value: object) -> int:
    """A model version number from ``3``, ``"3"`` or ``"v3"``; else :class:`ValidationError`."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str):
        text = value.strip()
        text = text[1:] if text[:1] in ("v", "V") else text
        if text.isdigit() and int(text) >= 1:
            return int(text)
    raise ValidationError(
        f"invalid model version {value!r}", "model versions are whole numbers from 1 (3 or v3)"
    )


def validate_alias(alias: object) -> str:
    """An alias name: letters, digits, ``_`` and ``-``; not ``latest`` nor version-like."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise ValidationError(
            f"invalid alias {alias!r}",
            "use letters, digits, '_' and '-' (at most 255), e.g. champion or staging",
        )
    if alias.lower() == "latest" or _VERSION_LIKE.match(alias):
        raise ValidationError(
            f"alias {alias!r} is reserved", "'latest' and 'v<n>' already name versions"
        )
    return alias


def _field(*parts: str) -> str:
    """A field path for keys that may hold any character (tags, aliases)."""
    return FieldPath(*parts).to_api_repr()


class ModelRegistry:
    """Register, read, alias and tag the models of one project.

    ``artifacts`` is the project's artifact store (needed to register from
    artifact versions and to download); ``run_lookup(experiment, run)``
    reads a run back for :meth:`ModelVersion.run_view` (the tracking layer
    supplies it).
    """

    def __init__(
        self,
        db: firestore.Client,
        project: str,
        *,
        artifacts: ArtifactStore | None = None,
        owner: str | None = None,
        run_lookup: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.db = db
        self.project = layout.validate_id(project, "project name")
        self.artifacts = artifacts
        self.owner = owner
        self.run_lookup = run_lookup
        self._project_ensured = False

    def model(self, name: str) -> Model:
        """A handle on model ``name`` (nothing is read until it is used)."""
        return Model(self, layout.validate_id(name, "model name"))

    # ------------------------------------------------------------------ models

    def _ensure_project(self) -> None:
        if not self._project_ensured:
            members.ensure_project(self.db, self.project, owner=self.owner)
            self._project_ensured = True

    def create_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> ModelInfo:
        """Create ``Models/{name}``; an existing one is returned (or, unless ``exist_ok``,
        a :class:`ConflictError`)."""
        path = layout.model(self.project, name)
        clean_tags = {
            records.tag_key(k): limits.validate_text(v, "tag value")
            for k, v in (tags or {}).items()
        }
        doc = {
            "name": name,
            "project": self.project,
            "description": limits.validate_text(description or "", "model description"),
            "tags": clean_tags,
            "aliases": {},
            "version_count": 0,
            "latest_version": None,
            "created_at": firestore.SERVER_TIMESTAMP,
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
        limits.validate_document(doc, "model", "use fewer or shorter tags")
        self._ensure_project()
        # A token of this call: the client library retries a create whose answer was lost,
        # and the retry's "exists" is then this call's own model, not someone else's.
        token = secrets.token_hex(8)
        try:
            self.db.document(path).create({**doc, records.REGISTRATION: token})
        except gexc.AlreadyExists as exc:
            if not exist_ok and not self._created_by(path, token):
                raise ConflictError(
                    f"model {name!r} already exists in project {self.project!r}",
                    "register a new version of it, or choose another name",
                ) from exc
        return self.info(name)

    def _created_by(self, path: str, token: str) -> bool:
        """Whether the model at ``path`` was created by the call that drew ``token``."""
        taken = self.db.document(path).get([records.REGISTRATION]).to_dict() or {}
        return taken.get(records.REGISTRATION) == token

    def info(self, name: str) -> ModelInfo:
        """Model ``name`` as stored; :class:`NotFoundError` if it is not registered."""
        return ModelInfo.from_doc(self.project, name, self._model_doc(name))

    def _model_doc(self, name: str) -> dict[str, Any]:
        snap = self.db.document(layout.model(self.project, name)).get()
        if not snap.exists:
            raise NotFoundError(
                f"no model {name!r} in project {self.project!r}",
                f"see `aletheia models list -p {self.project}`",
            )
        return snap.to_dict() or {}

    def models(self) -> list[ModelInfo]:
        """Every registered model of the project, by name."""
        return [
            ModelInfo.from_doc(self.project, s.id, s.to_dict() or {})
            for s in queries.models_by_name(self.db, self.project).stream()
        ]

    def delete_model(self, name: str) -> list[str]:
        """Delete model ``name`` and every version of it (owners only, under the rules).

        Its hold on its versions' blobs is released; returns the blobs nothing
        holds any more (:mod:`aletheia.models.holds`).
        """
        self._model_doc(name)
        snaps = list(self.db.collection(layout.model_versions(self.project, name)).stream())
        versions = [ModelVersion.from_doc(self.project, s.to_dict() or {}) for s in snaps]
        held = holds.digests(self.artifacts, versions)
        for start in range(0, len(snaps), 400):
            batch = self.db.batch()
            for snap in snaps[start : start + 400]:
                batch.delete(snap.reference)
            batch.commit()
        self.db.document(layout.model(self.project, name)).delete()
        # Released after the deletes: a crash in between keeps bytes too long, never loses.
        return holds.release(self.db, self.project, name, held, set())

    def rename_model(self, name: str, new_name: str) -> None:
        """Rename model ``name`` to ``new_name``: versions, aliases, tags and description move
        (:mod:`aletheia.models.rename`); :class:`ConflictError` if ``new_name`` is taken."""
        doc = self._model_doc(name)
        layout.model(self.project, new_name)
        held = holds.digests(self.artifacts, self.versions(name))
        # The new name holds the blobs before any version moves: never a moment unheld.
        before = functools.partial(holds.hold, self.db, self.project, new_name, held)
        rename.rename_model(self.db, self.project, name, new_name, doc, before)
        holds.release_renamed(self.db, self.project, name, held)

    # ------------------------------------------------------------------ register

    def register(
        self,
        name: str,
        *,
        artifact: ArtifactVersion | None = None,
        run: RunFacts | None = None,
        source: str | None = None,
        flavor: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a new version of ``name`` (created if new); returns it.

        Its files are ``artifact`` (an artifact version), or it only records a
        ``source`` URI (MLflow's ``runs:/...``). ``run`` is what the training
        run was at registration: its params, metrics, data and code.
        """
        layout.model(self.project, name)  # validates the name before any I/O
        if artifact is None and not source:
            raise ValidationError(
                f"model {name!r}: nothing to register", "pass an artifact version or a source URI"
            )
        record = records.version_record(
            self.project, name, artifact, run, source, flavor, description, tags
        )
        record["registered_by"] = records.acting_user(self.db)
        # Fields an integration keeps beside the record (MLflow's run id, storage location).
        record.update({k: v for k, v in (extra or {}).items() if k not in record})
        limits.validate_document(record, "model version", "log fewer params or metrics")
        self.create_model(name)
        if artifact is not None:
            held = [f.sha256 for f in artifact.files] if artifact.uploaded else []
            if artifact.manifest_sha256:
                held.append(artifact.manifest_sha256)
            # Registered before the commit: a crash in between keeps blobs too long, never loses.
            blobrefs.record(self.db, self.project, blobrefs.model_references(name, held))
        version = records.commit_version(self.db, self.project, name, record)
        return ModelVersion.from_doc(self.project, {**record, "version": version}, None, self)

    # ------------------------------------------------------------------ read

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        aliases = self.info(name).aliases
        docs = queries.model_versions_newest_first(self.db, self.project, name).stream()
        found = [
            ModelVersion.from_doc(self.project, s.to_dict() or {}, aliases, self) for s in docs
        ]
        return found[::-1]

    def get(
        self, name: str, version: int | str | None = None, *, alias: str | None = None
    ) -> ModelVersion:
        """Version ``version`` of ``name``, the one ``alias`` points at, or the latest."""
        info = self.info(name)
        if alias is not None and version is not None:
            raise ValidationError("pass a version or an alias, not both")
        if alias is not None:
            if alias not in info.aliases:
                known = ", ".join(sorted(info.aliases)) or "none"
                raise NotFoundError(
                    f"model {name!r} has no alias {alias!r} (aliases: {known})",
                    f"set it with `aletheia models alias {name} {alias} VERSION`",
                )
            number = info.aliases[alias]
        elif version is None:
            latest = list(
                queries.model_versions_newest_first(self.db, self.project, name).limit(1).stream()
            )
            if not latest:
                raise NotFoundError(f"model {name!r} has no versions", "register one")
            return ModelVersion.from_doc(
                self.project, latest[0].to_dict() or {}, info.aliases, self
            )
        else:
            number = parse_version(version)
        snap = self.db.document(layout.model_version(self.project, name, number)).get()
        if not snap.exists:
            raise NotFoundError(
                f"model {name!r} has no version {number}",
                f"see `aletheia models show {name}`",
            )
        return ModelVersion.from_doc(self.project, snap.to_dict() or {}, info.aliases, self)

    def trained_on(self, dataset: str, version: str) -> list[ModelVersion]:
        """Every model version whose training run used ``dataset@version`` (lineage)."""
        query = queries.model_versions_using_dataset(self.db, self.project, dataset, version)
        docs = [s.to_dict() or {} for s in queries.under_project(query.stream(), self.project)]
        names = sorted({str(d["model"]) for d in docs})
        aliases: dict[str, Mapping[str, int]] = {}
        if names:
            refs = [self.db.document(layout.model(self.project, n)) for n in names]
            for snap in self.db.get_all(refs):
                aliases[snap.id] = (snap.to_dict() or {}).get("aliases") or {}
        found = [
            ModelVersion.from_doc(self.project, d, aliases.get(str(d["model"])), self) for d in docs
        ]
        return sorted(found, key=lambda mv: (mv.name, mv.version))

    def run_of(self, mv: ModelVersion) -> Any:
        """The run that trained ``mv``, read back through ``run_lookup``; None if it names none."""
        if mv.run is None or mv.experiment is None:
            return None
        if self.run_lookup is None:
            raise ValidationError(
                "this registry cannot read runs", "use Metastore(...).model(name)"
            )
        return self.run_lookup(mv.experiment, mv.run)

    # ------------------------------------------------------------------ aliases, tags

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` (it moves if it pointed elsewhere)."""
        validate_alias(alias)
        number = parse_version(version)
        self.get(name, number)  # the version exists
        self.db.document(layout.model(self.project, name)).update(
            {_field("aliases", alias): number, "updated_at": firestore.SERVER_TIMESTAMP}
        )

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name``."""
        if alias not in self.info(name).aliases:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        self.db.document(layout.model(self.project, name)).update(
            {
                _field("aliases", alias): firestore.DELETE_FIELD,
                "updated_at": firestore.SERVER_TIMESTAMP,
            }
        )

    def _annotate(self, name: str, version: int | str | None, fields: dict[str, Any]) -> None:
        fields["updated_at"] = firestore.SERVER_TIMESTAMP
        if version is None:
            self._model_doc(name)
            path = layout.model(self.project, name)
        else:
            path = layout.model_version(self.project, name, self.get(name, version).version)
        self.db.document(path).update(fields)

    def set_tag(self, name: str, key: str, value: str, *, version: int | str | None = None) -> None:
        """Set tag ``key`` on the model, or on one version (tags may change; records do not)."""
        self._annotate(
            name,
            version,
            {_field("tags", records.tag_key(key)): limits.validate_text(value, "tag value")},
        )

    def delete_tag(self, name: str, key: str, *, version: int | str | None = None) -> None:
        """Remove tag ``key`` from the model or one version."""
        self._annotate(
            name, version, {_field("tags", records.tag_key(key)): firestore.DELETE_FIELD}
        )

    def set_description(self, name: str, text: str, *, version: int | str | None = None) -> None:
        """Describe the model, or one version."""
        self._annotate(
            name, version, {"description": limits.validate_text(text or "", "description")}
        )

    def set_stage(self, name: str, version: int | str, stage: str) -> None:
        """MLflow's (deprecated) stage of a version: None, Staging, Production or Archived."""
        if stage not in STAGES:
            raise ValidationError(f"invalid stage {stage!r}", f"use one of {', '.join(STAGES)}")
        self._annotate(name, version, {"stage": stage})

    def delete_version(self, name: str, version: int | str) -> list[str]:
        """Delete one version (owners only, under the rules); aliases on it go too.

        The model's hold on blobs no other version of it holds is released;
        returns the blobs nothing holds any more.
        """
        mv = self.get(name, version)
        others = [v for v in self.versions(name) if v.version != mv.version]
        gone, kept = holds.digests(self.artifacts, [mv]), holds.digests(self.artifacts, others)
        info = self.info(name)
        batch = self.db.batch()
        batch.delete(self.db.document(layout.model_version(self.project, name, mv.version)))
        update: dict[str, Any] = {
            _field("aliases", a): firestore.DELETE_FIELD
            for a, v in info.aliases.items()
            if v == mv.version
        }
        if info.latest_version == mv.version:  # the listing's latest becomes the one before
            newest = queries.model_versions_newest_first(self.db, self.project, name).limit(2)
            rest = [int((s.to_dict() or {})["version"]) for s in newest.stream()]
            update["latest_version"] = next((v for v in rest if v != mv.version), None)
        if update:
            update["updated_at"] = firestore.SERVER_TIMESTAMP
            batch.update(self.db.document(layout.model(self.project, name)), update)
        batch.commit()
        return holds.release(self.db, self.project, name, gone, kept)

    # ------------------------------------------------------------------ files

    def _artifact(self, mv: ModelVersion) -> ArtifactVersion:
        if mv.artifact is None:
            raise NotFoundError(
                f"model {mv.name!r} version {mv.version} was registered from {mv.source!r}, "
                "not from an aletheia artifact",
                "load it with MLflow (models:/NAME/VERSION), or register its source again: "
                "versions registered through MLflow now record their files",
            )
        if self.artifacts is None:
            raise ValidationError(
                "this registry has no artifact store", "use Metastore(...).model(name)"
            )
        ref = mv.artifact
        av = self.artifacts.get(ref.experiment, ref.name, ref.version)
        if ref.manifest_sha256 and av.manifest_sha256 != ref.manifest_sha256:
            raise IntegrityError(
                f"artifact {ref.name!r} {ref.version} no longer has the files model {mv.name!r} "
                f"version {mv.version} was registered with",
                "register the model again from the artifact version you mean",
            )
        return av

    def download(
        self, mv: ModelVersion, to: Path | None = None, *, verify: Verify = "stat"
    ) -> Path:
        """Fetch ``mv``'s files through the cache (verified by sha256); place them under ``to``."""
        return self._artifact(mv).download(to, verify=verify)

    def load(self, mv: ModelVersion) -> Any:
        """Unpickle a version logged from a Python object (``serialization: pickle``)."""
        if mv.serialization != packaging.PICKLE_SERIALIZATION:
            raise ValidationError(
                f"model {mv.name!r} version {mv.version} was logged as files "
                f"(flavor {mv.flavor!r}), not as a Python object",
                "download() it and load it with its framework",
            )
        return packaging.load_pickled(self.download(mv))
