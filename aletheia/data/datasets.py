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
  itself a content-addressed blob; the version document keeps its digest, a
  summary and the first 50 files' paths and digests (tables first: readers
  without the bucket find their profiles), so it stays a few kilobytes
  whatever the file count.
* The version document is the commit point: it is written, together with the
  dataset document, in one batch after every blob and the manifest are in the
  bucket. A failed add leaves blobs (harmless, content-addressed) but no
  version and no dataset document.
* Only files new to the parent version are uploaded (one HEAD each first).

Reading (:mod:`aletheia.data.catalog`), getting a version onto disk
(:mod:`aletheia.data.getversion`), removing one (:mod:`aletheia.data.removal`),
manifests (:mod:`aletheia.data.manifests`), the ``files/`` index
(:mod:`aletheia.data.filesindex`) and lineage (:mod:`aletheia.data.lineage`)
live in their own modules; this one adds versions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aletheia.cloud import layout, limits
from aletheia.cloud.lazy import firestore, gexc
from aletheia.cloud.redact import redact_text
from aletheia.data import (
    addflow,
    blobrefs,
    getversion,
    parents,
    profilehtml,
    removal,
    repo_pin,
    versiondocs,
    workspace,
)
from aletheia.data.addrecords import Added
from aletheia.data.addresult import AddResult
from aletheia.data.blobstore import BlobInfo
from aletheia.data.cache import LinkMode, Verify
from aletheia.data.catalog import DatasetCatalog
from aletheia.data.filesindex import FILES_VERSION
from aletheia.data.getversion import DatasetHandle
from aletheia.data.hashing import StatKey, default_workers
from aletheia.data.manifests import FileEntry, diff_manifests, encode_with_digest
from aletheia.data.phases import PhaseTimes
from aletheia.data.profilehtml import VersionProfile
from aletheia.data.removal import RemoveResult
from aletheia.data.scan import scan_tree_stats
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConflictError, IntegrityError

#: Attempts at committing a version when concurrent adders race for the same id.
MAX_COMMIT_ATTEMPTS = 20


@dataclass
class _Plan:
    """What one add knows so far: its parent, its manifest once every file has a digest."""

    base: dict[str, Any] | None
    latest: dict[str, Any] | None
    stats_before: dict[str, int]
    parent_manifest: dict[str, FileEntry] = field(default_factory=dict)
    manifest: dict[str, FileEntry] = field(default_factory=dict)
    body: bytes = b""
    digest: str = ""
    #: The version holding exactly this data (parent or latest), if any: nothing to add.
    same: dict[str, Any] | None = None
    registered: set[str] = field(default_factory=set)
    sources: dict[str, Path] = field(default_factory=dict)
    #: Digests whose object this add created: the storage function analyses them next.
    created: set[str] = field(default_factory=set)
    #: Digests stored before without a file name, named by this add: analysed again next.
    named: set[str] = field(default_factory=set)
    hashed: int = 0
    uploaded: int = 0

    def settle(self, entries: list[FileEntry]) -> None:
        """Every file has its digest: build the manifest and compare it with parent and latest."""
        self.manifest = {e.path: e for e in entries}
        self.body, self.digest = encode_with_digest(entries)
        self.same = next(
            (
                d
                for d in (self.base, self.latest)
                if d is not None and d["manifest_sha256"] == self.digest
            ),
            None,
        )


class DatasetStore(DatasetCatalog):
    """Add, resolve, pull, diff and remove dataset versions of one project."""

    #: Phase times of the add in progress (reset by each ``add``).
    _seconds: dict[str, float]
    #: Thread-seconds of the add in progress, summed over its workers ("hash").
    _times: PhaseTimes

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
        derived: dict[str, Any] | None = None,
    ) -> AddResult:
        """Register the files under ``path`` as the next version of ``name``.

        The parent is ``parent`` if given, else the version the workspace was
        pulled from (its pull state), else the lock file's pin, else the latest
        version (:func:`aletheia.data.parents.choose_parent`). Data identical to the parent or
        to the latest version makes no new version. ``lock``: pin the result in the git
        repo's lock file (``None``: only when ``workdir``/cwd is inside a git
        repo; the CLI's default); a pinned ``path`` inside the repository is
        also recorded there and kept out of git (:mod:`aletheia.data.repo_pin`).
        ``derived``: fields naming the data this version was made from (e.g.
        ``sampled_from``, :mod:`aletheia.data.sample`), committed with the version
        and on the dataset document.
        """
        layout.dataset(self.project, name)  # validates the name before any I/O
        # Free text lands in the dataset document: bounded before any hashing or upload.
        desc = None if desc is None else limits.validate_text(desc, "dataset description")
        source = None if source is None else limits.validate_text(source, "dataset source")
        if created_by_run is not None:
            created_by_run = limits.validate_text(created_by_run, "created_by_run")
        started = time.perf_counter()
        self._seconds = {}
        self._times = PhaseTimes()
        times_before = self.blobs.times.snapshot()
        place = repo_pin.plan(self.workdir, path, lock)  # refusals before any hashing or upload
        self.blobs.require_bucket()  # a wrong bucket setting, before any document is written
        self.ensure_project()  # every add writes into it
        if source is not None:  # every viewer reads it: no credentials (aletheia/cloud/redact.py)
            source = redact_text(source)
        with self._phase("scan"):  # the walk, one stat per file and the memo's answers
            scanned = scan_tree_stats(path)
            files = [(rel, p) for rel, p, _ in scanned]
            stats = {p: StatKey.of(st) for _, p, st in scanned}
            memo = self.cache.index.lookup_many(stats.items())
        latest = self.latest_version(name)
        if latest is not None:
            self._repair_files_if_stale(name, latest)
        base, parent_from = parents.choose_parent(
            self.db, self.project, name, path, explicit=parent, latest=latest, workdir=self.workdir
        )
        plan = _Plan(base, latest, stats_before=self.blobs.stats.snapshot())
        if all(p in memo for _, p in files):  # nothing to read: maybe nothing to do at all
            plan.settle([FileEntry(rel, memo[p], stats[p].size) for rel, p in files])
        if plan.same is None:
            # What the parent holds is not uploaded again (the manifest is one small read).
            plan.parent_manifest = self.manifest_of(base, name) if base is not None else {}

            def after_hashing(entries: list[FileEntry]) -> None:
                # Uploads are still running: the registry entries go in meanwhile.
                plan.settle(entries)
                if plan.same is None:
                    with self._phase("documents"):
                        plan.registered = self._register(
                            name, plan.manifest, plan.parent_manifest, plan.digest, set()
                        )

            with self._phase("transfer"):
                stage = addflow.hash_and_upload(
                    files,
                    stats,
                    memo,
                    {e.sha256 for e in plan.parent_manifest.values()},
                    blobs=self.blobs,
                    index=self.cache.index,
                    reporter=self.reporter,
                    times=self._times,
                    hash_workers=default_workers(),
                    after_hashing=after_hashing,
                )
            plan.hashed, plan.sources, plan.uploaded, plan.created, plan.named = (
                stage.bytes_hashed,
                stage.sources,
                stage.uploaded,
                stage.created,
                stage.named,
            )
        manifest, digest = plan.manifest, plan.digest
        if plan.same is not None:
            result = self._unchanged(name, plan.same, manifest, plan.hashed, desc, source)
        else:
            result = self._add_version(
                name, plan, parent_from, path, desc, source, created_by_run, derived or {}
            )
        self._seconds.update(
            {k: round(v, 3) for k, v in self._times.snapshot().items()}
            | PhaseTimes.since(times_before, self.blobs.times.snapshot())
        )
        if result.created:  # an unchanged re-add reads nothing more
            # Imported here: it loads numpy, which an unchanged re-add never needs.
            from aletheia.stats import versioncheck, versionprofile

            # A file this add stored is not analysed yet, unless the function is idle: then
            # neither the profile nor the validation can be computed, and the function's
            # event for that file records them. A few reads say so, instead of reading
            # every file's record twice (10,000 for 10,000 new files).
            pending = versionprofile.has_pending(
                self.db, self.project, {d: d for d in plan.created}
            ) or versionprofile.still_nameless(self.db, self.project, plan.named)
            if not pending:
                versioncheck.after_commit(
                    self.db, self.project, name, result.version, self.manifest, self.file_profile
                )
        pinned_here = place is not None and place.rel is not None  # data living with git
        workspace.remember(
            path, self.project, name, result.version, digest, sorted(manifest), start=pinned_here
        )
        if self.target is not None:  # the next unchanged re-add is answered locally (quickadd)
            self.adds.record(
                self.target,
                self.project,
                name,
                Path(path).expanduser().resolve(),
                Added(result.version, digest, result.parent, result.file_count, result.total_bytes),
            )
        lock_file, rel, added = repo_pin.pin(place, self.project, name, result.version, digest)
        self._seconds["total"] = round(time.perf_counter() - started, 3)
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
        self,
        name: str,
        same: dict[str, Any],
        manifest: dict[str, FileEntry],
        hashed: int,
        desc: str | None,
        source: str | None,
    ) -> AddResult:
        # Description and source describe the dataset, not a version: new ones given with
        # unchanged data are recorded rather than dropped.
        described = {k: v for k, v in (("desc", desc), ("source", source)) if v is not None}
        if described:
            self.db.document(layout.dataset(self.project, name)).set(
                {**described, "updated_at": firestore.SERVER_TIMESTAMP}, merge=True
            )
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

    def _add_version(
        self,
        name: str,
        plan: _Plan,
        parent_from: str | None,
        path: Path,
        desc: str | None,
        source: str | None,
        created_by_run: str | None,
        derived: dict[str, Any],
    ) -> AddResult:
        """Store the manifest, commit the version, bring ``files/`` up to date."""
        manifest, sources, digest = plan.manifest, plan.sources, plan.digest
        base, latest = plan.base, plan.latest
        parent_manifest = plan.parent_manifest
        # The data's bytes: "uploaded N files, B" counts the files, not the manifest.
        data_uploaded = self.blobs.stats.snapshot()["bytes_uploaded"]
        with self._phase("documents"):
            self.blobs.put_bytes(plan.body, content_type="application/json")
            # Kept locally too: what reads it next on this machine (the version's profile
            # and validation after the commit, a pull, an rm) need not download it again.
            with self.cache.open_for_write(digest) as fh:
                fh.write(plan.body)
            registered = plan.registered or self._register(
                name, manifest, parent_manifest, digest, set()
            )
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
                derived,
            )
        uploaded = plan.uploaded
        hashed = plan.hashed
        self._register(name, manifest, parent_manifest, digest, registered)  # if the parent moved
        change = diff_manifests(parent_manifest, manifest)
        if parent is None or version != parent:
            with self._phase("documents"):
                # files/ shows the previous latest version, which need not be the parent.
                if previous is None:
                    shown: dict[str, FileEntry] = {}
                elif base is not None and previous["version"] == base["version"]:
                    shown = parent_manifest
                else:
                    shown = self.manifest_of(previous, name)
                self.index.sync(name, version, shown, manifest)
                self.index.mark(name, version)
        return AddResult(
            name,
            version,
            version != parent,
            parent,
            len(manifest),
            sum(e.size for e in manifest.values()),
            uploaded,
            data_uploaded - plan.stats_before["bytes_uploaded"],
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
        derived: dict[str, Any],
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
                    parent_manifest = self.manifest_of(base, name) if base else {}
                    self._upload_new(manifest, parent_manifest, sources)
            seq = max(used, int(latest["seq"]) if latest else 0) + 1
            version = f"v{seq}"
            parent = base["version"] if base else None
            record = versiondocs.version_record(
                version,
                seq,
                parent,
                parent_manifest,
                manifest,
                self.blobs.uri(digest),
                digest,
                path,
                created_by_run,
                derived,
            )
            location = f"gs://{self.blobs.bucket.name}/{self.project}/{layout.BLOB_PREFIX}"
            summary = versiondocs.dataset_fields(
                name, manifest, version, seq, location, path, desc, source, latest is None
            )
            summary.update(derived)
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

    def _repair_files_if_stale(self, name: str, latest: dict[str, Any]) -> None:
        """Bring ``files/`` to the latest version if an earlier add or rm stopped midway.

        Also covers concurrent adds, whose ``files/`` updates can interleave:
        whichever finished last set the mark, and any mismatch is fixed here.
        """
        if self.info(name).get(FILES_VERSION) == latest["version"]:
            return
        self.index.sync(
            name, latest["version"], self.index.shown(name), self.manifest_of(latest, name)
        )
        self.index.mark(name, latest["version"])

    # ------------------------------------------------------------------ get / remove

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
        """Resolve a version and (with ``download``) put it on disk (:func:`.getversion.get`)."""
        return getversion.get(
            self, name, version, download, to=to, link=link, verify=verify, lock=lock, force=force
        )

    def profile(self, name: str, version: str | None = None) -> VersionProfile:
        """A version's profile (default: the pinned, else the latest version); a notebook
        displays it as tables (:mod:`aletheia.data.profilehtml`)."""
        return profilehtml.profile(self, self.get(name, version, download=False))

    def remove_version(self, name: str, version: str, *, force: bool = False) -> RemoveResult:
        """Delete one version, and the blobs nothing else references (:mod:`.removal`)."""
        return removal.remove_version(self, name, version, force=force)
