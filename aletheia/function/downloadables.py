"""What a dashboard download may fetch: objects found from a run's Firestore records.

The download function never takes a bucket path from its caller: it is given
a run (project, experiment, run id) and *which* of its records to follow (the
dirty diff, the package list, a file of an artifact version the run saved),
and finds the content-addressed object those records name. Anything the run
does not record is :class:`~aletheia.errors.NotFoundError`, so a member of one
project can never be steered to another project's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.data.blobstore import BlobStore
from aletheia.data.manifests import FileEntry, decode_manifest
from aletheia.errors import NotFoundError, ValidationError

#: The run fields that name a blob, by what the caller asks for.
RUN_BLOBS = {
    "diff": ("git", "diff_ref", "text/x-diff; charset=utf-8", "dirty.diff"),
    "packages": ("env", "packages_ref", "text/plain; charset=utf-8", "requirements.txt"),
}
ARTIFACT = "artifact"
KINDS = (*RUN_BLOBS, ARTIFACT)


@dataclass(frozen=True)
class Target:
    """One object to hand out: its digest, and how the browser should name and show it."""

    sha256: str
    size: int | None
    content_type: str
    filename: str


def run_doc(db: firestore.Client, project: str, experiment: str, run: str) -> dict[str, Any]:
    """The run document, or :class:`NotFoundError`."""
    snap = db.document(layout.run(project, experiment, run)).get()
    if not snap.exists:
        raise NotFoundError(f"no run {run!r} in experiment {experiment!r} of {project!r}")
    return snap.to_dict() or {}


def run_blob(doc: Mapping[str, Any], kind: str) -> Target:
    """The diff or package list a run document records."""
    if kind not in RUN_BLOBS:
        raise ValidationError(f"unknown object {kind!r}", f"ask for one of: {', '.join(KINDS)}")
    section, key, content_type, filename = RUN_BLOBS[kind]
    ref = (doc.get(section) or {}).get(key) or {}
    digest = ref.get("sha256") if isinstance(ref, Mapping) else None
    if not isinstance(digest, str):
        raise NotFoundError(f"this run recorded no {kind}")
    size = ref.get("size")
    return Target(
        layout.validate_sha256(digest),
        size if isinstance(size, int) else None,
        content_type,
        filename,
    )


def saved_artifact(doc: Mapping[str, Any], name: str, version: str) -> None:
    """:class:`NotFoundError` unless the run's ``artifacts`` list names ``name`` ``version``."""
    for entry in doc.get("artifacts") or ():
        if isinstance(entry, Mapping) and (entry.get("name"), str(entry.get("version"))) == (
            name,
            version,
        ):
            return
    raise NotFoundError(f"this run saved no artifact {name!r} version {version!r}")


def artifact_files(
    db: firestore.Client,
    blobs: BlobStore,
    project: str,
    experiment: str,
    name: str,
    version: str,
) -> list[FileEntry]:
    """The files of an artifact version, by path (its manifest, or a legacy file list)."""
    snap = db.document(layout.artifact_version(project, experiment, name, version)).get()
    if not snap.exists:
        raise NotFoundError(f"artifact {name!r} has no version {version!r}")
    vdoc = snap.to_dict() or {}
    digest = vdoc.get("manifest_sha256")
    if isinstance(digest, str):
        what = f"the manifest of artifact {name} {version}"
        entries = list(decode_manifest(blobs.get_bytes(digest), what).values())
    else:  # saved before manifests: the files are listed on the document
        entries = [
            FileEntry(str(f["path"]), str(f["sha256"]), int(f.get("size") or 0))
            for f in vdoc.get("legacy_files") or ()
            if isinstance(f, Mapping) and f.get("path") and f.get("sha256")
        ]
    if not vdoc.get("uploaded", True):
        return []  # digests recorded, bytes never uploaded: nothing to download
    return sorted(entries, key=lambda e: e.path)


def artifact_file(entries: list[FileEntry], path: str) -> Target:
    """The file at ``path`` of an artifact version's files, or :class:`NotFoundError`."""
    for entry in entries:
        if entry.path == path:
            filename = path.rsplit("/", 1)[-1] or "artifact"
            return Target(entry.sha256, entry.size, "application/octet-stream", filename)
    raise NotFoundError(f"the artifact version has no file {path!r}")
