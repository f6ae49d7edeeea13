"""MLflow artifact repository for ``aletheia-art://PROJECT/EXPERIMENT/RUN`` URIs.

``mlflow.log_artifact(s)`` uploads each file as a content-addressed blob of
the project (the same bucket and ``sha256`` names as datasets and aletheia
artifacts, so identical bytes are stored once) and records it at
``.../Runs/{run}/ArtifactFiles/{file}`` with its path, sha256, size and blob
URI. Listing and downloading read those records.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from aletheia.cloud import config, layout
from aletheia.data import blobrefs
from aletheia.data.hashing import sha256_file
from aletheia.errors import AletheiaError
from aletheia.integrations.mlflow.schemes import ARTIFACT_SCHEME
from aletheia.tracking.compose import Backend
from aletheia.tracking.firestore_reader import FirestoreReader
from aletheia.tracking.readapi import thaw
from aletheia.tracking.runmodel import RunRef

if TYPE_CHECKING:
    from google.cloud import firestore

    from aletheia.data.blobstore import BlobStore


def parse_uri(uri: str) -> tuple[str, str, str, str]:
    """``(project, experiment, run, path inside the run)`` of an ``aletheia-art`` URI."""
    parsed = urlparse(uri)
    parts = [p for p in parsed.path.split("/") if p]
    if not parsed.netloc or len(parts) < 2:
        raise MlflowException(
            f"artifact URI {uri!r} is not aletheia-art://PROJECT/EXPERIMENT/RUN[/PATH]",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return parsed.netloc, parts[0], parts[1], "/".join(parts[2:])


class AletheiaArtifactRepository(ArtifactRepository):
    """Artifacts of one run, stored through aletheia's blob store."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(artifact_uri, tracking_uri=tracking_uri, **kwargs)
        self.project, self.exper, self.run, self.prefix = parse_uri(artifact_uri)
        self.settings = config.resolve()
        self.backend = Backend(self.settings, self.project)

    @property
    def db(self) -> firestore.Client:
        """The Firestore client."""
        return self.backend.db

    @property
    def blobs(self) -> BlobStore:
        """The project's :class:`~aletheia.data.blobstore.BlobStore`."""
        return self.backend.blobs

    def _rel(self, *parts: str | None) -> str:
        joined = posixpath.join(self.prefix, *(p for p in parts if p))
        try:
            return layout.validate_relpath(joined)
        except AletheiaError as exc:
            raise MlflowException(exc.message, error_code=INVALID_PARAMETER_VALUE) from exc

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one file to ``artifact_path/<file name>``."""
        path = Path(local_file)
        self._put(path, self._rel(artifact_path, path.name))

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a directory tree under ``artifact_path``."""
        root = Path(local_dir)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self._put(path, self._rel(artifact_path, path.relative_to(root).as_posix()))

    def _put(self, path: Path, relpath: str) -> None:
        sha256, size = sha256_file(path)
        info = self.blobs.upload_file(path, sha256, size, relpath=relpath)
        doc = {"path": relpath, "sha256": sha256, "size": size, "blob": info.uri, "run": self.run}
        ref = blobrefs.mlflow_reference(self.exper, self.run, sha256, relpath)
        blobrefs.record(self.db, self.project, [ref])  # so `datasets rm` keeps these bytes
        self.db.document(layout.run_artifact_file(self.project, self.exper, self.run, relpath)).set(
            doc
        )

    def _entries(self) -> list[dict[str, Any]]:
        ref = RunRef(self.project, self.exper, self.run)
        return [thaw(e) for e in FirestoreReader(self.db, self.project).run_files(ref)]

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Files and directories directly under ``path`` (paths relative to the run root)."""
        # As MLflow's own repositories answer: "./dir" and "dir/" list as "dir".
        shown = "/".join(p for p in (path or "").split("/") if p not in ("", "."))
        base = self._rel(shown) if shown else self.prefix
        prefix = f"{base}/" if base else ""
        seen: dict[str, FileInfo] = {}
        for entry in self._entries():
            full = str(entry["path"])
            if not full.startswith(prefix):
                continue
            head, _, rest = full[len(prefix) :].partition("/")
            rel = posixpath.join(shown, head) if shown else head
            if rest:
                seen.setdefault(rel, FileInfo(rel, True, None))
            else:
                seen[rel] = FileInfo(rel, False, int(entry["size"]))
        return [seen[k] for k in sorted(seen)]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        relpath = self._rel(remote_file_path)
        snap = self.db.document(
            layout.run_artifact_file(self.project, self.exper, self.run, relpath)
        ).get()
        if not snap.exists:
            raise MlflowException(
                f"no artifact {relpath!r} in run {self.run}", error_code=RESOURCE_DOES_NOT_EXIST
            )
        entry = snap.to_dict() or {}
        with Path(local_path).open("wb") as fh:
            self.blobs.download_to(str(entry["sha256"]), fh)


def _register_scheme() -> None:
    """Make sure MLflow knows the scheme, however the imports were ordered.

    MLflow registers plugins from entry points while its artifact registry
    module is first imported. When that first import happens from inside this
    module (through ``ArtifactRepository``), this module is still half
    initialised, the entry point fails with only a warning, and every
    ``aletheia-art://`` URI is refused for the life of the process. Registering
    again here, once the class exists, is idempotent.
    """
    from mlflow.store.artifact import artifact_repository_registry as registry

    registry._artifact_repository_registry.register(ARTIFACT_SCHEME, AletheiaArtifactRepository)


_register_scheme()

__all__ = ["AletheiaArtifactRepository", "parse_uri"]
