"""Removing one dataset version, and the blobs nothing else references.

A blob is deleted only if no other version of the dataset holds it and the
blob registry (:mod:`aletheia.data.blobrefs`) names no other holder; a blob
the registry has no entry for is kept. What the storage function derived
from a deleted blob (its row sample and full profile) goes with it. A
version recorded runs used is refused unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.data import blobrefs, manifest_check
from aletheia.data.catalog import DatasetCatalog
from aletheia.data.filesindex import FILES_VERSION
from aletheia.data.lineage import run_label, runs_using_dataset
from aletheia.data.manifests import FileEntry, version_doc
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConflictError


@dataclass(frozen=True)
class RemoveResult:
    """What removing a version did, counting each distinct blob (files and manifest) once."""

    name: str
    version: str
    blobs_deleted: int
    #: Still referenced (by another version, dataset, artifact, run or MLflow file) or unknown.
    blobs_kept: int
    dataset_deleted: bool
    latest_version: str | None
    #: Kept because the blob registry has no entry for them (stored before it existed).
    blobs_unregistered: int = 0
    #: Recorded runs that used the version (removed anyway with ``force``).
    runs: list[str] = field(default_factory=list)
    #: Versions whose manifest is damaged (their blobs, and this one's, were kept).
    damaged: list[str] = field(default_factory=list)
    #: Row samples and full profiles the storage function derived from the deleted blobs
    #: (they hold real rows): deleted with them.
    derived_deleted: int = 0


def remove_version(
    catalog: DatasetCatalog, name: str, version: str, *, force: bool = False
) -> RemoveResult:
    """Delete one version, and the blobs nothing else references.

    A version that recorded runs used is refused (:class:`ConflictError`
    naming them) unless ``force``. A blob is deleted only if no other
    version of ``name`` holds it and the blob registry
    (:mod:`aletheia.data.blobrefs`) names no other holder; a blob the registry
    has no entry for is kept. The cost is a few reads plus one batched read
    per 300 candidate blobs, whatever the number of datasets and versions.
    """
    doc = version_doc(catalog.db, catalog.project, name, version)
    runs = [
        run_label(path) for path in runs_using_dataset(catalog.db, catalog.project, name, version)
    ]
    if runs and not force:
        shown = ", ".join(runs[:10]) + (f" and {len(runs) - 10} more" if len(runs) > 10 else "")
        raise ConflictError(
            f"{name} {version} was used by {len(runs)} recorded run(s) (experiment/run): {shown}",
            "pass --force (force=True) to remove it anyway; those runs' data is then gone",
        )
    manifest = catalog.readable_manifest(doc, name, force)
    others = [v for v in catalog.versions(name) if v["version"] != version]
    readable = {o["version"]: catalog.readable_manifest(o, name, True) for o in others}
    damaged = sorted(v for v, m in readable.items() if m is None)
    others_damaged = bool(damaged)
    damaged += [version] if manifest is None else []
    referenced: set[str] = {str(o.get("manifest_sha256")) for o in others}
    for other in readable.values():
        referenced.update(e.sha256 for e in (other or {}).values())
    digest = doc.get("manifest_sha256")
    own = {digest} if isinstance(digest, str) and manifest_check.SHA256.match(digest) else set()
    blobs = {e.sha256 for e in (manifest or {}).values()} | own
    # What a damaged manifest lists is unknown: deleting anything could lose its data.
    candidates = set() if others_damaged else blobs - referenced
    verdict = blobrefs.classify(blobrefs.lookup(catalog.db, catalog.project, candidates), name)
    catalog.db.document(layout.dataset_version(catalog.project, name, version)).delete()
    if catalog.target is not None:  # this machine no longer answers a re-add with it
        catalog.adds.forget_version(catalog.target, catalog.project, name, version)
    new_latest = max(others, key=lambda d: int(d["seq"])) if others else None
    new_manifest = readable[new_latest["version"]] if new_latest else None
    _after_remove(catalog, name, version, manifest, new_latest, new_manifest or {})
    deleted = sum(run_parallel(catalog.blobs.delete, verdict.deletable))
    # Derived from bytes nothing references any more (blob names are per project, so no
    # other project's data shares them): a sample without its data is an orphan of real rows.
    derived = sum(run_parallel(catalog.blobs.delete_derived, verdict.deletable))
    blobrefs.release_dataset(catalog.db, catalog.project, name, verdict.deletable, verdict.held)
    return RemoveResult(
        name,
        version,
        deleted,
        len(blobs) - len(verdict.deletable),
        new_latest is None,
        new_latest["version"] if new_latest else None,
        blobs_unregistered=len(verdict.unregistered),
        runs=runs,
        damaged=damaged,
        derived_deleted=derived,
    )


def _after_remove(
    catalog: DatasetCatalog,
    name: str,
    version: str,
    removed: dict[str, FileEntry] | None,
    new_latest: dict[str, Any] | None,
    new_manifest: dict[str, FileEntry],
) -> None:
    """Repoint the dataset (and its ``files/``) when the latest version was removed.

    ``removed`` is ``None`` when its manifest is damaged: ``files/`` is then
    read back instead of diffed. A damaged new latest shows no files.
    """
    if catalog.info(name).get("latest_version") != version:
        return  # files/ shows a version that still exists
    shown = removed if removed is not None else catalog.index.shown(name)
    dataset_ref = catalog.db.document(layout.dataset(catalog.project, name))
    if new_latest is None:
        catalog.index.sync(name, version, shown, {})
        dataset_ref.delete()
        return
    catalog.index.sync(name, new_latest["version"], shown, new_manifest)
    dataset_ref.update(
        {
            "latest_version": new_latest["version"],
            FILES_VERSION: new_latest["version"],
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
    )
