"""Getting a dataset version: resolve it, download what the cache lacks, place it on disk.

Without ``to`` the files are hard-linked (read-only) into a checkout
directory inside the cache; with ``to`` they are copied there and a pull
state records what was placed, so local edits are never overwritten
(:mod:`aletheia.data.checkout`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aletheia.data import checkout, parents, repo_pin, workspace
from aletheia.data.cache import LinkMode, Verify
from aletheia.data.catalog import DatasetCatalog
from aletheia.data.lockfile import Pin
from aletheia.data.manifests import FileEntry, version_doc
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConflictError


@dataclass(frozen=True)
class DatasetHandle:
    """A resolved dataset version, optionally with its files on local disk."""

    name: str
    version: str
    local_path: Path | None
    files: list[FileEntry] = field(default_factory=list)
    manifest_sha256: str = ""


def get(
    catalog: DatasetCatalog,
    name: str,
    version: str | None = None,
    download: bool = True,
    *,
    to: Path | None = None,
    link: LinkMode | None = None,
    verify: Verify = "stat",
    lock: bool = False,
    force: bool = False,
) -> DatasetHandle:
    """Resolve a version and (with ``download``) put its files on local disk.

    Without ``to`` the files are hard-linked (read-only) into a checkout
    directory inside the cache; with ``to`` they are copied there (``link``
    overrides) and files an earlier pull placed there but this version
    lacks are removed. A file there holding bytes no version placed (a local
    edit) is never overwritten or removed unless ``force``
    (:class:`ConflictError`). Cached objects are verified (``verify``) and
    re-downloaded when missing or corrupt.
    """
    resolved, expected = catalog.resolve(name, version)
    place = repo_pin.plan(catalog.workdir, to, True, is_dir=True) if lock else None
    doc = version_doc(catalog.db, catalog.project, name, resolved)
    if expected is not None and doc["manifest_sha256"] != expected:
        raise ConflictError(
            f"{name} {resolved} in the bucket is not the data the lock file pinned",
            "the version was removed and re-created; pin a version again with `pull --lock`",
        )
    manifest = catalog.manifest_of(doc, name)
    files = sorted(manifest.values(), key=lambda e: e.path)
    local_path: Path | None = None
    if download:
        _fetch_missing(catalog, files, verify)
        if to is None:
            local_path = catalog.cache.root / "checkouts" / catalog.project / name / resolved
            mode: LinkMode = link or "hardlink"
        else:
            local_path = Path(to).expanduser().resolve()
            mode = link or "copy"
        what = (name, resolved, doc["manifest_sha256"])
        _checkout(catalog, files, local_path, mode, what, force)
    if lock:
        repo_pin.pin(place, catalog.project, name, resolved, doc["manifest_sha256"])
    return DatasetHandle(name, resolved, local_path, files, doc["manifest_sha256"])


def _fetch_missing(catalog: DatasetCatalog, files: list[FileEntry], verify: Verify) -> None:
    unique = {e.sha256: e for e in files}
    missing = [e for e in unique.values() if not catalog.cache.has(e.sha256, verify=verify)]
    total = sum(e.size for e in missing)
    with catalog.reporter.phase("downloading", total) as advance:

        def one(e: FileEntry) -> None:
            with catalog.cache.open_for_write(e.sha256) as fh:
                catalog.blobs.download_to(e.sha256, fh, on_bytes=advance)

        run_parallel(one, missing)


def _checkout(
    catalog: DatasetCatalog,
    files: list[FileEntry],
    root: Path,
    mode: LinkMode,
    what: tuple[str, str, str],
    force: bool = False,
) -> None:
    """Place ``files`` under ``root`` (:func:`aletheia.data.checkout.place`: local edits are
    never overwritten unless ``force``); record ``what`` (name, version, digest)."""
    name, version, digest = what
    state = workspace.PullState.load(root)
    entry = state.get(catalog.project, name)
    previous: dict[str, str] = {}
    if entry is not None and entry.version is not None:
        doc = parents.version_or_none(
            catalog.db, catalog.project, name, Pin(entry.version, entry.manifest_sha256)
        )
        if doc is not None:
            previous = {
                p: e.sha256 for p, e in (catalog.readable_manifest(doc, name, True) or {}).items()
            }
    plan = checkout.Placement(
        {e.path: e.sha256 for e in files},
        previous,
        state.previous_files(catalog.project, name),
    )
    checkout.place(catalog.cache, root, plan, mode, stored=catalog.blobs.exists, force=force)
    state.record(catalog.project, name, version, digest, sorted(plan.files))
    state.save()
