"""Artifacts of an experiment: files or directories runs produce (models, plots, logs), versioned.

Every save is a new version, never an overwrite::

    Experiments/{e}/Artifacts/{name}     name, kind, is_dir, latest_version ("v3"),
                                         version_count, run (of the latest), file_count, ...
      Versions/{v}                       seq, run, kind, is_dir, uploaded, manifest_sha256,
                                         manifest_blob, file_count, total_bytes, uri, created_at

* Version ids are ``v1``, ``v2``, … per artifact, in commit order; each names
  the run that saved it (``None`` for a save outside a run), and the run
  document lists what it saved (``artifacts: [{name, version}]``).
* A version's files are a manifest, content-addressed exactly like a dataset
  version's (:func:`aletheia.data.manifests.encode_manifest`), so the version
  document stays small whatever the file count. Bytes are the project's
  content-addressed blobs: a model saved twice is stored once.
* The version document is the commit point: ``create`` of ``Versions/v{n}``
  together with the artifact document in one batch, after every blob and the
  manifest are in the bucket and registered in :mod:`aletheia.data.blobrefs`.
  Concurrent savers race on the ``create``; the loser takes the next number.
* A remote artifact (``is_local=False``) records its URI and uploads nothing;
  ``upload_file=False`` records the files' digests (and the manifest) without
  their bytes.
* Artifacts saved before versions existed (a document with an integer
  ``latest_version`` and ``files/`` entries) read as their one version, and
  become a version document on the next save (:mod:`aletheia.data.artifacts_legacy`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout, limits, queries
from aletheia.cloud.redact import redact_url
from aletheia.data import artifacts_legacy, blobrefs, versiondocs
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LinkMode, LocalCache, Verify, safe_join
from aletheia.data.hashing import sha256_files
from aletheia.data.manifests import FileEntry, decode_manifest, encode_manifest
from aletheia.data.projectstore import ProjectFileStore
from aletheia.data.scan import scan_tree
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConflictError, NotFoundError, ValidationError

#: Attempts at committing a version when concurrent savers race for the same id.
MAX_COMMIT_ATTEMPTS = 20


@dataclass(frozen=True)
class ArtifactVersion:
    """One saved version of an artifact: who saved it, its files, and how to fetch them."""

    project: str
    experiment: str
    name: str
    version: str
    run: str | None
    kind: str
    is_dir: bool
    uploaded: bool
    files: list[FileEntry]
    uri: str | None = None
    manifest_sha256: str | None = None
    created_at: Any = None
    _store: ArtifactStore | None = field(default=None, repr=False, compare=False)

    def download(
        self, to: str | Path | None = None, *, verify: Verify = "stat", link: LinkMode | None = None
    ) -> Path:
        """Put the files under ``to`` (default: a read-only checkout in the cache); returns it.

        Bytes come through the local cache and are verified against their
        sha256 (``verify="full"`` re-hashes cached copies too).
        """
        if self._store is None:
            raise ValidationError("this artifact version is not attached to a store")
        return self._store.download(
            self, None if to is None else Path(to), verify=verify, link=link
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (files as ``{path, sha256, size}``)."""
        return {
            "project": self.project,
            "experiment": self.experiment,
            "name": self.name,
            "version": self.version,
            "run": self.run,
            "kind": self.kind,
            "is_dir": self.is_dir,
            "uploaded": self.uploaded,
            "uri": self.uri,
            "manifest_sha256": self.manifest_sha256,
            "created_at": self.created_at,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


class ArtifactStore(ProjectFileStore):
    """Save, list, resolve and download artifact versions of one project.

    Built like every project file store (:class:`~aletheia.data.projectstore.ProjectFileStore`);
    without a cache it still saves and lists, and downloads need one.
    """

    # ------------------------------------------------------------------ save

    def add(
        self,
        experiment: str,
        name: str,
        path: str | Path,
        *,
        run_id: str | None,
        is_local: bool = True,
        is_dir: bool = False,
        upload_file: bool = True,
        copy_to_cache: bool = False,
    ) -> dict[str, Any]:
        """Save ``path`` (a file, a directory, or with ``is_local=False`` a URI) as a new version.

        Returns the version's fields with ``files`` (``path, sha256, size, blob``).
        With ``copy_to_cache`` the bytes are copied into the cache while hashed
        and uploaded from there, so what is uploaded is exactly what was hashed.
        """
        layout.artifact(self.project, experiment, name)  # validates the ids before any I/O
        if run_id is not None:
            layout.validate_id(run_id, "run id")
        self.ensure_project()  # every add writes into it
        if not is_local:
            uri = limits.validate_text(path, "remote artifact URI")
            return self._add_remote(experiment, name, uri, run_id, is_dir)
        entries, sources = self._hash(Path(path), is_dir, copy_to_cache)
        body = encode_manifest(entries)
        if upload_file:
            unique = list({e.sha256: e for e in entries}.values())
            total = sum(e.size for e in unique)
            with self.reporter.phase("uploading", total) as advance:
                run_parallel(
                    lambda e: self.blobs.upload_file(
                        sources[e.sha256], e.sha256, e.size, on_bytes=advance, relpath=e.path
                    ),
                    unique,
                )
        manifest = self.blobs.put_bytes(body, content_type="application/json")
        held = [manifest.sha256, *(e.sha256 for e in entries if upload_file)]
        # Registered before the commit: a crash in between leaves an extra entry, never a hole.
        blobrefs.record(
            self.db, self.project, blobrefs.artifact_references(experiment, name, held, run_id)
        )
        fields = {
            "kind": "dir" if is_dir else "file",
            "is_dir": is_dir,
            "uploaded": upload_file,
            "uri": None,
            "manifest_sha256": manifest.sha256,
            "manifest_blob": manifest.uri,
            "file_count": len(entries),
            "total_bytes": sum(e.size for e in entries),
            "source_path": versiondocs.source_path(path),
        }
        version = self._commit(experiment, name, fields, run_id)
        files = [
            {
                "path": e.path,
                "sha256": e.sha256,
                "size": e.size,
                "blob": self.blobs.uri(e.sha256) if upload_file else None,
            }
            for e in entries
        ]
        return {**fields, "name": name, "version": version, "run": run_id, "files": files}

    def add_stored(
        self, experiment: str, name: str, entries: list[FileEntry], *, run_id: str | None
    ) -> ArtifactVersion:
        """Files already in the project's bucket (``entries``) as a version of artifact ``name``.

        Nothing is uploaded: every blob must exist. When the latest version
        ``run_id`` saved has exactly these files, that version is returned
        rather than a copy of it.
        """
        layout.artifact(self.project, experiment, name)
        if not entries:
            raise ValidationError(f"artifact {name!r}: no files", "name a path that holds files")
        body = encode_manifest(entries)
        digest = hashlib.sha256(body).hexdigest()
        try:
            latest = self.get(experiment, name, run=run_id)
        except NotFoundError:
            latest = None
        if latest is not None and latest.manifest_sha256 == digest:
            return latest
        unique = list({e.sha256: e for e in entries}.values())
        present = run_parallel(lambda e: self.blobs.exists(e.sha256), unique)
        missing = [e.path for e, ok in zip(unique, present, strict=True) if not ok]
        if missing:
            raise NotFoundError(
                f"artifact {name!r}: the bytes of {missing[:3]} are not in the project's bucket",
                "log the files again",
            )
        self.ensure_project()
        manifest = self.blobs.put_bytes(body, content_type="application/json")
        held = [manifest.sha256, *(e.sha256 for e in entries)]
        blobrefs.record(
            self.db, self.project, blobrefs.artifact_references(experiment, name, held, run_id)
        )
        fields = {
            "kind": "dir",
            "is_dir": True,
            "uploaded": True,
            "uri": None,
            "manifest_sha256": manifest.sha256,
            "manifest_blob": manifest.uri,
            "file_count": len(entries),
            "total_bytes": sum(e.size for e in entries),
        }
        version = self._commit(experiment, name, fields, run_id)
        return self.get(experiment, name, version)

    def _hash(
        self, path: Path, is_dir: bool, copy_to_cache: bool
    ) -> tuple[list[FileEntry], dict[str, Path]]:
        if path.is_dir() and not is_dir:
            raise ValidationError(
                f"{path} is a directory", "pass is_dir=True to record a directory"
            )
        if is_dir and path.exists() and not path.is_dir():
            raise ValidationError(
                f"{path} is not a directory", "pass is_dir=False for a single file"
            )
        files = scan_tree(path)
        cache = self.cache
        if copy_to_cache and cache is not None:
            digests = run_parallel(lambda item: cache.insert_file(item[1]), files)
            entries = [FileEntry(r, s, n) for (r, _), (s, n) in zip(files, digests, strict=True)]
            return entries, {e.sha256: cache.path(e.sha256) for e in entries}
        digests = sha256_files([p for _, p in files])
        entries = [FileEntry(r, s, n) for (r, _), (s, n) in zip(files, digests, strict=True)]
        return entries, {e.sha256: p for e, (_, p) in zip(entries, files, strict=True)}

    def _add_remote(
        self, experiment: str, name: str, uri: str, run_id: str | None, is_dir: bool
    ) -> dict[str, Any]:
        if "://" not in uri:
            raise ValidationError(
                f"remote artifact {uri!r} is not a URI", "pass gs://…, s3://… or https://…"
            )
        fields = {
            "kind": "remote",
            "is_dir": is_dir,
            "uploaded": False,
            "uri": redact_url(uri),  # every viewer reads it: no credentials
            "manifest_sha256": None,
            "manifest_blob": None,
            "file_count": None,
            "total_bytes": None,
        }
        version = self._commit(experiment, name, fields, run_id)
        return {**fields, "name": name, "version": version, "run": run_id, "files": []}

    def _commit(
        self, experiment: str, name: str, fields: dict[str, Any], run_id: str | None
    ) -> str:
        """Create ``Versions/v{n}`` and update the artifact document in one batch; returns v{n}.

        ``version_count`` on the artifact document is written by the same
        batch as each version, so reading it gives the next free number
        unless a concurrent saver commits first: then ``create`` fails, the
        whole batch with it, and the next number is tried.
        """
        doc = self.db.document(layout.artifact(self.project, experiment, name))
        tried = 0
        for _ in range(MAX_COMMIT_ATTEMPTS):
            snap = doc.get()
            current = (snap.to_dict() or {}) if snap.exists else {}
            if artifacts_legacy.is_legacy(current):  # else this save would hide it
                artifacts_legacy.migrate(self.db, self.blobs, self.project, experiment, name)
                continue
            seq = max(int(current.get("version_count") or 0), tried) + 1
            version = f"v{seq}"
            record = {
                **fields,
                "version": version,
                "seq": seq,
                "run": run_id,
                "artifact": name,
                "experiment": experiment,
                "project": self.project,
                "created_at": firestore.SERVER_TIMESTAMP,
            }
            # Every field is bounded by construction; checked so a refusal is never a traceback.
            limits.validate_document(record, "artifact version", "save it under a shorter path")
            batch = self.db.batch()
            batch.create(
                self.db.document(layout.artifact_version(self.project, experiment, name, version)),
                record,
            )
            summary = {
                k: fields[k]
                for k in ("kind", "is_dir", "uploaded", "uri", "file_count", "total_bytes")
            }
            summary.update(
                name=name,
                latest_version=version,
                version_count=seq,
                run=run_id,
                updated_at=firestore.SERVER_TIMESTAMP,
            )
            if not snap.exists:
                summary["created_at"] = firestore.SERVER_TIMESTAMP
            batch.set(doc, summary, merge=True)
            try:
                batch.commit()
                return version
            except (gexc.AlreadyExists, gexc.Conflict):
                tried = seq  # another saver took this number
        raise ConflictError(
            f"could not commit a version of artifact {name!r}: too many concurrent saves",
            "save it again",
        )

    # ------------------------------------------------------------------ read

    def list_artifacts(self, experiment: str) -> list[dict[str, Any]]:
        """Every artifact document of ``experiment``, by name."""
        docs = self.db.collection(layout.artifacts(self.project, experiment)).stream()
        rows = [{**(s.to_dict() or {}), "name": s.id} for s in docs]
        for row in rows:
            if artifacts_legacy.is_legacy(row):
                row.update(version_count=1, latest_version=artifacts_legacy.version_id(row))
        return sorted(rows, key=lambda d: str(d["name"]))

    def versions(self, experiment: str, name: str) -> list[dict[str, Any]]:
        """Every version document of artifact ``name``, oldest first."""
        query = queries.artifact_versions_newest_first(self.db, self.project, experiment, name)
        docs = [s.to_dict() or {} for s in query.stream()]
        if not docs:
            legacy = artifacts_legacy.read(self.db, self.project, experiment, name)
            return [legacy] if legacy else []
        return sorted(docs, key=lambda d: int(d.get("seq", 0)))

    def files_by_run(self, experiment: str) -> dict[str, list[tuple[str, str]]]:
        """``{run: [(name/path, sha256)]}``: the uploaded files of every version a run saved."""
        by_run: dict[str, list[tuple[str, str]]] = {}
        for art in self.list_artifacts(experiment):
            name = str(art["name"])
            for doc in self.versions(experiment, name):
                if (
                    not doc.get("run")
                    or not doc.get("uploaded", True)
                    or doc.get("kind") == "remote"
                ):
                    continue
                by_run.setdefault(str(doc["run"]), []).extend(
                    (f"{name}/{f.path}", f.sha256) for f in self._files(doc)
                )
        return by_run

    def get(
        self, experiment: str, name: str, version: str | None = None, *, run: str | None = None
    ) -> ArtifactVersion:
        """Version ``version`` of artifact ``name`` (default: the latest; with ``run``, the
        latest that run saved). With both, the version must be one ``run`` saved."""
        layout.artifact(self.project, experiment, name)
        if version is not None:
            found = self._version_doc(experiment, name, version)
        else:
            found = self._latest(experiment, name, run)
        if run is not None and found.get("run") != run:
            raise NotFoundError(
                f"artifact {name!r} {found.get('version')} was saved by run {found.get('run')}, "
                f"not by run {run}",
                f"see `aletheia artifacts versions {name} -e {experiment}`",
            )
        return self._version(experiment, name, found)

    def _latest(self, experiment: str, name: str, run: str | None) -> dict[str, Any]:
        if run is None:
            query = queries.artifact_versions_newest_first(self.db, self.project, experiment, name)
        else:
            query = queries.artifact_versions_of_run(self.db, self.project, experiment, name, run)
        for snap in query.limit(1).stream():
            return snap.to_dict() or {}
        legacy = artifacts_legacy.read(self.db, self.project, experiment, name)
        if legacy is not None and (run is None or legacy["run"] == run):
            return legacy
        by = f" saved by run {run}" if run is not None else ""
        raise NotFoundError(
            f"no artifact {name!r}{by} in experiment {experiment!r} of project {self.project!r}",
            f"see `aletheia artifacts list -e {experiment}`",
        )

    def _version_doc(self, experiment: str, name: str, version: str) -> dict[str, Any]:
        path = layout.artifact_version(self.project, experiment, name, version)
        snap = self.db.document(path).get()
        if snap.exists:
            return snap.to_dict() or {}
        legacy = artifacts_legacy.read(self.db, self.project, experiment, name)
        if legacy is not None and legacy["version"] == version:
            return legacy
        raise NotFoundError(
            f"artifact {name!r} of experiment {experiment!r} has no version {version!r}",
            f"see `aletheia artifacts versions {name} -e {experiment}`",
        )

    def _version(self, experiment: str, name: str, doc: dict[str, Any]) -> ArtifactVersion:
        digest = doc.get("manifest_sha256")
        files = self._files(doc)
        return ArtifactVersion(
            self.project,
            experiment,
            name,
            str(doc["version"]),
            doc.get("run"),
            str(doc.get("kind", "file")),
            bool(doc.get("is_dir")),
            bool(doc.get("uploaded", True)),
            files,
            doc.get("uri"),
            digest,
            doc.get("created_at"),
            self,
        )

    def _files(self, doc: dict[str, Any]) -> list[FileEntry]:
        """The files of a version document, by path (from its manifest, if it has one)."""
        digest = doc.get("manifest_sha256")
        files = self._manifest(digest).values() if digest else doc.get("legacy_files") or []
        return sorted(files, key=lambda e: e.path)

    def _manifest(self, digest: str) -> dict[str, FileEntry]:
        if self.cache is not None and self.cache.has(digest):
            return decode_manifest(self.cache.path(digest).read_bytes())
        data = self.blobs.get_bytes(digest)  # verified against its digest
        if self.cache is not None:
            with self.cache.open_for_write(digest) as fh:
                fh.write(data)
        return decode_manifest(data)

    # ------------------------------------------------------------------ download

    def download(
        self,
        av: ArtifactVersion,
        to: Path | None = None,
        *,
        verify: Verify = "stat",
        link: LinkMode | None = None,
    ) -> Path:
        """Fetch ``av``'s files into the cache (verified) and place them under ``to``."""
        label = f"artifact {av.name!r} {av.version} of experiment {av.experiment!r}"
        if av.kind == "remote":
            raise ValidationError(f"{label} is remote: {av.uri}", "fetch it from there")
        if not av.uploaded:
            raise NotFoundError(
                f"{label} was saved with upload_file=False: its bytes were never uploaded",
                "save it again with upload_file=True",
            )
        cache = self.cache
        if cache is None:
            raise ValidationError(
                "downloading an artifact needs a local cache", "pass a LocalCache"
            )
        unique = {e.sha256: e for e in av.files}
        missing = [e for e in unique.values() if not cache.has(e.sha256, verify=verify)]
        with self.reporter.phase("downloading", sum(e.size for e in missing)) as advance:

            def one(e: FileEntry) -> None:
                with cache.open_for_write(e.sha256) as fh:  # verifies the sha256
                    self.blobs.download_to(e.sha256, fh, on_bytes=advance)

            run_parallel(one, missing)
        if to is None:
            root = cache.root / "checkouts" / self.project / "artifacts" / av.experiment
            root = root / av.name / av.version
            mode: LinkMode = link or "hardlink"
        else:
            root, mode = Path(to).expanduser().resolve(), link or "copy"
        root.mkdir(parents=True, exist_ok=True)
        for e in av.files:
            cache.materialize(e.sha256, safe_join(root, e.path), mode)
        return root


def add_artifact(
    db: firestore.Client,
    blobstore: BlobStore,
    project: str,
    experiment: str,
    name: str,
    path: str | Path,
    *,
    run_id: str | None,
    is_local: bool = True,
    is_dir: bool = False,
    upload_file: bool = True,
    cache: LocalCache | None = None,
) -> dict[str, Any]:
    """Save artifact ``name`` (a file, a directory or a remote URI) as a new version.

    With ``upload_file=False`` the files are hashed and recorded but not
    uploaded (``blob`` is ``None``). With a ``cache`` the bytes are copied
    into it while hashed and uploaded from there. Returns the version's
    fields (``version``, ``run``, ``kind`` …) with its ``files``.
    """
    store = ArtifactStore(db, blobstore, cache, project)
    return store.add(
        experiment,
        name,
        path,
        run_id=run_id,
        is_local=is_local,
        is_dir=is_dir,
        upload_file=upload_file,
        copy_to_cache=cache is not None,
    )
