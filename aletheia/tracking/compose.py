"""The composition root: settings -> clients -> stores, built in one place.

Every entry point (``Metastore``, ``aletheia sync``, the CLI commands, the
MLflow plugin) asks a :class:`Backend` for what it needs instead of wiring
clients and stores itself, so how a store is built (which client, probed or
not, which cache directory, where the bucket name came from) is decided
once. Nothing is built before it is asked for: a command that only reads
Firestore never constructs a Cloud Storage client, and the heavy modules are
imported on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from aletheia.cloud import layout
from aletheia.cloud.config import Settings

if TYPE_CHECKING:
    from google.cloud import firestore, storage  # type: ignore[attr-defined]

    from aletheia.data.artifacts import ArtifactStore
    from aletheia.data.blobstore import BlobStore
    from aletheia.data.cache import LocalCache
    from aletheia.data.datasets import DatasetStore
    from aletheia.data.transfer import Reporter
    from aletheia.tracking.store import FirestoreStore

#: The local content-addressed cache, under the ``cache_dir`` setting; shared by datasets,
#: artifacts and runs so the same bytes are downloaded once.
FILES_DIR = "files"


class Backend:
    """The clients and stores of one aletheia project on the configured target.

    ``project`` defaults to the ``project`` setting; ``cache_dir`` (the
    local file cache) to ``{cache_dir setting}/files``. Each client is built
    once, on first use, and shared by every store this backend builds.
    """

    def __init__(
        self,
        settings: Settings,
        project: str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.settings = settings
        self.project = layout.validate_id(project or settings.project, "project name")
        self.cache_dir = Path(cache_dir) if cache_dir else settings.cache_dir / FILES_DIR
        self._db: firestore.Client | None = None
        self._gcs: storage.Client | None = None
        self._blobs: BlobStore | None = None
        self._writes: dict[bool, FirestoreStore] = {}

    # ----------------------------------------------------------- clients

    @property
    def db(self) -> firestore.Client:
        """The Firestore client (the emulator is probed first, so a dead stack fails fast)."""
        if self._db is None:
            from aletheia.cloud import clients

            self._db = clients.firestore_client(self.settings)
        return self._db

    @property
    def gcs(self) -> storage.Client:
        """The Cloud Storage client."""
        if self._gcs is None:
            from aletheia.cloud import clients

            self._gcs = clients.storage_client(self.settings)
        return self._gcs

    # ----------------------------------------------------------- stores

    @property
    def blobs(self) -> BlobStore:
        """The project's content-addressed blobs in the configured bucket."""
        if self._blobs is None:
            from aletheia.data.blobstore import BlobStore

            self._blobs = BlobStore(
                self.gcs,
                self.settings.bucket,
                self.project,
                bucket_from=self.settings.sources.get("bucket", "default"),
            )
        return self._blobs

    @property
    def cache(self) -> LocalCache:
        """The local content-addressed file cache (``cache_dir``)."""
        from aletheia.data.cache import LocalCache

        return LocalCache(self.cache_dir)

    def datasets(
        self, *, reporter: Reporter | None = None, workdir: Path | None = None
    ) -> DatasetStore:
        """The project's :class:`~aletheia.data.datasets.DatasetStore`."""
        from aletheia.data.addrecords import target_of
        from aletheia.data.datasets import DatasetStore

        return DatasetStore(
            self.db,
            self.blobs,
            self.cache,
            self.project,
            workdir=workdir,
            reporter=reporter,
            owner=self.settings.owner,
            target=target_of(self.settings),
        )

    def artifacts(self, *, reporter: Reporter | None = None) -> ArtifactStore:
        """The project's :class:`~aletheia.data.artifacts.ArtifactStore`."""
        from aletheia.data.artifacts import ArtifactStore

        return ArtifactStore(
            self.db,
            self.blobs,
            self.cache,
            self.project,
            reporter=reporter,
            owner=self.settings.owner,
        )

    def writes(self, *, probe: bool = False) -> FirestoreStore:
        """The batched, retried Firestore writer that runs (and ``sync``) commit through.

        For a run it is built unprobed and its client rebuilt after a failure:
        a run must start (offline) and keep going whatever Firestore does.
        ``probe``: a dead local stack fails at once instead (``aletheia sync``).
        """
        store = self._writes.get(probe)
        if store is None:
            from aletheia.cloud import clients, members
            from aletheia.tracking.store import FirestoreStore

            settings = self.settings
            store = FirestoreStore(
                lambda: clients.firestore_client(settings, probe=probe),
                checks=members.ProjectChecks(settings.owner),
            )
            self._writes[probe] = store
        return store

    @property
    def journal_root(self) -> Path:
        """Where this target's run journals live."""
        from aletheia.tracking import journal

        return journal.journal_root(self.settings.cache_dir, self.settings.cloud_project)
