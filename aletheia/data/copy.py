"""Copying a dataset to another project or bucket, server-side.

Every blob a copied version holds (its files and its manifest) is copied
with a Cloud Storage rewrite: the bytes stay in Cloud Storage, and each
distinct content is copied once whatever the number of versions naming it.
The target project is claimed or checked like any write
(:meth:`~aletheia.data.projectstore.ProjectFileStore.ensure_project`) before
anything is copied, and its blob registry (:mod:`aletheia.data.blobrefs`)
names the dataset before the version documents are written, as an add does.

Versions keep their ids, sequence numbers, parents (when the parent is
copied too), change counts and manifests; ``created_by_run`` names a run of
the source project, so it moves into ``copied_from``. Per-file statistics
(``Files/{sha256}``) are not copied: the storage function, the only writer of
those documents, profiles each copy as it lands in the target (the rewrite
keeps the object's metadata, so the function reads it as it read the
original), and the target's statistics are then computed from the target's
own bytes rather than trusted from elsewhere.

A copy is resumable: each version is committed (``create``) only once its
blobs are in the target, in version order; run the same copy again and the
versions already there (same manifest) are skipped. A target version of
the same id with different data is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore, gexc
from aletheia.data import blobrefs
from aletheia.data.catalog import DatasetCatalog
from aletheia.data.transfer import run_parallel
from aletheia.errors import AletheiaError, ConflictError, ValidationError

#: Version fields copied as they are (the rest is rebuilt for the target).
_KEPT = (
    "version",
    "seq",
    "manifest_sha256",
    "file_count",
    "total_bytes",
    "files_listed",
    "changes",
    "source_path",
)


@dataclass(frozen=True)
class CopyResult:
    """What ``copy_dataset`` did."""

    name: str
    project: str
    bucket: str
    copied: list[str]
    skipped: list[str]
    blobs_copied: int
    bytes_copied: int
    blobs_present: int
    latest_version: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def copy_dataset(
    source: DatasetCatalog,
    target: DatasetCatalog,
    name: str,
    *,
    version: str | None = None,
    all_versions: bool = False,
    new_name: str | None = None,
) -> CopyResult:
    """Copy ``name`` (``version``, every version, or the latest) into ``target``.

    ``target`` is a store of the destination project and bucket; ``new_name``
    renames the dataset there. Raises :class:`ConflictError` when the target
    holds a different version under the same id; an error midway keeps its
    class (and exit code) and says which versions were copied and how to resume.
    """
    new = new_name or name
    layout.dataset(target.project, new)  # validates the name before any I/O
    if version is not None and all_versions:
        raise ValidationError("--version and --all-versions exclude each other", "pass one")
    same_place = (source.project, source.blobs.bucket.name) == (
        target.project,
        target.blobs.bucket.name,
    )
    if same_place and new == name:
        raise ValidationError(
            f"{name!r} is already in project {source.project!r} of that bucket",
            "pass --to-project, --to-bucket or --as NEW_NAME",
        )
    info = source.info(name)
    docs = source.versions(name)
    if not all_versions:
        wanted = version if version is not None else source.resolve_version(name)
        docs = [d for d in docs if d.get("version") == wanted]
        if not docs:
            source.manifest(name, wanted)  # raises the usual "no such version"
    target.blobs.require_bucket()
    target.ensure_project()  # the same claim every write path makes

    present = {str(d["version"]): d for d in target.versions(new)}
    todo: list[dict[str, Any]] = []
    skipped: list[str] = []
    for doc in docs:
        there = present.get(str(doc["version"]))
        if there is None:
            todo.append(doc)
        elif there.get("manifest_sha256") == doc["manifest_sha256"]:
            skipped.append(str(doc["version"]))  # copied before (a resumed copy)
        else:
            raise _holds_other_data(new, str(doc["version"]), target.project)

    before = target.blobs.stats.snapshot()
    copied_blobs: set[str] = set()
    copied: list[str] = []
    for doc in todo:
        try:
            _copy_version(source, target, name, new, doc, copied_blobs, present)
        except AletheiaError as exc:
            exc.message = f"copy of {name} stopped at {doc['version']}: {exc.message}" + (
                f" (copied already: {', '.join(copied)})" if copied else ""
            )
            exc.hint = (
                f"{exc.hint}; then " if exc.hint else ""
            ) + "run the same copy again: versions already copied are skipped"
            exc.args = (f"{exc.message} ({exc.hint})",)
            raise
        copied.append(str(doc["version"]))
        present[str(doc["version"])] = doc
    latest = _finish(source, target, name, new, info, present) if present else None
    after = target.blobs.stats.snapshot()
    return CopyResult(
        new,
        target.project,
        target.blobs.bucket.name,
        copied,
        skipped,
        after["copies"] - before["copies"],
        after["bytes_copied"] - before["bytes_copied"],
        after["uploads_skipped"] - before["uploads_skipped"],
        latest,
    )


def _holds_other_data(name: str, version: str, project: str) -> ConflictError:
    """The target already has this version id with other data."""
    return ConflictError(
        f"{name} {version} in project {project!r} holds different data",
        "copy under another name with --as NEW_NAME",
    )


def _copy_version(
    source: DatasetCatalog,
    target: DatasetCatalog,
    name: str,
    new: str,
    doc: dict[str, Any],
    done: set[str],
    present: dict[str, dict[str, Any]],
) -> None:
    """Copy one version's blobs, register them, then commit its document."""
    manifest = source.manifest_of(doc, name)
    digests = ({e.sha256 for e in manifest.values()} | {str(doc["manifest_sha256"])}) - done
    run_parallel(lambda sha: target.blobs.copy_from(source.blobs, sha), sorted(digests))
    # Registered before the commit, as an add does: a crash leaves an extra entry, never a
    # missing one.
    blobrefs.record(target.db, target.project, blobrefs.dataset_references(new, digests))
    done |= digests
    record = {k: doc[k] for k in _KEPT if k in doc}
    parent = doc.get("parent")
    record["parent"] = parent if parent in present else None
    record["manifest_blob"] = target.blobs.uri(str(doc["manifest_sha256"]))
    record["created_by_run"] = None  # a run of the source project: kept in copied_from
    record["created_at"] = firestore.SERVER_TIMESTAMP
    record["copied_from"] = {
        "project": source.project,
        "bucket": source.blobs.bucket.name,
        "dataset": name,
        "version": doc["version"],
        "created_by_run": doc.get("created_by_run"),
    }
    if doc.get("sampled_from") is not None:
        record["sampled_from"] = doc["sampled_from"]
    ref = target.db.document(layout.dataset_version(target.project, new, str(doc["version"])))
    try:
        ref.create(record)
    except gexc.AlreadyExists:
        # This create, landed with its answer lost and sent again by the client library,
        # or a concurrent copy of the same version: either holds this data. Only other data
        # under the same id is a conflict.
        there = ref.get().to_dict() or {}
        if there.get("manifest_sha256") != doc["manifest_sha256"]:
            raise _holds_other_data(new, str(doc["version"]), target.project) from None


def _finish(
    source: DatasetCatalog,
    target: DatasetCatalog,
    name: str,
    new: str,
    info: dict[str, Any],
    present: dict[str, dict[str, Any]],
) -> str:
    """Write the target's dataset document and bring its ``files/`` index to the latest."""
    latest = max(present.values(), key=lambda d: int(d.get("seq", 0)))
    version = str(latest["version"])
    existing = target.db.document(layout.dataset(target.project, new)).get()
    used = int((existing.to_dict() or {}).get("version_count", 0)) if existing.exists else 0
    fields: dict[str, Any] = {
        "name": new,
        "latest_version": version,
        "version_count": max(used, int(latest.get("seq", 0))),
        "location": f"gs://{target.blobs.bucket.name}/{target.project}/{layout.BLOB_PREFIX}",
        "partitions": info.get("partitions", []),
        "copied_from": {
            "project": source.project,
            "bucket": source.blobs.bucket.name,
            "dataset": name,
        },
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    for key in ("desc", "source", "sampled_from"):
        if info.get(key) is not None:
            fields[key] = info[key]
    if not existing.exists:
        fields["created_at"] = firestore.SERVER_TIMESTAMP
    target.db.document(layout.dataset(target.project, new)).set(fields, merge=True)
    manifest = target.manifest_of(target.versions(new)[-1], new)
    target.index.sync(new, version, target.index.shown(new), manifest)
    target.index.mark(new, version)
    return version
