"""The two documents a dataset add commits: the version's record and the dataset's fields.

Pure: they are built from what the add knows and written by its commit
(:meth:`aletheia.data.datasets.DatasetStore.add`) in one batch.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aletheia.cloud.lazy import firestore
from aletheia.data.manifests import FileEntry, diff_manifests, listed_files


def source_path(path: str | Path) -> str:
    """Where the data was added from: ``host:/absolute/path``."""
    return f"{socket.gethostname()}:{Path(path).resolve()}"


def version_record(
    version: str,
    seq: int,
    parent: str | None,
    parent_manifest: dict[str, FileEntry],
    manifest: dict[str, FileEntry],
    manifest_blob: str,
    digest: str,
    path: Path,
    created_by_run: str | None,
    derived: dict[str, Any],
) -> dict[str, Any]:
    """``Versions/{version}``: what the version holds and where it came from."""
    return {
        "version": version,
        "seq": seq,
        "parent": parent,
        "manifest_sha256": digest,
        "manifest_blob": manifest_blob,
        "file_count": len(manifest),
        "total_bytes": sum(e.size for e in manifest.values()),
        "files_listed": listed_files(manifest),
        "changes": diff_manifests(parent_manifest, manifest).counts,
        "created_by_run": created_by_run,
        "created_at": firestore.SERVER_TIMESTAMP,
        "source_path": source_path(path),
        **derived,
    }


def dataset_fields(
    name: str,
    manifest: dict[str, FileEntry],
    version: str,
    seq: int,
    location: str,
    path: Path,
    desc: str | None,
    source: str | None,
    first: bool,
) -> dict[str, Any]:
    """The dataset document's fields this version sets (merged into it); ``first``: the
    dataset's first version, which creates it."""
    fields: dict[str, Any] = {
        "name": name,
        "latest_version": version,
        "version_count": seq,
        "location": location,
        "partitions": sorted({p.split("/", 1)[0] for p in manifest if "/" in p}),
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    if first:
        fields["created_at"] = firestore.SERVER_TIMESTAMP
    if desc is not None:
        fields["desc"] = desc
    if source is not None:
        fields["source"] = source
    elif first:
        fields["source"] = source_path(path)
    return fields
