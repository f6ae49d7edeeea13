"""What the model registry reads and writes: registered models, versions, and run facts.

A :class:`ModelVersion` is a frozen snapshot of its document (plus the
aliases that point at it, read from the model document). Its ``download``,
``load`` and ``run_view`` go through the registry it was read from
(:class:`VersionBackend`, implemented by :class:`aletheia.models.registry.ModelRegistry`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aletheia.data.cache import Verify


class VersionBackend(Protocol):
    """What a :class:`ModelVersion` and a :class:`Model` call (the registry implements it)."""

    project: str

    def download(
        self, mv: ModelVersion, to: Path | None = None, *, verify: Verify = "stat"
    ) -> Path: ...
    def load(self, mv: ModelVersion) -> Any: ...
    def run_of(self, mv: ModelVersion) -> Any: ...
    def info(self, name: str) -> ModelInfo: ...
    def versions(self, name: str) -> list[ModelVersion]: ...
    def get(
        self, name: str, version: int | str | None = None, *, alias: str | None = None
    ) -> ModelVersion: ...
    def set_alias(self, name: str, alias: str, version: int | str) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def set_tag(
        self, name: str, key: str, value: str, *, version: int | str | None = None
    ) -> None: ...
    def set_description(
        self, name: str, text: str, *, version: int | str | None = None
    ) -> None: ...
    def rename_model(self, name: str, new_name: str) -> None: ...


@dataclass(frozen=True)
class RunFacts:
    """What a model version records of the run that trained it, at registration."""

    experiment: str
    run: str
    params: Mapping[str, Any] = field(default_factory=dict)
    hyper_params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    #: ``(name, version)`` of every dataset version the run recorded using.
    datasets: Sequence[tuple[str, str]] = ()
    #: ``commit``, ``branch``, ``dirty``, ``remote`` of the run's code.
    git: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactRef:
    """The artifact version holding a model version's files."""

    experiment: str
    name: str
    version: str
    manifest_sha256: str | None = None
    file_count: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: ``Projects/{p}/Models/{name}``."""

    project: str
    name: str
    description: str
    tags: Mapping[str, str]
    #: ``{alias: version}``; aliases move, versions do not.
    aliases: Mapping[str, int]
    latest_version: int | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None

    @classmethod
    def from_doc(cls, project: str, name: str, doc: Mapping[str, Any]) -> ModelInfo:
        """The model as its document holds it."""
        latest = doc.get("latest_version")
        return cls(
            project=project,
            name=name,
            description=str(doc.get("description") or ""),
            tags=dict(doc.get("tags") or {}),
            aliases={str(k): int(v) for k, v in (doc.get("aliases") or {}).items()},
            latest_version=int(latest) if isinstance(latest, int) else None,
            created_at=doc.get("created_at"),
            updated_at=doc.get("updated_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {
            "project": self.project,
            "name": self.name,
            "description": self.description,
            "tags": dict(self.tags),
            "aliases": dict(self.aliases),
            "latest_version": self.latest_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ModelVersion:
    """Version ``version`` of model ``name``: one immutable registration."""

    project: str
    name: str
    version: int
    flavor: str | None
    source: str | None
    experiment: str | None
    run: str | None
    artifact: ArtifactRef | None
    #: ``(name, version)`` of the dataset versions the run used.
    datasets: tuple[tuple[str, str], ...]
    git: Mapping[str, Any]
    params: Mapping[str, Any]
    hyper_params: Mapping[str, Any]
    metrics: Mapping[str, float | None]
    registered_by: str | None
    created_at: dt.datetime | None
    tags: Mapping[str, str]
    description: str
    aliases: tuple[str, ...] = ()
    updated_at: dt.datetime | None = None
    #: ``pickle`` when the model was given as an object (whatever its flavor), else None.
    serialization: str | None = None
    _registry: VersionBackend | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_doc(
        cls,
        project: str,
        doc: Mapping[str, Any],
        aliases: Mapping[str, int] | None = None,
        registry: VersionBackend | None = None,
    ) -> ModelVersion:
        """A version as its document holds it; ``aliases`` from the model document."""
        version = int(doc["version"])
        art = doc.get("artifact")
        return cls(
            project=project,
            name=str(doc["model"]),
            version=version,
            flavor=doc.get("flavor"),
            source=doc.get("source"),
            experiment=doc.get("experiment"),
            run=doc.get("run"),
            artifact=ArtifactRef(**art) if isinstance(art, Mapping) else None,
            datasets=tuple(
                (str(d.get("name")), str(d.get("version"))) for d in doc.get("datasets") or []
            ),
            git=dict(doc.get("git") or {}),
            params=dict(doc.get("params") or {}),
            hyper_params=dict(doc.get("hyper_params") or {}),
            metrics=dict(doc.get("metrics") or {}),
            registered_by=doc.get("registered_by"),
            created_at=doc.get("created_at"),
            tags=dict(doc.get("tags") or {}),
            description=str(doc.get("description") or ""),
            aliases=tuple(sorted(a for a, v in (aliases or {}).items() if v == version)),
            updated_at=doc.get("updated_at"),
            serialization=doc.get("serialization"),
            _registry=registry,
        )

    @property
    def dataset_refs(self) -> list[str]:
        """``name@version`` of each dataset version the training run used."""
        return [f"{n}@{v}" for n, v in self.datasets]

    def _attached(self) -> VersionBackend:
        if self._registry is None:
            from aletheia.errors import ValidationError

            raise ValidationError("this model version is not attached to a registry")
        return self._registry

    def download(self, to: str | Path | None = None, *, verify: Verify = "stat") -> Path:
        """Put the model's files under ``to`` (default: a checkout in the cache); returns it.

        Bytes come through the local cache, verified against their sha256.
        """
        return self._attached().download(self, None if to is None else Path(to), verify=verify)

    def load(self) -> Any:
        """The model object of a version logged from a Python object (pickled).

        Unpickling runs code from the file: load only models you trust.
        """
        return self._attached().load(self)

    def run_view(self) -> Any:
        """The run that trained this version, read back (a ``RunView``), or ``None``."""
        return self._attached().run_of(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        art = self.artifact
        return {
            "project": self.project,
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "flavor": self.flavor,
            "serialization": self.serialization,
            "source": self.source,
            "experiment": self.experiment,
            "run": self.run,
            "artifact": None if art is None else dict(art.__dict__),
            "datasets": self.dataset_refs,
            "git": dict(self.git),
            "params": dict(self.params),
            "hyper_params": dict(self.hyper_params),
            "metrics": dict(self.metrics),
            "registered_by": self.registered_by,
            "created_at": self.created_at,
            "tags": dict(self.tags),
            "description": self.description,
        }


class Model:
    """A handle on registered model ``name``: its versions, aliases and lineage."""

    def __init__(self, registry: VersionBackend, name: str) -> None:
        self.registry = registry
        self.name = name

    def info(self) -> ModelInfo:
        """The model document (aliases, tags, description)."""
        return self.registry.info(self.name)

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        return self.registry.versions(self.name)

    def get(self, version: int | str | None = None, *, alias: str | None = None) -> ModelVersion:
        """Version ``version``, or the one ``alias`` points at (default: the latest)."""
        return self.registry.get(self.name, version, alias=alias)

    def set_alias(self, alias: str, version: int | str) -> None:
        """Point ``alias`` (``champion``, ``staging``, any name) at ``version``."""
        self.registry.set_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias``."""
        self.registry.delete_alias(self.name, alias)

    def set_tag(self, key: str, value: str, *, version: int | str | None = None) -> None:
        """Tag the model (or one of its versions)."""
        self.registry.set_tag(self.name, key, value, version=version)

    def set_description(self, text: str, *, version: int | str | None = None) -> None:
        """Describe the model (or one of its versions)."""
        self.registry.set_description(self.name, text, version=version)

    def rename(self, new_name: str) -> Model:
        """Rename the model (versions, aliases, tags and description move); the handle on
        ``new_name`` is returned."""
        self.registry.rename_model(self.name, new_name)
        return Model(self.registry, new_name)

    def __repr__(self) -> str:
        return f"Model({self.registry.project!r}, {self.name!r})"
