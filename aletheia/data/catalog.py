"""Reading a project's datasets: their documents, versions, manifests and file records.

The read side of :class:`aletheia.data.datasets.DatasetStore` (which adds
versions on top), also what getting and removing a version build on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aletheia.cloud import layout, queries
from aletheia.cloud.lazy import firestore
from aletheia.data.addrecords import ADDS_FILE, AddRecords
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.filesindex import BATCH_SIZE, FilesIndex
from aletheia.data.lockfile import LockFile, find_repo_root
from aletheia.data.manifests import (
    Diff,
    FileEntry,
    diff_manifests,
    read_manifest,
    version_doc,
)
from aletheia.data.projectstore import ProjectFileStore
from aletheia.data.transfer import Reporter
from aletheia.errors import IntegrityError, NotFoundError
from aletheia.stats import versionprofile


class DatasetCatalog(ProjectFileStore):
    """The datasets of one project, read: documents, versions, manifests, file records.

    Built like every project file store (:class:`~aletheia.data.projectstore.ProjectFileStore`),
    always with a cache.
    """

    cache: LocalCache  # datasets always go through a cache

    def __init__(
        self,
        db: firestore.Client,
        blobstore: BlobStore,
        cache: LocalCache,
        project: str,
        *,
        workdir: Path | None = None,
        reporter: Reporter | None = None,
        owner: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(db, blobstore, cache, project, reporter=reporter, owner=owner)
        self.workdir = workdir
        self.index = FilesIndex(db, blobstore, self.project)
        #: Where this store's documents live (:func:`aletheia.data.addrecords.target_of`):
        #: with it, each add is recorded on this machine so an unchanged re-add can be
        #: answered locally; ``None`` records nothing.
        self.target = target
        self.adds = AddRecords(self.cache.root / ADDS_FILE)

    def latest_version(self, name: str) -> dict[str, Any] | None:
        """The newest version document of ``name``, or ``None``."""
        query = queries.dataset_versions_newest_first(self.db, self.project, name).limit(1)
        for snap in query.stream():
            return snap.to_dict()
        return None

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version document of ``name``, oldest first."""
        docs = [
            s.to_dict() or {}
            for s in queries.dataset_versions_newest_first(self.db, self.project, name).stream()
        ]
        return sorted(docs, key=lambda d: int(d.get("seq", 0)))

    def info(self, name: str) -> dict[str, Any]:
        """The dataset document."""
        snap = self.db.document(layout.dataset(self.project, name)).get()
        if not snap.exists:
            raise NotFoundError(
                f"no dataset {name!r} in project {self.project!r}",
                "see `aletheia datasets list`, or add it with `aletheia datasets add`",
            )
        return snap.to_dict() or {}

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset document of the project, by name."""
        docs = self.db.collection(layout.datasets(self.project)).stream()
        return sorted((s.to_dict() or {} for s in docs), key=lambda d: str(d.get("name", "")))

    def manifest_of(self, version_doc: dict[str, Any], name: str = "") -> dict[str, FileEntry]:
        """The manifest a version document names (from the cache when it holds it)."""
        what = f"the manifest of {name} {version_doc.get('version')}".replace("  ", " ")
        return read_manifest(self.blobs, version_doc, self.cache, what)

    def manifest(self, name: str, version: str) -> dict[str, FileEntry]:
        """``{relpath: FileEntry}`` of a version."""
        return self.manifest_of(version_doc(self.db, self.project, name, version), name)

    def file_profile(self, sha256: str) -> dict[str, Any] | None:
        """The full profile (sketches included) the storage function stored for these bytes."""
        return versionprofile.profile_loader(self.blobs.derived_profile)(sha256)

    def version_profile(self, name: str, version: str) -> dict[str, Any] | None:
        """The version's own profile (its files merged per table), every column included.

        As recorded on the version document, unless a table there was cut to
        fit it or none is recorded yet: then merged in memory from the
        files' stored profiles (never written). ``None`` while a file of the
        version is not profiled yet.
        """
        doc = self.db.document(layout.dataset_version(self.project, name, version)).get()
        return versionprofile.recorded_or_computed(
            self.db,
            self.project,
            name,
            {**(doc.to_dict() or {}), "version": version},
            self.manifest,
            self.file_profile,
        )

    def file_records(self, entries: Iterable[FileEntry]) -> dict[str, dict[str, Any]]:
        """``Files/{sha256}`` documents (status, schema, stats) of these entries, if present."""
        refs = [
            self.db.document(layout.file(self.project, s))
            for s in sorted({e.sha256 for e in entries})
        ]
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(refs), BATCH_SIZE):
            for snap in self.db.get_all(refs[start : start + BATCH_SIZE]):
                if snap.exists:
                    out[snap.id] = snap.to_dict() or {}
        return out

    def resolve_version(self, name: str, version: str | None = None) -> str:
        """``version``, else the git repo's pin, else the latest version."""
        return self.resolve(name, version)[0]

    def resolve(self, name: str, version: str | None) -> tuple[str, str | None]:
        """``(version, manifest digest the lock file expects or None)``."""
        if version is not None:
            return layout.validate_id(version, "dataset version"), None
        root = find_repo_root(self.workdir)
        if root is not None:
            pin = LockFile.load(root).get(self.project, name)
            if pin is not None:
                return pin.version, pin.manifest_sha256
        latest = self.latest_version(name)
        if latest is None:
            layout.dataset(self.project, name)
            raise NotFoundError(
                f"no dataset {name!r} in project {self.project!r}",
                "see `aletheia datasets list`, or add it with `aletheia datasets add`",
            )
        return str(latest["version"]), None

    def diff(self, name: str, v1: str, v2: str) -> Diff:
        """Files added, removed and changed from version ``v1`` to ``v2``."""
        return diff_manifests(self.manifest(name, v1), self.manifest(name, v2))

    def readable_manifest(
        self, doc: dict[str, Any], name: str, tolerate: bool
    ) -> dict[str, FileEntry] | None:
        """The manifest of a version, or ``None`` if it is damaged and ``tolerate``."""
        try:
            return self.manifest_of(doc, name)
        except IntegrityError as exc:
            if not tolerate:
                raise IntegrityError(
                    exc.message,
                    "pass --force (force=True) to remove that version anyway; the blobs "
                    "of its files are kept, since which ones only it holds cannot be read",
                ) from exc
            return None
