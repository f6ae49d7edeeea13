"""Artifacts saved before versions existed, read as their one version and migrated on save.

Then ``Artifacts/{name}`` carried an integer ``latest_version`` (a counter
bumped per save) and ``files/{path}`` held the files of the last save only.
That save reads as version ``v{latest_version}`` with its ``files/`` entries;
the next save first writes it as a real version document (with a manifest and
blob references), so saving again never hides it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.data import blobrefs
from aletheia.data.blobstore import BlobStore
from aletheia.data.manifests import FileEntry, encode_manifest


def is_legacy(artifact_doc: dict[str, Any]) -> bool:
    """True for an artifact document written before versions existed."""
    return isinstance(artifact_doc.get("latest_version"), int)


def version_id(artifact_doc: dict[str, Any]) -> str:
    """The version id a pre-versions artifact reads as."""
    return f"v{int(artifact_doc.get('latest_version') or 1)}"


def read(db: firestore.Client, project: str, experiment: str, name: str) -> dict[str, Any] | None:
    """The pre-versions save of artifact ``name`` as a version document, or ``None``.

    It has no manifest; its files are under ``legacy_files`` (``FileEntry``).
    """
    snap = db.document(layout.artifact(project, experiment, name)).get()
    doc = (snap.to_dict() or {}) if snap.exists else {}
    if not is_legacy(doc):
        return None
    col = db.collection(layout.artifact_files(project, experiment, name))
    files = sorted(
        (
            FileEntry(str(f["path"]), str(f["sha256"]), int(f.get("size") or 0))
            for f in (s.to_dict() or {} for s in col.stream())
            if f.get("sha256")
        ),
        key=lambda e: e.path,
    )
    version = version_id(doc)
    return {
        "version": version,
        "seq": int(version[1:]),
        "run": doc.get("run"),
        "kind": str(doc.get("kind", "file")),
        "is_dir": bool(doc.get("is_dir")),
        "uploaded": bool(doc.get("uploaded", True)),
        "uri": doc.get("uri"),
        "manifest_sha256": None,
        "file_count": len(files),
        "total_bytes": sum(f.size for f in files),
        "created_at": doc.get("updated_at"),
        "legacy_files": files,
    }


def migrate(
    db: firestore.Client, blobs: BlobStore, project: str, experiment: str, name: str
) -> None:
    """Write the pre-versions save as its version document (idempotent, race-safe)."""
    legacy = read(db, project, experiment, name)
    if legacy is None:
        return
    files: list[FileEntry] = legacy.pop("legacy_files")
    if legacy["kind"] != "remote":
        manifest = blobs.put_bytes(encode_manifest(files), "application/json")
        legacy.update(manifest_sha256=manifest.sha256, manifest_blob=manifest.uri)
        held = [manifest.sha256, *(f.sha256 for f in files if legacy["uploaded"])]
        refs = blobrefs.artifact_references(experiment, name, held, legacy["run"])
        blobrefs.record(db, project, refs)
    path = layout.artifact_version(project, experiment, name, legacy["version"])
    with contextlib.suppress(gexc.AlreadyExists):  # a concurrent saver migrated it
        db.document(path).create(
            {
                **legacy,
                "artifact": name,
                "experiment": experiment,
                "project": project,
                "created_at": legacy["created_at"] or firestore.SERVER_TIMESTAMP,
                "migrated": True,
            }
        )
    db.document(layout.artifact(project, experiment, name)).set(
        {"latest_version": legacy["version"], "version_count": legacy["seq"]}, merge=True
    )
