"""Artifacts of an experiment: files or directories a run produced (models, plots, logs).

``Experiments/{e}/Artifacts/{name}`` holds ``kind`` (``file``, ``dir`` or
``remote``), ``is_dir``, ``latest_version`` (bumped on every add), the
``run`` that produced the latest version, file count and bytes;
``files/{path}`` holds one entry per file (``path``, ``sha256``, ``size``,
``blob``, ``run``). Bytes go to the same content-addressed blobs as datasets,
so a model saved twice is stored once. A remote artifact (``is_local=False``)
records its URI and uploads nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.cloud import firestore

from aletheia import layout
from aletheia.blobstore import BlobStore
from aletheia.cache import LocalCache
from aletheia.datasets import BATCH_SIZE, FileEntry, scan_tree
from aletheia.errors import ValidationError
from aletheia.hashing import sha256_files
from aletheia.transfer import run_parallel


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
    """Record artifact ``name`` (a file, a directory or a remote URI) and upload its bytes.

    With ``upload_file=False`` the files are hashed and recorded but not
    uploaded (``blob`` is ``None``). With a ``cache`` the bytes are copied
    into it while hashed and uploaded from there, so what is uploaded is
    exactly what was hashed. Returns the artifact document with its ``files``.
    """
    doc_path = layout.artifact(project, experiment, name)  # validates the ids
    if run_id is not None:
        layout.validate_id(run_id, "run id")
    if not is_local:
        return _add_remote(db, project, experiment, name, str(path), run_id, is_dir)
    entries, sources = _hash(Path(path), is_dir, cache)
    blobs: dict[str, str | None] = {e.sha256: None for e in entries}
    if upload_file:
        unique = {e.sha256: e for e in entries}
        infos = run_parallel(
            lambda e: blobstore.upload_file(sources[e.sha256], e.sha256, e.size),
            list(unique.values()),
        )
        blobs.update({i.sha256: i.uri for i in infos})
    files = [
        {"path": e.path, "sha256": e.sha256, "size": e.size, "blob": blobs[e.sha256]}
        for e in entries
    ]
    fields = {
        "name": name,
        "kind": "dir" if is_dir else "file",
        "is_dir": is_dir,
        "uploaded": upload_file,
        "file_count": len(files),
        "total_bytes": sum(e.size for e in entries),
    }
    return _record(db, project, experiment, name, doc_path, fields, files, run_id)


def _hash(
    path: Path, is_dir: bool, cache: LocalCache | None
) -> tuple[list[FileEntry], dict[str, Path]]:
    if path.is_dir() and not is_dir:
        raise ValidationError(f"{path} is a directory", "pass is_dir=True to record a directory")
    if is_dir and path.exists() and not path.is_dir():
        raise ValidationError(f"{path} is not a directory", "pass is_dir=False for a single file")
    files = scan_tree(path)
    if cache is not None:
        digests = run_parallel(lambda item: cache.insert_file(item[1]), files)
        entries = [FileEntry(rel, s, n) for (rel, _), (s, n) in zip(files, digests, strict=True)]
        return entries, {e.sha256: cache.path(e.sha256) for e in entries}
    digests = sha256_files([p for _, p in files])
    entries = [FileEntry(rel, s, n) for (rel, _), (s, n) in zip(files, digests, strict=True)]
    return entries, {e.sha256: p for e, (_, p) in zip(entries, files, strict=True)}


def _add_remote(
    db: firestore.Client,
    project: str,
    experiment: str,
    name: str,
    uri: str,
    run_id: str | None,
    is_dir: bool,
) -> dict[str, Any]:
    if "://" not in uri:
        raise ValidationError(
            f"remote artifact {uri!r} is not a URI", "pass gs://…, s3://… or https://…"
        )
    leaf = uri.rstrip("/").rsplit("/", 1)[-1] or "artifact"
    fields = {"name": name, "kind": "remote", "is_dir": is_dir, "uri": uri, "uploaded": False}
    files = [{"path": leaf, "sha256": None, "size": None, "blob": uri}]
    doc_path = layout.artifact(project, experiment, name)
    return _record(db, project, experiment, name, doc_path, fields, files, run_id)


def _record(
    db: firestore.Client,
    project: str,
    experiment: str,
    name: str,
    doc_path: str,
    fields: dict[str, Any],
    files: list[dict[str, Any]],
    run_id: str | None,
) -> dict[str, Any]:
    """Write the artifact document and its ``files/``; entries of a previous version go."""
    doc = db.document(doc_path)
    files_col = db.collection(layout.artifact_files(project, experiment, name))
    existing = {s.id for s in files_col.stream()}
    extra = {"run": run_id, "project": project, "experiment": experiment, "artifact": name}
    writes: list[tuple[Any, dict[str, Any] | None]] = []
    for f in files:
        ref = db.document(layout.artifact_file(project, experiment, name, f["path"]))
        existing.discard(ref.id)
        writes.append((ref, {**f, **extra, "kind": "artifact"}))
    writes += [(files_col.document(stale), None) for stale in sorted(existing)]
    for start in range(0, len(writes), BATCH_SIZE):
        batch = db.batch()
        for ref, data in writes[start : start + BATCH_SIZE]:
            if data is None:
                batch.delete(ref)
            else:
                batch.set(ref, data)
        batch.commit()
    # The artifact document last: it announces a complete version.
    doc.set(
        {
            **fields,
            "run": run_id,
            "latest_version": firestore.Increment(1),
            "updated_at": firestore.SERVER_TIMESTAMP,
        },
        merge=True,
    )
    return {**(doc.get().to_dict() or {}), "files": files}
