"""Versioned datasets: named manifests of content-addressed files.

Layout (see :mod:`aletheia.cloud.layout`)::

    Projects/{p}/Datasets/{name}            desc, location, source, partitions,
                                            latest_version, version_count, created_at
      Versions/{v}                          seq, parent, manifest_sha256, file_count,
                                            total_bytes, changes, created_by_run, created_at
      files/{path}                          the latest manifest: path, sha256, size, blob,
                                            version, project, dataset, kind="dataset"

Decisions (docs/datasets.md has the long form):

* Version ids are ``v1``, ``v2``, … in commit order; ``parent`` is the version
  the new one was diffed against: ``--parent``, else the version the
  workspace was pulled from, else the lock file's pin, else the latest
  (versions form a tree; the latest is the highest number). Re-adding data
  identical to the parent or the latest version creates nothing.
* The full manifest (sorted ``[path, sha256, size]`` rows, canonical JSON) is
  itself a content-addressed blob; the version document keeps its digest and
  a summary, so it stays a few hundred bytes whatever the file count.
* The version document is the commit point: it is written, together with the
  dataset document, in one batch after every blob and the manifest are in the
  bucket. A failed add leaves blobs (harmless, content-addressed) but no
  version and no dataset document.
* Only files new to the parent version are uploaded (one HEAD each first).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout, limits, queries
from aletheia.cloud.redact import redact_text
from aletheia.data import blobrefs, checkout, manifest_check, parents, repo_pin, workspace
from aletheia.data.blobstore import BlobInfo, BlobStore
from aletheia.data.cache import LinkMode, LocalCache, Verify
from aletheia.data.hashing import StatKey, default_workers, sha256_files
from aletheia.data.lockfile import LockFile, Pin, find_repo_root
from aletheia.data.projectstore import ProjectFileStore
from aletheia.data.transfer import Reporter, run_parallel
from aletheia.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from aletheia.stats import versioncheck

MANIFEST_FORMAT = 1
#: Files written per Firestore batch (the API allows 500 writes).
BATCH_SIZE = 400
#: Field of the dataset document naming the version ``files/`` shows.
FILES_VERSION = "files_version"
#: Directories never taken into a dataset (aletheia's and git's own).
SKIP_DIRS = workspace.OWN_DIRS
#: Written into a ``--to`` directory: which version and files a previous pull placed there.
PULL_STATE = workspace.PULL_STATE
#: Attempts at committing a version when concurrent adders race for the same id.
MAX_COMMIT_ATTEMPTS = 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DatasetHandle:
    """A resolved dataset version, optionally with its files on local disk."""

    name: str
    version: str
    local_path: Path | None
    files: list[FileEntry] = field(default_factory=list)
    manifest_sha256: str = ""


@dataclass(frozen=True)
class AddResult:
    """What ``add`` did."""

    name: str
    version: str
    created: bool
    parent: str | None
    file_count: int
    total_bytes: int
    files_uploaded: int
    bytes_uploaded: int
    bytes_hashed: int
    changes: dict[str, int]
    lock_file: Path | None = None
    #: Wall time of each phase (hashing, uploading, committing, indexing), in seconds.
    seconds: dict[str, float] = field(default_factory=dict)
    #: Why ``parent`` is the parent: "explicit", "pull-state", "lock" or "latest".
    parent_from: str | None = None
    #: The data's path in the git repository recorded in the lock file (None: not recorded).
    workspace_path: str | None = None
    #: Lines this add appended to the repository's .gitignore.
    gitignore_added: list[str] = field(default_factory=list)


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


# --------------------------------------------------------------------------- manifests


def encode_manifest(entries: Iterable[FileEntry]) -> bytes:
    """Canonical bytes of a manifest: same files → same bytes → same digest."""
    rows = sorted([e.path, e.sha256, e.size] for e in entries)
    return json.dumps(
        {"format": MANIFEST_FORMAT, "files": rows}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def decode_manifest(data: bytes, what: str = "manifest") -> dict[str, FileEntry]:
    """Inverse of :func:`encode_manifest`; :class:`IntegrityError` naming ``what`` if damaged."""
    rows = manifest_check.parse_manifest(data, MANIFEST_FORMAT, what)
    return {p: FileEntry(p, s, n) for p, s, n in rows}


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
) -> dict[str, FileEntry]:
    """``{relpath: FileEntry}`` of one dataset version."""
    doc = _version_doc(db, project, name, version)
    return _read_manifest(blobstore, doc, cache, f"the manifest of {name} {version}")


def _read_manifest(
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


def _version_doc(db: firestore.Client, project: str, name: str, version: str) -> dict[str, Any]:
    snap = db.document(layout.dataset_version(project, name, version)).get()
    if not snap.exists:
        raise NotFoundError(
            f"dataset {name!r} has no version {version!r} in project {project!r}",
            f"list them with `aletheia datasets versions {name}`",
        )
    return snap.to_dict() or {}


# --------------------------------------------------------------------------- scanning


def scan_tree(path: Path) -> list[tuple[str, Path]]:
    """``(relpath, absolute path)`` of every file under ``path`` (or ``path`` itself).

    Symlinks are followed (their targets' bytes are the data); a symlink loop,
    a dangling link, an unreadable directory, a special file or an empty tree
    is a :class:`ValidationError` raised before anything is uploaded.
    Aletheia's own files (:mod:`aletheia.data.workspace`: the pull state, ``.aletheia/``,
    partial downloads) and ``.git/`` are never data and are left out.
    """
    root = Path(path).expanduser()
    if not root.exists():
        if root.is_symlink():
            raise ValidationError(f"{root} is a dangling symlink", "point it at real data")
        raise ValidationError(f"{root} does not exist", "check the path you passed")
    if root.is_file():
        if workspace.is_own_file(root.name):
            raise ValidationError(f"{root} is aletheia's own file, not data", "add your data")
        return [(layout.validate_relpath(root.name), root.resolve())]
    found: list[tuple[str, Path]] = []
    _walk(root.resolve(), "", {_dir_key(root)}, found)
    if not found:
        raise ValidationError(f"{root} contains no files", "a dataset needs at least one file")
    found.sort()
    return found


def _dir_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


def _walk(directory: Path, prefix: str, ancestors: set[tuple[int, int]], out: list) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except PermissionError as exc:
        raise ValidationError(
            f"cannot list {directory}: permission denied", "fix its permissions or leave it out"
        ) from exc
    for entry in entries:
        if entry.name in SKIP_DIRS or workspace.is_own_file(entry.name):
            continue  # by name, before following links: never data, whatever it points at
        rel = f"{prefix}{entry.name}"
        full = Path(entry.path)
        try:
            st = full.stat()  # follows symlinks
        except FileNotFoundError as exc:
            raise ValidationError(f"{full} is a dangling symlink", "fix or remove it") from exc
        except OSError as exc:  # ELOOP: a link pointing at itself
            raise ValidationError(
                f"cannot follow {full}: {exc.strerror}", "fix or remove it"
            ) from exc
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                raise ValidationError(
                    f"symlink loop: {full} leads back to one of its parent directories",
                    "remove the link or add a directory below it",
                )
            _walk(full, f"{rel}/", ancestors | {key}, out)
        elif stat.S_ISREG(st.st_mode):
            out.append((layout.validate_relpath(rel), full))
        else:
            raise ValidationError(f"{full} is not a regular file", "leave sockets/devices out")


# --------------------------------------------------------------------------- the store


class DatasetStore(ProjectFileStore):
    """Add, resolve, pull, diff and remove dataset versions of one project."""

    cache: LocalCache  # datasets always go through a cache

    def __init__(
        self,
        db: firestore.Client,
        blobstore: BlobStore,
        cache: LocalCache,
        project: str,
        *,
        workdir: Path | None = None,
        reporter: Reporter | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(db, blobstore, cache, project, reporter=reporter, owner=owner)
        self.workdir = workdir
        self._seconds: dict[str, float] = {}  # phase times of the add in progress

    # ------------------------------------------------------------------ add

    def add(
        self,
        name: str,
        path: Path,
        *,
        desc: str | None = None,
        source: str | None = None,
        created_by_run: str | None = None,
        lock: bool | None = False,
        parent: str | None = None,
    ) -> AddResult:
        """Register the files under ``path`` as the next version of ``name``.

        The parent is ``parent`` if given, else the version the workspace was
        pulled from (its pull state), else the lock file's pin, else the latest
        version (:func:`aletheia.data.parents.choose_parent`). Data identical to the parent or
        to the latest version makes no new version. ``lock``: pin the result in the git
        repo's lock file (``None``: only when ``workdir``/cwd is inside a git
        repo; the CLI's default); a pinned ``path`` inside the repository is
        also recorded there and kept out of git (:mod:`aletheia.data.repo_pin`).
        """
        layout.dataset(self.project, name)  # validates the name before any I/O
        # Free text lands in the dataset document: bounded before any hashing or upload.
        desc = None if desc is None else limits.validate_text(desc, "dataset description")
        source = None if source is None else limits.validate_text(source, "dataset source")
        if created_by_run is not None:
            created_by_run = limits.validate_text(created_by_run, "created_by_run")
        self._seconds = {}
        place = repo_pin.plan(self.workdir, path, lock)  # refusals before any hashing or upload
        self.blobs.require_bucket()  # a wrong bucket setting, before any document is written
        self.ensure_project()  # every add writes into it
        if source is not None:  # every viewer reads it: no credentials (aletheia/cloud/redact.py)
            source = redact_text(source)
        with self._phase("hashing"):
            files = scan_tree(path)
            entries, hashed, sources = self._hash(files)
        manifest = {e.path: e for e in entries}
        body = encode_manifest(entries)
        digest = _sha256_bytes(body)
        latest = self.latest_version(name)
        if latest is not None:
            self._repair_files_if_stale(name, latest)
        base, parent_from = parents.choose_parent(
            self.db, self.project, name, path, explicit=parent, latest=latest, workdir=self.workdir
        )
        same = next(
            (d for d in (base, latest) if d is not None and d["manifest_sha256"] == digest), None
        )
        if same is not None:
            result = self._unchanged(name, same, manifest, hashed)
        else:
            result = self._add_version(
                name,
                manifest,
                sources,
                body,
                digest,
                (base, latest, parent_from),
                hashed,
                path,
                desc,
                source,
                created_by_run,
            )
        if result.created:  # an unchanged re-add reads nothing more
            versioncheck.after_commit(self.db, self.project, name, result.version, self.manifest)
        workspace.remember(path, self.project, name, result.version, digest, sorted(manifest))
        lock_file, rel, added = repo_pin.pin(place, self.project, name, result.version, digest)
        return replace(
            result,
            lock_file=lock_file,
            seconds=self._seconds,
            parent_from=parent_from if result.created else None,
            workspace_path=rel,
            gitignore_added=added,
        )

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time one phase of the current add (reported in ``AddResult.seconds``)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self._seconds[name] = round(self._seconds.get(name, 0.0) + elapsed, 3)

    def _unchanged(
        self, name: str, same: dict[str, Any], manifest: dict[str, FileEntry], hashed: int
    ) -> AddResult:
        return AddResult(
            name,
            same["version"],
            False,
            same.get("parent"),
            len(manifest),
            sum(e.size for e in manifest.values()),
            0,
            0,
            hashed,
            {"added": 0, "removed": 0, "changed": 0},
        )

    def _hash(self, files: list[tuple[str, Path]]) -> tuple[list[FileEntry], int, dict[str, Path]]:
        """Digest every file in parallel; unchanged files (stat memo) cost one ``stat``.

        The bytes are not copied into the cache on add: writing a second copy
        costs several times the hashing itself (see docs/datasets.md). They
        are uploaded from where they are, re-hashed as they stream, so a file
        changed after hashing is caught. Returns the entries, the bytes read and
        ``{sha256: a local file with those bytes}``.
        """
        stats = {p: StatKey.of(p.stat()) for _, p in files}
        memo = self.cache.index.lookup_many(stats.items())
        todo = [p for _, p in files if p not in memo]
        total = sum(stats[p].size for p in todo)
        with self.reporter.phase("hashing", total) as advance:
            digests = sha256_files(todo, workers=default_workers(), on_bytes=advance)
        hashed = dict(zip(todo, digests, strict=True))
        # Memoise only files that did not change while they were read.
        stable = [
            (p, stats[p], sha) for p, (sha, _) in hashed.items() if StatKey.of(p.stat()) == stats[p]
        ]
        self.cache.index.record_many(stable)
        sources = {sha: p for p, (sha, _) in hashed.items()}
        sources.update({memo[p]: p for _, p in files if p in memo})
        entries = [
            FileEntry(rel, *hashed[p]) if p in hashed else FileEntry(rel, memo[p], stats[p].size)
            for rel, p in files
        ]
        return entries, total, sources

    def _add_version(
        self,
        name: str,
        manifest: dict[str, FileEntry],
        sources: dict[str, Path],
        body: bytes,
        digest: str,
        bases: tuple[dict[str, Any] | None, dict[str, Any] | None, str | None],
        hashed: int,
        path: Path,
        desc: str | None,
        source: str | None,
        created_by_run: str | None,
    ) -> AddResult:
        base, latest, parent_from = bases
        parent_manifest = self._manifest_of(base, name) if base is not None else {}
        before = self.blobs.stats.snapshot()
        with self._phase("uploading"):
            uploaded = self._upload_new(manifest, parent_manifest, sources)
            self.blobs.put_bytes(body, content_type="application/json")
        after = self.blobs.stats.snapshot()
        with self._phase("committing"):
            registered = self._register(name, manifest, parent_manifest, digest, set())
            version, parent, parent_manifest, previous = self._commit(
                name,
                manifest,
                sources,
                digest,
                (base, latest, parent_from in (None, "latest")),
                parent_manifest,
                path,
                desc,
                source,
                created_by_run,
            )
        self._register(name, manifest, parent_manifest, digest, registered)  # if the parent moved
        change = diff_manifests(parent_manifest, manifest)
        if parent is None or version != parent:
            with self._phase("indexing"):
                # files/ shows the previous latest version, which need not be the parent.
                if previous is None:
                    shown: dict[str, FileEntry] = {}
                elif base is not None and previous["version"] == base["version"]:
                    shown = parent_manifest
                else:
                    shown = self._manifest_of(previous, name)
                self._sync_files(name, version, shown, manifest)
                self._mark_files(name, version)
        return AddResult(
            name,
            version,
            version != parent,
            parent,
            len(manifest),
            sum(e.size for e in manifest.values()),
            uploaded,
            after["bytes_uploaded"] - before["bytes_uploaded"],
            hashed,
            change.counts,
        )

    def _register(
        self,
        name: str,
        manifest: dict[str, FileEntry],
        parent: dict[str, FileEntry],
        digest: str,
        done: set[str],
    ) -> set[str]:
        """Record in the blob registry that ``name`` holds the blobs its parent lacked.

        Blobs the parent holds are registered already, so a one-file change is
        one write (plus the manifest). Called before the commit: a crash
        between leaves an extra entry (a blob kept), never a missing one.
        Returns the digests registered, ``done`` included.
        """
        known = {e.sha256 for e in parent.values()}
        new = ({e.sha256 for e in manifest.values()} - known) | {digest}
        blobrefs.record(self.db, self.project, blobrefs.dataset_references(name, new - done))
        return new | done

    def _upload_new(
        self,
        manifest: dict[str, FileEntry],
        parent: dict[str, FileEntry],
        sources: dict[str, Path],
    ) -> int:
        """Upload (after one HEAD each) the contents the parent version does not have."""
        known = {e.sha256 for e in parent.values()}
        todo: dict[str, FileEntry] = {}
        for e in manifest.values():
            if e.sha256 not in known:
                todo.setdefault(e.sha256, e)
        total = sum(e.size for e in todo.values())
        with self.reporter.phase("uploading", total) as advance:

            def one(e: FileEntry) -> BlobInfo:
                try:
                    return self.blobs.upload_file(
                        sources[e.sha256], e.sha256, e.size, on_bytes=advance, relpath=e.path
                    )
                except IntegrityError:
                    self.cache.index.forget(sources[e.sha256])  # re-hash it next time
                    raise

            infos = run_parallel(one, list(todo.values()))
        return sum(1 for info in infos if info.uploaded)

    def _commit(
        self,
        name: str,
        manifest: dict[str, FileEntry],
        sources: dict[str, Path],
        digest: str,
        bases: tuple[dict[str, Any] | None, dict[str, Any] | None, bool],
        parent_manifest: dict[str, FileEntry],
        path: Path,
        desc: str | None,
        source: str | None,
        created_by_run: str | None,
    ) -> tuple[str, str | None, dict[str, FileEntry], dict[str, Any] | None]:
        """Write the version and dataset documents in one batch (the commit point).

        ``bases`` is ``(parent, latest seen, whether the parent follows the
        latest)``. Concurrent adders race for ``v{n}`` with ``create``; the
        loser re-reads the latest version: identical data means its work is
        already committed; otherwise it tries ``v{n+1}``, and if its parent was
        just "the latest" it diffs against the winner instead (a parent chosen
        from the workspace or the lock file stays). Returns ``(version, parent,
        parent manifest, the latest version before this one)``.
        """
        base, latest, follow_latest = bases
        for _ in range(MAX_COMMIT_ATTEMPTS):
            # Counter first, then the latest version: both come from one atomic
            # commit, so seeing a concurrent commit's counter implies seeing its version.
            used = self._used_seq(name)
            fresh = self.latest_version(name)
            if (fresh or {}).get("version") != (latest or {}).get("version"):
                if fresh is not None and fresh["manifest_sha256"] == digest:
                    return fresh["version"], fresh["version"], manifest, fresh
                latest = fresh
                if follow_latest:
                    base = latest
                    parent_manifest = self._manifest_of(base, name) if base else {}
                    self._upload_new(manifest, parent_manifest, sources)
            seq = max(used, int(latest["seq"]) if latest else 0) + 1
            version = f"v{seq}"
            parent = base["version"] if base else None
            change = diff_manifests(parent_manifest, manifest)
            record = {
                "version": version,
                "seq": seq,
                "parent": parent,
                "manifest_sha256": digest,
                "manifest_blob": self.blobs.uri(digest),
                "file_count": len(manifest),
                "total_bytes": sum(e.size for e in manifest.values()),
                "changes": change.counts,
                "created_by_run": created_by_run,
                "created_at": firestore.SERVER_TIMESTAMP,
                "source_path": f"{socket.gethostname()}:{Path(path).resolve()}",
            }
            summary = self._dataset_fields(name, manifest, version, seq, path, desc, source, latest)
            for what, doc in (("dataset version", record), ("dataset", summary)):
                limits.validate_document(doc, what, "split the data into fewer top-level folders")
            batch = self.db.batch()
            batch.create(
                self.db.document(layout.dataset_version(self.project, name, version)), record
            )
            batch.set(self.db.document(layout.dataset(self.project, name)), summary, merge=True)
            try:
                batch.commit()
                return version, parent, parent_manifest, latest
            except (gexc.AlreadyExists, gexc.Conflict):
                continue  # another adder took this id: look again
        raise ConflictError(
            f"could not commit a version of {name!r}: too many concurrent adds", "retry the add"
        )

    def _used_seq(self, name: str) -> int:
        """The highest version number ever used, removed ones included.

        A removed ``v3`` is never reused: a lock file pinning it must not
        silently get different data.
        """
        snap = self.db.document(layout.dataset(self.project, name)).get()
        return int((snap.to_dict() or {}).get("version_count", 0)) if snap.exists else 0

    def _dataset_fields(
        self,
        name: str,
        manifest: dict[str, FileEntry],
        version: str,
        seq: int,
        path: Path,
        desc: str | None,
        source: str | None,
        latest: dict[str, Any] | None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "name": name,
            "latest_version": version,
            "version_count": seq,
            "location": f"gs://{self.blobs.bucket.name}/{self.project}/{layout.BLOB_PREFIX}",
            "partitions": sorted({p.split("/", 1)[0] for p in manifest if "/" in p}),
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
        if latest is None:
            fields["created_at"] = firestore.SERVER_TIMESTAMP
        if desc is not None:
            fields["desc"] = desc
        if source is not None:
            fields["source"] = source
        elif latest is None:
            fields["source"] = f"{socket.gethostname()}:{Path(path).resolve()}"
        return fields

    def _sync_files(
        self, name: str, version: str, old: dict[str, FileEntry], new: dict[str, FileEntry]
    ) -> None:
        """Bring ``files/`` (the latest manifest, queryable by sha256) up to date: diffs only."""
        change = diff_manifests(old, new)
        writes: list[tuple[str, dict[str, Any] | None]] = [
            (e.path, self._file_fields(name, version, e))
            for e in [*change.added, *(n for _, n in change.changed)]
        ]
        writes += [(e.path, None) for e in change.removed]
        for start in range(0, len(writes), BATCH_SIZE):
            batch = self.db.batch()
            for relpath, data in writes[start : start + BATCH_SIZE]:
                ref = self.db.document(layout.dataset_file(self.project, name, relpath))
                if data is None:
                    batch.delete(ref)
                else:
                    batch.set(ref, data)
            batch.commit()

    def _mark_files(self, name: str, version: str) -> None:
        """Record that ``files/`` now shows ``version`` (written last: a crash before leaves
        the old mark, and the next add repairs ``files/``)."""
        self.db.document(layout.dataset(self.project, name)).update({FILES_VERSION: version})

    def _repair_files_if_stale(self, name: str, latest: dict[str, Any]) -> None:
        """Bring ``files/`` to the latest version if an earlier add or rm stopped midway.

        Also covers concurrent adds, whose ``files/`` updates can interleave:
        whichever finished last set the mark, and any mismatch is fixed here.
        """
        if self.info(name).get(FILES_VERSION) == latest["version"]:
            return
        self._sync_files(
            name, latest["version"], self._shown_files(name), self._manifest_of(latest, name)
        )
        self._mark_files(name, latest["version"])

    def _shown_files(self, name: str) -> dict[str, FileEntry]:
        """What ``files/`` holds now (read back when no manifest says it)."""
        return {
            str(d["path"]): FileEntry(str(d["path"]), str(d["sha256"]), int(d.get("size") or 0))
            for d in (
                snap.to_dict() or {}
                for snap in self.db.collection(layout.dataset_files(self.project, name)).stream()
            )
            if d.get("path") and d.get("sha256")
        }

    def _file_fields(self, name: str, version: str, e: FileEntry) -> dict[str, Any]:
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

    # ------------------------------------------------------------------ read

    def latest_version(self, name: str) -> dict[str, Any] | None:
        """The newest version document of ``name``, or ``None``."""
        query = queries.dataset_versions_newest_first(self.db, self.project, name).limit(1)
        for snap in query.stream():
            return snap.to_dict()
        return None

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version document of ``name``, oldest first."""
        docs = [
            s.to_dict() or {}
            for s in queries.dataset_versions_newest_first(self.db, self.project, name).stream()
        ]
        return sorted(docs, key=lambda d: int(d.get("seq", 0)))

    def info(self, name: str) -> dict[str, Any]:
        """The dataset document."""
        snap = self.db.document(layout.dataset(self.project, name)).get()
        if not snap.exists:
            raise NotFoundError(
                f"no dataset {name!r} in project {self.project!r}",
                "see `aletheia datasets list`, or add it with `aletheia datasets add`",
            )
        return snap.to_dict() or {}

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset document of the project, by name."""
        docs = self.db.collection(layout.datasets(self.project)).stream()
        return sorted((s.to_dict() or {} for s in docs), key=lambda d: str(d.get("name", "")))

    def _manifest_of(self, version_doc: dict[str, Any], name: str = "") -> dict[str, FileEntry]:
        what = f"the manifest of {name} {version_doc.get('version')}".replace("  ", " ")
        return _read_manifest(self.blobs, version_doc, self.cache, what)

    def manifest(self, name: str, version: str) -> dict[str, FileEntry]:
        """``{relpath: FileEntry}`` of a version."""
        return self._manifest_of(_version_doc(self.db, self.project, name, version), name)

    def file_records(self, entries: Iterable[FileEntry]) -> dict[str, dict[str, Any]]:
        """``Files/{sha256}`` documents (status, schema, stats) of these entries, if present."""
        refs = [
            self.db.document(layout.file(self.project, s))
            for s in sorted({e.sha256 for e in entries})
        ]
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(refs), BATCH_SIZE):
            for snap in self.db.get_all(refs[start : start + BATCH_SIZE]):
                if snap.exists:
                    out[snap.id] = snap.to_dict() or {}
        return out

    def resolve_version(self, name: str, version: str | None = None) -> str:
        """``version``, else the git repo's pin, else the latest version."""
        return self._resolve(name, version)[0]

    def _resolve(self, name: str, version: str | None) -> tuple[str, str | None]:
        """``(version, manifest digest the lock file expects or None)``."""
        if version is not None:
            return layout.validate_id(version, "dataset version"), None
        root = find_repo_root(self.workdir)
        if root is not None:
            pin = LockFile.load(root).get(self.project, name)
            if pin is not None:
                return pin.version, pin.manifest_sha256
        latest = self.latest_version(name)
        if latest is None:
            layout.dataset(self.project, name)
            raise NotFoundError(
                f"no dataset {name!r} in project {self.project!r}",
                "see `aletheia datasets list`, or add it with `aletheia datasets add`",
            )
        return str(latest["version"]), None

    def diff(self, name: str, v1: str, v2: str) -> Diff:
        """Files added, removed and changed from version ``v1`` to ``v2``."""
        return diff_manifests(self.manifest(name, v1), self.manifest(name, v2))

    # ------------------------------------------------------------------ get / pull

    def get(
        self,
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
        resolved, expected = self._resolve(name, version)
        place = repo_pin.plan(self.workdir, to, True, is_dir=True) if lock else None
        doc = _version_doc(self.db, self.project, name, resolved)
        if expected is not None and doc["manifest_sha256"] != expected:
            raise ConflictError(
                f"{name} {resolved} in the bucket is not the data the lock file pinned",
                "the version was removed and re-created; pin a version again with `pull --lock`",
            )
        manifest = self._manifest_of(doc, name)
        files = sorted(manifest.values(), key=lambda e: e.path)
        local_path: Path | None = None
        if download:
            self._fetch_missing(files, verify)
            if to is None:
                local_path = self.cache.root / "checkouts" / self.project / name / resolved
                mode: LinkMode = link or "hardlink"
            else:
                local_path = Path(to).expanduser().resolve()
                mode = link or "copy"
            what = (name, resolved, doc["manifest_sha256"])
            self._checkout(files, local_path, mode, what, force)
        if lock:
            repo_pin.pin(place, self.project, name, resolved, doc["manifest_sha256"])
        return DatasetHandle(name, resolved, local_path, files, doc["manifest_sha256"])

    def _fetch_missing(self, files: list[FileEntry], verify: Verify) -> None:
        unique = {e.sha256: e for e in files}
        missing = [e for e in unique.values() if not self.cache.has(e.sha256, verify=verify)]
        total = sum(e.size for e in missing)
        with self.reporter.phase("downloading", total) as advance:

            def one(e: FileEntry) -> None:
                with self.cache.open_for_write(e.sha256) as fh:
                    self.blobs.download_to(e.sha256, fh, on_bytes=advance)

            run_parallel(one, missing)

    def _checkout(
        self,
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
        entry = state.get(self.project, name)
        previous: dict[str, str] = {}
        if entry is not None and entry.version is not None:
            doc = parents.version_or_none(
                self.db, self.project, name, Pin(entry.version, entry.manifest_sha256)
            )
            if doc is not None:
                previous = {
                    p: e.sha256 for p, e in (self._readable_manifest(doc, name, True) or {}).items()
                }
        plan = checkout.Placement(
            {e.path: e.sha256 for e in files},
            previous,
            state.previous_files(self.project, name),
        )
        checkout.place(self.cache, root, plan, mode, stored=self.blobs.exists, force=force)
        state.record(self.project, name, version, digest, sorted(plan.files))
        state.save()

    # ------------------------------------------------------------------ remove

    def remove_version(self, name: str, version: str, *, force: bool = False) -> RemoveResult:
        """Delete one version, and the blobs nothing else references.

        A version that recorded runs used is refused (:class:`ConflictError`
        naming them) unless ``force``. A blob is deleted only if no other
        version of ``name`` holds it and the blob registry
        (:mod:`aletheia.data.blobrefs`) names no other holder; a blob the registry
        has no entry for is kept. The cost is a few reads plus one batched read
        per 300 candidate blobs, whatever the number of datasets and versions.
        """
        doc = _version_doc(self.db, self.project, name, version)
        runs = [
            _run_label(path) for path in runs_using_dataset(self.db, self.project, name, version)
        ]
        if runs and not force:
            shown = ", ".join(runs[:10]) + (f" and {len(runs) - 10} more" if len(runs) > 10 else "")
            raise ConflictError(
                f"{name} {version} was used by {len(runs)} recorded run(s) "
                f"(experiment/run): {shown}",
                "pass --force (force=True) to remove it anyway; those runs' data is then gone",
            )
        manifest = self._readable_manifest(doc, name, force)
        others = [v for v in self.versions(name) if v["version"] != version]
        readable = {o["version"]: self._readable_manifest(o, name, True) for o in others}
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
        verdict = blobrefs.classify(blobrefs.lookup(self.db, self.project, candidates), name)
        self.db.document(layout.dataset_version(self.project, name, version)).delete()
        new_latest = max(others, key=lambda d: int(d["seq"])) if others else None
        new_manifest = readable[new_latest["version"]] if new_latest else None
        self._after_remove(name, version, manifest, new_latest, new_manifest or {})
        deleted = sum(run_parallel(self.blobs.delete, verdict.deletable))
        blobrefs.release_dataset(self.db, self.project, name, verdict.deletable, verdict.held)
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
        )

    def _readable_manifest(
        self, doc: dict[str, Any], name: str, tolerate: bool
    ) -> dict[str, FileEntry] | None:
        """The manifest of a version, or ``None`` if it is damaged and ``tolerate``."""
        try:
            return self._manifest_of(doc, name)
        except IntegrityError as exc:
            if not tolerate:
                raise IntegrityError(
                    exc.message,
                    "pass --force (force=True) to remove that version anyway; the blobs "
                    "of its files are kept, since which ones only it holds cannot be read",
                ) from exc
            return None

    def _after_remove(
        self,
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
        if self.info(name).get("latest_version") != version:
            return  # files/ shows a version that still exists
        shown = removed if removed is not None else self._shown_files(name)
        dataset_ref = self.db.document(layout.dataset(self.project, name))
        if new_latest is None:
            self._sync_files(name, version, shown, {})
            dataset_ref.delete()
            return
        self._sync_files(name, new_latest["version"], shown, new_manifest)
        dataset_ref.update(
            {
                "latest_version": new_latest["version"],
                FILES_VERSION: new_latest["version"],
                "updated_at": firestore.SERVER_TIMESTAMP,
            }
        )


def _run_label(path: str) -> str:
    """``experiment/run`` of a run document path ``Projects/p/Experiments/e/Runs/r``."""
    parts = path.split("/")
    return f"{parts[3]}/{parts[5]}" if len(parts) >= 6 else path


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- lineage


def datasets_used_by_run(
    db: firestore.Client, project: str, experiment: str, run_id: str
) -> list[dict[str, str]]:
    """ "Which data did this run use": the ``{name, version}`` list on the run document."""
    snap = db.document(layout.run(project, experiment, run_id)).get()
    if not snap.exists:
        raise NotFoundError(f"no run {run_id!r} in experiment {experiment!r}")
    return list((snap.to_dict() or {}).get("datasets", []))


def runs_using_dataset(db: firestore.Client, project: str, name: str, version: str) -> list[str]:
    """ "Which runs used this data": document paths of runs (any experiment) that used it."""
    query = queries.project_runs_using_dataset(db, project, name, version)
    return [snap.reference.path for snap in queries.under_project(query.stream(), project)]


def dataset_versions_with_file(
    db: firestore.Client, project: str, sha256: str
) -> list[dict[str, Any]]:
    """Latest-manifest entries of datasets holding these bytes: ``{dataset, path, version}``."""
    query = queries.dataset_versions_with_file(db, project, sha256)
    return [
        {k: d.get(k) for k in ("dataset", "path", "version", "size")}
        for d in (s.to_dict() or {} for s in queries.under_project(query.stream(), project))
    ]
