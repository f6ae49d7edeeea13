"""A dataset's ``files/``: its latest manifest as documents, queryable by sha256.

Kept up to date by diffs (only changed entries are written, in batches);
the dataset document's ``files_version`` says which version ``files/``
shows, written last so that a crash midway leaves the old mark and the
next add repairs ``files/``.
"""

from __future__ import annotations

from typing import Any

from aletheia.cloud import layout, pbwrite
from aletheia.cloud.lazy import firestore
from aletheia.data.blobstore import BlobStore
from aletheia.data.manifests import FileEntry, diff_manifests
from aletheia.data.transfer import run_parallel

#: Files written per Firestore batch (the API allows 500 writes).
BATCH_SIZE = 400
#: Batches committed at once.
COMMIT_WORKERS = 4
#: Field of the dataset document naming the version ``files/`` shows.
FILES_VERSION = "files_version"


class FilesIndex:
    """The ``files/`` collections of one project's datasets."""

    def __init__(self, db: firestore.Client, blobs: BlobStore, project: str) -> None:
        self.db = db
        self.blobs = blobs
        self.project = project

    def sync(
        self, name: str, version: str, old: dict[str, FileEntry], new: dict[str, FileEntry]
    ) -> None:
        """Bring ``files/`` (the latest manifest, queryable by sha256) up to date: diffs only."""
        change = diff_manifests(old, new)
        writes: list[tuple[str, dict[str, Any] | None]] = [
            (e.path, self.fields(name, version, e))
            for e in [*change.added, *(n for _, n in change.changed)]
        ]
        writes += [(e.path, None) for e in change.removed]

        def commit(part: list[tuple[str, dict[str, Any] | None]]) -> None:
            batch = self.db.batch()
            for relpath, data in part:
                ref = self.db.document(layout.dataset_file(self.project, name, relpath))
                if data is None:
                    batch.delete(ref)
                elif pbwrite.encodable(data):  # the library's message, not its proto-plus cost
                    batch._add_write_pbs([pbwrite.set_write(ref._document_path, data)])
                else:
                    batch.set(ref, data)
            batch.commit()

        # Each entry is written by one batch only, so the batches commute: a few at once
        # (a 10,000-file add is 25 of them). A crash midway leaves the old mark (see mark).
        parts = [writes[i : i + BATCH_SIZE] for i in range(0, len(writes), BATCH_SIZE)]
        run_parallel(commit, parts, workers=COMMIT_WORKERS)

    def mark(self, name: str, version: str) -> None:
        """Record that ``files/`` now shows ``version`` (written last: a crash before leaves
        the old mark, and the next add repairs ``files/``)."""
        self.db.document(layout.dataset(self.project, name)).update({FILES_VERSION: version})

    def shown(self, name: str) -> dict[str, FileEntry]:
        """What ``files/`` holds now (read back when no manifest says it)."""
        return {
            str(d["path"]): FileEntry(str(d["path"]), str(d["sha256"]), int(d.get("size") or 0))
            for d in (
                snap.to_dict() or {}
                for snap in self.db.collection(layout.dataset_files(self.project, name)).stream()
            )
            if d.get("path") and d.get("sha256")
        }

    def fields(self, name: str, version: str, e: FileEntry) -> dict[str, Any]:
        return {
            "path": e.path,
            "sha256": e.sha256,
            "size": e.size,
            "blob": self.blobs.uri(e.sha256),
            "version": version,
            "project": self.project,
            "dataset": name,
            "kind": "dataset",
        }
