"""What every store of one project's files holds: its clients, its cache, its project claim.

:class:`~aletheia.data.datasets.DatasetStore` and
:class:`~aletheia.data.artifacts.ArtifactStore` both write documents under
``Projects/{project}`` and bytes into its content-addressed blobs; this base
keeps their shared state and the one-time project claim in one place.
"""

from __future__ import annotations

from aletheia.cloud import layout, members
from aletheia.cloud.lazy import firestore
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.transfer import NullReporter, Reporter


class ProjectFileStore:
    """Firestore, the project's blobs, a local cache (optional) and progress, for one project."""

    def __init__(
        self,
        db: firestore.Client,
        blobstore: BlobStore,
        cache: LocalCache | None,
        project: str,
        *,
        reporter: Reporter | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        #: Owner of the project if these (server) credentials create it (settings ``owner``).
        self.owner = owner
        self.blobs = blobstore
        self.cache = cache
        self.project = layout.validate_id(project, "project name")
        self.reporter: Reporter = reporter or NullReporter()
        self._project_ensured = False

    def ensure_project(self) -> None:
        """Claim the project (or check this client may write into it), once per store.

        Every write path calls it first: no data sits in a project without its
        document (see :func:`aletheia.cloud.members.ensure_project`).
        """
        if not self._project_ensured:
            members.ensure_project(self.db, self.project, owner=self.owner)
            self._project_ensured = True
