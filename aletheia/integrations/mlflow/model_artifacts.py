"""MLflow artifact repository for logged models: ``aletheia-model://PROJECT/EXPERIMENT/MODEL_ID``.

``mlflow.<flavor>.log_model`` saves the model to a temporary directory and
hands it to this repository; it becomes a new version of the aletheia
artifact named after the model id in the model's experiment
(:class:`~aletheia.data.artifacts.ArtifactStore`: a manifest of
content-addressed blobs, registered so ``datasets rm`` keeps the bytes), and
the model document names that version (``artifact``). Files added later (to
the same model) make the next version, holding the earlier files too, so the
latest version is always the whole model. ``load_model`` through ``runs:/``
or ``models:/m-...`` URIs lists and downloads from that version.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from aletheia.cloud import layout
from aletheia.data.cache import safe_join
from aletheia.data.datasets import FileEntry
from aletheia.errors import AletheiaError
from aletheia.integrations.mlflow.schemes import MODEL_ARTIFACT_SCHEME
from aletheia.tracking import metastore


def parse_model_uri(uri: str) -> tuple[str, str, str, str]:
    """``(project, experiment, model id, path inside the model)`` of an ``aletheia-model`` URI."""
    parsed = urlparse(uri)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme != MODEL_ARTIFACT_SCHEME or not parsed.netloc or len(parts) < 2:
        raise MlflowException(
            f"artifact URI {uri!r} is not {MODEL_ARTIFACT_SCHEME}://PROJECT/EXPERIMENT/MODEL_ID",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return parsed.netloc, parts[0], parts[1], "/".join(parts[2:])


def _invalid(exc: AletheiaError) -> MlflowException:
    return MlflowException(f"{exc.message}; {exc.hint}", error_code=INVALID_PARAMETER_VALUE)


class ModelArtifactRepository(ArtifactRepository):
    """The files of one logged model, as versions of an aletheia artifact."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(artifact_uri, tracking_uri=tracking_uri, **kwargs)
        self.project, self.exper, self.model_id, self.prefix = parse_model_uri(artifact_uri)
        try:
            layout.logged_model(self.project, self.model_id)  # checks both ids
            self.ms = metastore.Metastore(self.project)
        except AletheiaError as exc:
            raise _invalid(exc) from exc

    # ------------------------------------------------------------- the model's files

    def _model(self) -> dict[str, Any]:
        snap = self.ms.db.document(layout.logged_model(self.project, self.model_id)).get()
        if not snap.exists:
            raise MlflowException(
                f"Model '{self.model_id}' not found", error_code=RESOURCE_DOES_NOT_EXIST
            )
        return snap.to_dict() or {}

    def _files(self) -> list[FileEntry]:
        """The files of the model's latest version (none before its files are logged)."""
        art = self._model().get("artifact")
        if not art:
            return []
        version = self.ms.artifacts.get(str(art["experiment"]), str(art["name"]), art["version"])
        return version.files

    def _rel(self, *parts: str | None) -> str:
        joined = posixpath.join(self.prefix, *(p for p in parts if p))
        if not joined:
            return ""
        try:
            return layout.validate_relpath(joined)
        except AletheiaError as exc:
            raise _invalid(exc) from exc

    # ------------------------------------------------------------- writing

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Add one file at ``artifact_path/<file name>`` (a new version of the model's files)."""
        path = Path(local_file)
        self._save({self._rel(artifact_path, path.name): path})

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Add a directory tree under ``artifact_path`` (one new version for the whole tree)."""
        root = Path(local_dir)
        files = {
            self._rel(artifact_path, p.relative_to(root).as_posix()): p
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
        as_is = not artifact_path and not self.prefix
        self._save(files, root if as_is else None)

    def _save(self, new: dict[str, Path], tree: Path | None = None) -> None:
        """Commit the model's earlier files plus ``new`` as the next artifact version.

        ``tree``: a directory whose files are exactly ``new`` (at the same
        paths); when the model has no files yet (``log_model``'s one call) it
        is saved as it is, without a copy.
        """
        if not new:
            return  # an empty directory adds nothing, as on MLflow's own stores
        model = self._model()
        earlier = [e for e in self._files() if e.path not in new]
        if tree is not None and not earlier:
            self._commit(tree, model)
            return
        with tempfile.TemporaryDirectory(prefix="aletheia-model-") as tmp:
            stage = Path(tmp) / "model"
            stage.mkdir()
            for entry in earlier:  # bytes already stored: fetched, re-hashed, not re-uploaded
                dest = safe_join(stage, entry.path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with dest.open("wb") as fh:
                    self.ms.blobstore.download_to(entry.sha256, fh)
            for rel, src in new.items():
                dest = safe_join(stage, rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            self._commit(stage, model)

    def _commit(self, tree: Path, model: dict[str, Any]) -> None:
        """Save ``tree`` as the next version of the model's artifact; the model names it."""
        try:
            saved = self.ms.artifacts.add(
                self.exper, self.model_id, tree, run_id=model.get("source_run_id"), is_dir=True
            )
        except AletheiaError as exc:
            raise _invalid(exc) from exc
        artifact = {"experiment": self.exper, "name": self.model_id, "version": saved["version"]}
        self.ms.db.document(layout.logged_model(self.project, self.model_id)).set(
            {"artifact": artifact}, merge=True
        )

    # ------------------------------------------------------------- reading

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Files and directories directly under ``path`` (relative to the model's root)."""
        shown = "/".join(p for p in (path or "").split("/") if p not in ("", "."))
        base = self._rel(shown)
        prefix = f"{base}/" if base else ""
        seen: dict[str, FileInfo] = {}
        for entry in self._files():
            if not entry.path.startswith(prefix):
                continue
            head, _, rest = entry.path[len(prefix) :].partition("/")
            rel = posixpath.join(shown, head) if shown else head
            if rest:
                seen.setdefault(rel, FileInfo(rel, True, None))
            else:
                seen[rel] = FileInfo(rel, False, int(entry.size))
        return [seen[k] for k in sorted(seen)]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        relpath = self._rel(remote_file_path)
        entry = next((e for e in self._files() if e.path == relpath), None)
        if entry is None:
            raise MlflowException(
                f"no file {relpath!r} in logged model {self.model_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )
        with Path(local_path).open("wb") as fh:
            self.ms.blobstore.download_to(entry.sha256, fh)


def _register_scheme() -> None:
    """Make sure MLflow knows the scheme, however the imports were ordered
    (see :func:`aletheia.integrations.mlflow.artifacts._register_scheme`)."""
    from mlflow.store.artifact import artifact_repository_registry as registry

    registry._artifact_repository_registry.register(MODEL_ARTIFACT_SCHEME, ModelArtifactRepository)


_register_scheme()

__all__ = ["ModelArtifactRepository", "parse_model_uri"]
