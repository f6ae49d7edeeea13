"""Dataset manifests: which files (path, sha256, size) a version holds, as canonical bytes.

The full manifest is itself a content-addressed blob (sorted
``[path, sha256, size]`` rows, canonical JSON); the version document keeps
its digest and at most :data:`LISTED_FILES` entries, so it stays a few
kilobytes whatever the file count.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.data import manifest_check
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.errors import NotFoundError
from aletheia.stats.formats import tabular_name

MANIFEST_FORMAT = 1
#: Files a version document lists by path and sha256 (tables first): readers that
#: cannot read the bucket (the dashboard) find these files' profiles in ``Files/``
#: for any version, not only the latest, whose whole manifest ``files/`` holds.
LISTED_FILES = 50


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Diff:
    """Files added, removed and changed between two manifests."""

    added: list[FileEntry]
    removed: list[FileEntry]
    changed: list[tuple[FileEntry, FileEntry]]

    @property
    def counts(self) -> dict[str, int]:
        """``{"added": n, "removed": n, "changed": n}``."""
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
        }


def encode_manifest(entries: Iterable[FileEntry]) -> bytes:
    """Canonical bytes of a manifest: same files → same bytes → same digest."""
    rows = sorted([e.path, e.sha256, e.size] for e in entries)
    return json.dumps(
        {"format": MANIFEST_FORMAT, "files": rows}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def encode_with_digest(entries: Iterable[FileEntry]) -> tuple[bytes, str]:
    """:func:`encode_manifest`'s bytes and their sha256 (hex): the manifest's digest, which a
    version records and an unchanged re-add compares (one definition for both)."""
    body = encode_manifest(entries)
    return body, hashlib.sha256(body).hexdigest()


def decode_manifest(data: bytes, what: str = "manifest") -> dict[str, FileEntry]:
    """Inverse of :func:`encode_manifest`; :class:`IntegrityError` naming ``what`` if damaged."""
    rows = manifest_check.parse_manifest(data, MANIFEST_FORMAT, what)
    return {p: FileEntry(p, s, n) for p, s, n in rows}


def listed_files(manifest: dict[str, FileEntry]) -> list[dict[str, str]]:
    """The first :data:`LISTED_FILES` entries, files with a table's name first, by path."""
    order = sorted(manifest, key=lambda path: (not tabular_name(path), path))
    return [{"path": p, "sha256": manifest[p].sha256} for p in order[:LISTED_FILES]]


def diff_manifests(old: dict[str, FileEntry], new: dict[str, FileEntry]) -> Diff:
    """Files added, removed and changed (by content) from ``old`` to ``new``."""
    added = [new[p] for p in sorted(new.keys() - old.keys())]
    removed = [old[p] for p in sorted(old.keys() - new.keys())]
    changed = [
        (old[p], new[p]) for p in sorted(old.keys() & new.keys()) if old[p].sha256 != new[p].sha256
    ]
    return Diff(added, removed, changed)


def load_manifest(
    db: firestore.Client,
    blobstore: BlobStore,
    project: str,
    name: str,
    version: str,
    cache: LocalCache | None = None,
    decoded: DecodedManifests | None = None,
) -> Mapping[str, FileEntry]:
    """``{relpath: FileEntry}`` of one dataset version (read-only when ``decoded`` answers)."""
    doc = version_doc(db, project, name, version)
    what = f"the manifest of {name} {version}"
    if decoded is not None:
        return decoded.read(blobstore, doc, cache, what)
    return read_manifest(blobstore, doc, cache, what)


def read_manifest(
    blobstore: BlobStore, version_doc: dict[str, Any], cache: LocalCache | None, what: str
) -> dict[str, FileEntry]:
    digest = version_doc.get("manifest_sha256")
    if not isinstance(digest, str) or not manifest_check.SHA256.match(digest):
        raise manifest_check.damaged(what, f"manifest_sha256 is {digest!r:.80}")
    if cache is not None and cache.has(digest):
        return decode_manifest(cache.path(digest).read_bytes(), what)
    data = blobstore.get_bytes(digest)  # verified against its digest
    if cache is not None:
        with cache.open_for_write(digest) as fh:
            fh.write(data)
    return decode_manifest(data, what)


class DecodedManifests:
    """The few manifests last decoded, kept in memory by content digest (thread-safe).

    The storage function asks, at every file event, whether the event
    completed its version, which needs the version's manifest: decoding
    (and checking) a 10,000-file manifest at each of its 10,000 events is
    N² work (~60 ms per event here, most of the function's CPU). A manifest
    is content-addressed, so a decoded one is never stale. The mappings
    handed out are shared: read-only.
    """

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._kept: OrderedDict[str, Mapping[str, FileEntry]] = OrderedDict()
        self._lock = threading.Lock()

    def read(
        self,
        blobstore: BlobStore,
        version_doc: dict[str, Any],
        cache: LocalCache | None,
        what: str,
    ) -> Mapping[str, FileEntry]:
        """:func:`read_manifest`, decoded once per digest while it is among the last few."""
        digest = version_doc.get("manifest_sha256")
        with self._lock:
            found = self._kept.get(digest) if isinstance(digest, str) else None
            if found is not None:
                self._kept.move_to_end(str(digest))
                return found
        found = MappingProxyType(read_manifest(blobstore, version_doc, cache, what))
        with self._lock:
            self._kept[str(digest)] = found  # read_manifest checked it is a digest
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
        return found


def version_doc(db: firestore.Client, project: str, name: str, version: str) -> dict[str, Any]:
    snap = db.document(layout.dataset_version(project, name, version)).get()
    if not snap.exists:
        raise NotFoundError(
            f"dataset {name!r} has no version {version!r} in project {project!r}",
            f"list them with `aletheia datasets versions {name}`",
        )
    return snap.to_dict() or {}
