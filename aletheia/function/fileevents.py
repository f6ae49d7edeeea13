"""What the storage function does with one finalized object.

Objects are content-addressed (``{project}/sha256/ab/cdef…``, see
:mod:`aletheia.cloud.layout`), so the registry document ``Projects/{p}/Files/{sha256}``
is keyed by the same digest and the same bytes are analysed once, however
often they are uploaded. Anything else in the bucket (samples the function
writes, temporary uploads, foreign files) is ignored, so the function never
triggers itself.

Life of a document: ``seen`` → ``processing`` (a lease, taken in a
transaction) → ``done`` | ``failed`` | ``unsupported``, each terminal status
with its reason. A redelivered event finds a terminal status and does
nothing; one that finds a live lease raises :class:`LeaseBusyError` (non-2xx, so
it is delivered again later); an expired lease (a crashed worker) is taken
over. An object whose name, content type and first four bytes already rule
out a table (an image, a model file) is written ``unsupported`` at once, in
one write, with no lease. Bad input always ends in a terminal status and a normal return, so
no event is redelivered forever; only transient infrastructure errors
propagate.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import clients, config, layout
from aletheia.cloud.transient import TRANSIENT as _TRANSIENT
from aletheia.data import blobstore
from aletheia.errors import AletheiaError
from aletheia.stats.columnstats import ProfileOptions
from aletheia.stats.formats import (
    Detected,
    ProfileError,
    UnsupportedFormatError,
    detect_format,
    looks_binary,
)
from aletheia.stats.profiling import Profile, profile
from aletheia.stats.rowlimit import RowTooLongError

log = logging.getLogger("aletheia.function.fileevents")

STATUS_SEEN = "seen"
STATUS_PROCESSING = "processing"
STATUS_DONE = "done"
STATUS_FAILED = "failed"
STATUS_UNSUPPORTED = "unsupported"
TERMINAL = frozenset({STATUS_DONE, STATUS_FAILED, STATUS_UNSUPPORTED})

#: Custom object metadata holding the file's original relative path (``train/part-0.csv.gz``).
PATH_METADATA = "aletheia-path"
#: Other metadata keys accepted for the same purpose (``BlobStore.upload_file`` writes its own).
PATH_METADATA_ALIASES = (blobstore.PATH_METADATA, "filename")
#: A worker's claim lasts this long; a longer-running (crashed) claim is taken over.
#: Above the function's 540 s timeout so a live worker is never overtaken.
LEASE_SECONDS = int(os.environ.get("ALETHEIA_LEASE_SECONDS", "600"))
#: Budget for the schema and statistics kept on the document (the rest goes to a blob).
DOC_BUDGET_BYTES = 200_000
DOC_MAX_COLUMNS = 100
_READ_CHUNK = 4 << 20
_SNIFF_BYTES = 64 << 10


class LeaseBusyError(AletheiaError):
    """Another worker holds a live lease on this file; the event should be delivered again."""


@functools.lru_cache(maxsize=1)
def _settings() -> config.Settings:
    return config.resolve()


@functools.lru_cache(maxsize=1)
def _db() -> firestore.Client:
    # One client per function instance, built from the instance's environment.
    return clients.firestore_client(_settings(), probe=False)


@functools.lru_cache(maxsize=1)
def _gcs() -> Any:
    return clients.storage_client(_settings(), probe=False)


def db() -> firestore.Client:
    """The function instance's Firestore client."""
    return _db()


def gcs() -> Any:
    """The function instance's Cloud Storage client."""
    return _gcs()


def bucket_name() -> str:
    """The bucket this function instance serves (setting ``bucket``)."""
    return _settings().bucket


def handle_finalized(
    obj: dict[str, Any],
    db: firestore.Client | None = None,
    gcs: Any = None,
    options: ProfileOptions | None = None,
) -> str | None:
    """Register and profile a finalized object; returns the Files doc path, or ``None``."""
    name = str(obj.get("name", ""))
    ref = layout.parse_blob_name(name)
    if ref is None:
        log.info("ignoring %s: not a content-addressed aletheia blob", name)
        return None
    db = db or _db()
    doc = db.document(layout.file(ref.project, ref.sha256))
    reason = _plainly_unsupported(obj, gcs or _gcs())
    if reason is not None:
        _record_unsupported(doc, obj, reason)
        return doc.path
    worker = uuid.uuid4().hex
    claim = _claim(db.transaction(), doc, _blob_fields(obj), worker)
    if claim in TERMINAL:
        return doc.path
    if claim == "busy":
        raise LeaseBusyError(f"{ref.sha256} is being processed", "it will be delivered again")
    try:
        result = _analyse(obj, ref, gcs or _gcs(), options or ProfileOptions())
    except _TRANSIENT as exc:
        # Give the lease back so the redelivery does not wait for it to expire.
        doc.update({"status": STATUS_SEEN, "last_error": _short(exc), "lease_until": None})
        raise
    except gexc.NotFound:
        result = {"status": STATUS_FAILED, "reason": "the object was deleted before it was read"}
    except Exception as exc:  # a bug must not become a redelivery loop
        log.exception("profiling %s failed", name)
        result = {"status": STATUS_FAILED, "reason": f"internal error: {_short(exc)}"}
    _finish(db.transaction(), doc, worker, result)
    if result.get("status") == STATUS_DONE:
        _validate_datasets(db, gcs or _gcs(), str(obj.get("bucket")), ref)
    return doc.path


def _plainly_unsupported(obj: dict[str, Any], gcs: Any) -> str | None:
    """Why the object cannot be profiled, if its name, type and magic bytes already say.

    Most blobs of a dataset of images or model files are not tables; deciding
    that from four bytes spares each of them the lease's two transactions.
    """
    blob = gcs.bucket(obj["bucket"]).blob(obj["name"])
    try:
        magic = blob.download_as_bytes(start=0, end=3, checksum=None)
        detect_format(original_path(obj), obj.get("contentType"), magic)
    except UnsupportedFormatError as exc:
        return str(exc)
    except (gexc.NotFound, gexc.RequestRangeNotSatisfiable):
        return None  # deleted meanwhile, or empty: the full path records which
    return None


def _record_unsupported(doc: Any, obj: dict[str, Any], reason: str) -> None:
    """One idempotent write: nothing is processed, so no lease is needed."""
    doc.set(
        {
            **_blob_fields(obj),
            "status": STATUS_UNSUPPORTED,
            "reason": reason,
            "attempts": firestore.Increment(1),
            "lease_until": None,
            "finished_at": firestore.SERVER_TIMESTAMP,
        },
        merge=True,
    )


def _validate_datasets(db: firestore.Client, gcs: Any, bucket: str, ref: layout.BlobRef) -> None:
    """Record the validation of the dataset versions these bytes complete, if all are profiled.

    Best effort: a validation problem is logged, never turned into a redelivery.
    """
    from aletheia.data import manifests
    from aletheia.stats import versioncheck  # datasets sits above this module

    store = blobstore.BlobStore(gcs, bucket, ref.project)

    def manifest(name: str, version: str) -> dict[str, Any]:
        return manifests.load_manifest(db, store, ref.project, name, version)

    try:
        versioncheck.for_file(db, ref.project, ref.sha256, manifest)
    except Exception:
        log.exception("validation of datasets holding %s failed", ref.sha256)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def original_path(obj: dict[str, Any]) -> str | None:
    """The file's original relative path, from the object's custom metadata."""
    meta = obj.get("metadata") or {}
    for key in (PATH_METADATA, *PATH_METADATA_ALIASES):
        if meta.get(key):
            return str(meta[key])
    return None


def _blob_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's metadata as typed fields the console shows readably."""
    return {
        "blob": f"gs://{obj.get('bucket')}/{obj.get('name')}",
        "size": int(obj.get("size") or 0),
        "crc32c": obj.get("crc32c"),
        "md5": obj.get("md5Hash"),
        "content_type": obj.get("contentType"),
        "path": original_path(obj),
        "generation": str(obj.get("generation", "")),
        "seen_at": firestore.SERVER_TIMESTAMP,
    }


# --------------------------------------------------------------------------- the lease


@firestore.transactional
def _claim(tx: firestore.Transaction, doc: Any, fields: dict[str, Any], worker: str) -> str:
    """``seen``/absent/expired → ``processing`` for ``worker``; else the status found."""
    snap = doc.get(transaction=tx)
    data = snap.to_dict() or {} if snap.exists else {}
    status = data.get("status")
    now = datetime.now(timezone.utc)
    if status in TERMINAL:
        return str(status)
    lease = data.get("lease_until")
    if status == STATUS_PROCESSING and lease is not None and lease > now:
        return "busy"
    update = {
        **fields,
        "status": STATUS_PROCESSING,
        "worker": worker,
        "lease_until": now + timedelta(seconds=LEASE_SECONDS),
        "attempts": int(data.get("attempts") or 0) + 1,
        "started_at": now,
    }
    if not snap.exists:
        update["created_at"] = firestore.SERVER_TIMESTAMP
    tx.set(doc, update, merge=True)
    return "claimed"


@firestore.transactional
def _finish(tx: firestore.Transaction, doc: Any, worker: str, result: dict[str, Any]) -> None:
    """Write the result unless another worker took the lease over meanwhile."""
    snap = doc.get(transaction=tx)
    data = snap.to_dict() or {}
    if data.get("worker") != worker or data.get("status") in TERMINAL:
        log.warning("lease on %s was taken over; dropping this result", doc.path)
        return
    tx.set(
        doc,
        {**result, "lease_until": None, "finished_at": firestore.SERVER_TIMESTAMP},
        merge=True,
    )


# --------------------------------------------------------------------------- the analysis


def _analyse(obj: dict[str, Any], ref: layout.BlobRef, gcs: Any, opts: ProfileOptions) -> dict:
    """Profile the object; a dict of fields for the document (terminal status included)."""
    started = time.monotonic()
    source = _Source(gcs.bucket(obj["bucket"]).blob(obj["name"]), ref.sha256)
    head = source.head()
    try:
        detected = detect_format(original_path(obj), obj.get("contentType"), head)
        _check_text(source, detected)
        result = profile(source.open, detected, opts)
        source.verify()
    except UnsupportedFormatError as exc:
        return {"status": STATUS_UNSUPPORTED, "reason": str(exc)}
    except (ProfileError, RowTooLongError) as exc:
        return {"status": STATUS_FAILED, "reason": str(exc)}
    elapsed = time.monotonic() - started
    fields = _result_fields(result, ref, gcs.bucket(obj["bucket"]))
    fields["timings"] = {
        "total_s": round(elapsed, 3),
        "bytes_read": source.bytes_read,
        "mb_per_s": round(source.bytes_read / 1e6 / elapsed, 2) if elapsed else None,
    }
    return fields


def _check_text(source: _Source, detected: Detected) -> None:
    if detected.format == "parquet":
        return
    head = source.head(decompress=detected.gzip)
    if not head:
        raise ProfileError("the file is empty")
    if looks_binary(head):
        raise ProfileError(
            f"binary content, not {detected.format.upper()} text",
            "upload the file with its real name/extension",
        )


def _result_fields(result: Profile, ref: layout.BlobRef, bucket: Any) -> dict[str, Any]:
    """Document fields: schema+stats within budget; full profile and sample as blobs."""
    full = result.to_dict()
    sample_name = layout.sample_blob_name(ref.project, ref.sha256)
    bucket.blob(sample_name).upload_from_string(
        result.sample_jsonl(), content_type="application/x-ndjson"
    )
    profile_name = layout.profile_blob_name(ref.project, ref.sha256)
    bucket.blob(profile_name).upload_from_string(
        json.dumps(full, ensure_ascii=False).encode(), content_type="application/json"
    )
    kept = _columns_within_budget(full["stats"])
    truncated = kept < result.columns_total
    return {
        "status": STATUS_DONE,
        "reason": "; ".join(result.warnings) or None,
        "partial": result.partial,
        "warnings": result.warnings[:20],
        "notes": result.notes[:20],
        "format": result.format,
        "gzip": result.gzip,
        "rows": result.rows,
        "schema": {
            "columns": full["schema"][:kept],
            "columns_total": result.columns_total,
            "columns_in_doc": kept,
            "truncated": truncated,
        },
        "stats": {"columns": full["stats"][:kept]},
        "profile": f"gs://{bucket.name}/{profile_name}",
        "sample": {"blob": f"gs://{bucket.name}/{sample_name}", "rows": len(result.sample)},
    }


def _columns_within_budget(stats: list[dict[str, Any]]) -> int:
    """How many leading columns fit the document budget (schema and stats both count)."""
    used = 0
    for i, column in enumerate(stats[:DOC_MAX_COLUMNS]):
        used += 2 * len(json.dumps(column, default=str))
        if used > DOC_BUDGET_BYTES:
            return i
    return min(len(stats), DOC_MAX_COLUMNS)


@dataclass
class _Source:
    """Opens the object for reading, hashing what is read in order to verify its name."""

    blob: Any
    sha256: str
    bytes_read: int = 0
    _verified: bool = False

    def open(self) -> IO[bytes]:
        reader = _HashingReader(self.blob.open("rb", chunk_size=_READ_CHUNK), self)
        return reader  # type: ignore[return-value]

    def head(self, decompress: bool = False) -> bytes:
        """The first bytes of the object (decompressed when ``decompress``)."""
        import gzip

        with self.blob.open("rb", chunk_size=_SNIFF_BYTES) as raw:
            if not decompress:
                return bytes(raw.read(_SNIFF_BYTES))
            try:
                return gzip.GzipFile(fileobj=raw).read(_SNIFF_BYTES)
            except (OSError, EOFError) as exc:
                raise ProfileError(f"corrupt gzip stream: {exc}") from exc

    def completed(self, digest: str) -> None:
        if digest != self.sha256:
            raise ProfileError(
                f"content does not match its name (sha256 {digest})", "upload the file again"
            )
        self._verified = True

    def verify(self) -> None:
        """Hash the whole object unless a sequential read already did."""
        if self._verified:
            return
        reader = self.open()
        while reader.read(_READ_CHUNK):
            pass
        reader.close()
        if not self._verified:
            raise ProfileError("could not verify the content's sha256")


class _HashingReader(io.RawIOBase):
    """A file object over a blob reader that hashes bytes read front to back."""

    def __init__(self, raw: Any, source: _Source) -> None:
        self.raw = raw
        self.source = source
        self.digest = hashlib.sha256()
        self.hashed = 0  # bytes hashed so far, all from offset 0
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._account(data)
        return n

    def read(self, size: int = -1) -> bytes:
        data = bytes(self.raw.read(size))
        self._account(data)
        return data

    def _account(self, data: bytes) -> None:
        if self.pos == self.hashed:
            self.digest.update(data)
            self.hashed += len(data)
            if not data:
                self.source.completed(self.digest.hexdigest())
        self.pos += len(data)
        self.source.bytes_read += len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.raw.seek(offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.raw.close()
        super().close()
