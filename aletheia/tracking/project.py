"""One project's plumbing under the tracking API: settings, clients, stores, run tuning.

:class:`Project` is what an experiment and its runs need of the project
they belong to (:class:`~aletheia.tracking.metastore.Metastore` is a
``Project`` with the public API on top). It sits below ``experiment`` and
``run`` so that they can name it without importing the module that builds
experiments (imports point one way).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aletheia.cloud import config, layout, members
from aletheia.cloud.lazy import firestore
from aletheia.errors import ConfigError
from aletheia.tracking import direct
from aletheia.tracking.compose import Backend
from aletheia.tracking.direct import DirectWrites
from aletheia.tracking.metrics import FLUSH_INTERVAL_S
from aletheia.tracking.readapi import RunReader
from aletheia.tracking.runmodel import HEARTBEAT_S
from aletheia.tracking.writing import Observers, RunObserver

if TYPE_CHECKING:
    from aletheia.data.artifacts import ArtifactStore
    from aletheia.data.blobstore import BlobStore
    from aletheia.data.cache import LocalCache

log = logging.getLogger(__name__)


class Project:
    """One aletheia project (``Projects/{project}``) on the configured target.

    ``settings`` (or keyword ``overrides`` of any :mod:`aletheia.cloud.config`
    setting) choose the cloud project or local stack; without ``project`` the
    ``project`` setting names it (``ALETHEIA_PROJECT``, the repository's
    ``.aletheia/config.toml``, the user's config file, else ``default``). ``flush_interval_s``
    and ``heartbeat_s`` tune the background writer of every run;
    ``final_retry_s`` is how long a run's end keeps retrying an unreachable
    Firestore before leaving the rest to ``aletheia sync``. With
    ``sync_on_start`` each new run replays, in the background, the journals
    of earlier runs of its experiment that never fully reached Firestore.
    ``observers`` (:class:`~aletheia.tracking.writing.RunObserver`) are told
    of every run's lifecycle: started, heartbeat, completed | failed | interrupted.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        settings: config.Settings | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        final_retry_s: float = 30.0,
        sync_on_start: bool = True,
        observers: Iterable[RunObserver] = (),
        **overrides: Any,
    ) -> None:
        if project is not None:  # a bad name fails before any setting is read
            layout.validate_id(project, "project name")
        self.settings = settings or config.resolve(overrides)
        self.project = layout.validate_id(project or self.settings.project, "project name")
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.final_retry_s = final_retry_s
        self.sync_on_start = sync_on_start
        #: Told of every run's lifecycle events (see :mod:`aletheia.tracking.writing`).
        self.observers = Observers(observers)
        #: Clients and stores, built from the settings on first use (the composition root).
        self.backend = Backend(self.settings, self.project)
        #: Every write of this project's runs goes through it (its stats count the commits).
        self.store = self.backend.writes()
        self._project_ensured = False

    @property
    def db(self) -> firestore.Client:
        """The Firestore client (the emulator is probed on first use)."""
        return self.backend.db

    @property
    def blobstore(self) -> BlobStore:
        """The project's content-addressed :class:`~aletheia.data.blobstore.BlobStore`."""
        return self.backend.blobs

    @property
    def direct(self) -> DirectWrites:
        """Synchronous writes of runs not open in this process (and the creation of runs)."""
        return DirectWrites(self.db)

    @property
    def journal_root(self) -> Path:
        """Where this target's run journals live."""
        return self.backend.journal_root

    def set_downloader(self, cache_dir: str | os.PathLike[str]) -> None:
        """Use ``cache_dir`` as the local content-addressed cache for datasets and artifacts."""
        self.backend.cache_dir = Path(cache_dir).expanduser()

    @property
    def cache(self) -> LocalCache:
        """The :class:`~aletheia.data.cache.LocalCache` set by :meth:`set_downloader`."""
        return self.backend.cache

    @property
    def artifacts(self) -> ArtifactStore:
        """The project's :class:`~aletheia.data.artifacts.ArtifactStore` (via ``cache``)."""
        return self.backend.artifacts()

    @property
    def reader(self) -> RunReader:
        """The project's :class:`~aletheia.tracking.readapi.RunReader` (reads, never writes)."""
        from aletheia.tracking.firestore_reader import FirestoreReader

        return FirestoreReader(lambda: self.db, self.project)

    def _check_bucket(self) -> None:
        """A bucket that does not exist is a :class:`ConfigError` before any document is
        written; storage that cannot be asked now is not (runs work offline)."""
        try:
            self.blobstore.require_bucket()
        except ConfigError:
            raise
        except Exception as exc:
            log.debug("aletheia: bucket not checked (%s)", exc)

    def _ensure_project(self) -> None:
        """Create the project on first use, or check this client may write into it."""
        if self._project_ensured:
            return
        members.ensure_project(
            self.db, self.project, owner=self.settings.owner, timeout=direct.CREATE_TIMEOUT_S
        )
        self._project_ensured = True

    def _add_artifact(
        self,
        exper: str,
        run_id: str | None,
        name: str,
        path: str | Path,
        *,
        is_local: bool,
        is_dir: bool,
        upload_file: bool,
    ) -> dict[str, Any]:
        """Save a new version of an artifact of ``exper``, produced by ``run_id`` if given."""
        return self.artifacts.add(
            exper,
            name,
            path,
            run_id=run_id,
            is_local=is_local,
            is_dir=is_dir,
            upload_file=upload_file,
        )


__all__ = ["Project"]
