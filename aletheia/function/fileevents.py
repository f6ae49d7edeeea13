"""What the storage function does with one finalized object.

Objects are content-addressed (``{project}/sha256/ab/cdef…``, see
:mod:`aletheia.cloud.layout`), so the registry document ``Projects/{p}/Files/{sha256}``
is keyed by the same digest and the same bytes are analysed once, however
often they are uploaded. Anything else in the bucket (samples the function
writes, temporary uploads, foreign files) is ignored, so the function never
triggers itself.

Life of a document: ``seen`` → ``processing`` (a lease, taken in a
transaction: :mod:`aletheia.function.filelease`) → ``done`` | ``failed`` |
``unsupported`` | ``deferred``, each terminal status with its reason. A file
larger than one invocation can profile within its timeout
(:func:`aletheia.function.filestatus.max_bytes`) is ``deferred`` under the
lease, not attempted: its hint names the Spark command that profiles it,
instead of a timeout, a stale lease and a sweep retrying it forever. A
redelivered event finds a terminal status and does nothing; one that finds a
live lease raises :class:`LeaseBusyError` (non-2xx, so it is delivered again
later); an expired lease (a crashed worker) is taken over. Nothing is written
into a project these credentials may not write into
(:mod:`aletheia.function.tenancy`): such an event is logged as an error and
dropped. An object whose name, content type and first four bytes already rule
out a table (an image, a model file) is written ``unsupported`` at once, in
one write, with no lease. Bad input always ends in a terminal status and a
normal return, so no event is redelivered forever; only transient
infrastructure errors propagate.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.cloud.transient import TRANSIENT as _TRANSIENT
from aletheia.data import blobstore
from aletheia.errors import AletheiaError
from aletheia.function import analysis, filelease, filestatus, instance, tenancy
from aletheia.function.filestatus import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_SEEN,
    STATUS_UNSUPPORTED,
)
from aletheia.stats.formats import (
    UnsupportedFormatError,
    detect_format,
)
from aletheia.stats.options import ProfileOptions

log = logging.getLogger("aletheia.function.fileevents")

#: A worker's claim lasts this long; a longer-running (crashed) claim is taken over.
#: Above the function's 540 s timeout so a live worker is never overtaken.
LEASE_SECONDS = int(os.environ.get("ALETHEIA_LEASE_SECONDS", "600"))


class LeaseBusyError(AletheiaError):
    """Another worker holds a live lease on this file; the event should be delivered again."""


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
    if internal(obj):
        log.info("ignoring %s: aletheia's own bytes (a manifest, diff or snapshot)", name)
        return None
    db = db or instance.db()
    refused = tenancy.refusal(db, ref.project, instance.settings().owner)
    if refused is not None:  # a normal return: the same event would be refused again
        log.error("refusing to profile %s: %s; nothing was recorded for it", name, refused)
        return None
    doc = db.document(layout.file(ref.project, ref.sha256))
    project_doc = db.document(layout.project(ref.project))
    reason = _plainly_unsupported(obj, gcs or instance.gcs())
    if reason is not None:
        if not _record_unsupported(db.transaction(), doc, project_doc, obj, reason):
            log.error("dropping %s: project %r was deleted meanwhile", name, ref.project)
            return None
        # It may be the last file of a version: that completes the version too.
        validate_datasets(db, gcs or instance.gcs(), str(obj.get("bucket")), ref)
        return doc.path
    worker = uuid.uuid4().hex
    claim = filelease.claim(
        db, doc, project_doc, worker, seconds=LEASE_SECONDS, fields=_blob_fields(obj)
    )
    if claim.outcome == filelease.GONE:
        log.error("dropping %s: project %r was deleted meanwhile", name, ref.project)
        return None
    if claim.outcome == filelease.FINISHED:
        return doc.path
    if claim.outcome == filelease.BUSY:
        raise LeaseBusyError(f"{ref.sha256} is being processed", "it will be delivered again")
    try:
        result = _too_big(obj) or analysis.analyse(
            obj, ref, gcs or instance.gcs(), options or ProfileOptions()
        )
    except _TRANSIENT as exc:
        # Give the lease back so the redelivery does not wait for it to expire.
        filelease.give_back(doc, STATUS_SEEN, last_error=_short(exc))
        raise
    except gexc.NotFound:
        result = {"status": STATUS_FAILED, "reason": "the object was deleted before it was read"}
    except Exception as exc:  # a bug must not become a redelivery loop
        log.exception("profiling %s failed", name)
        result = {"status": STATUS_FAILED, "reason": f"internal error: {_short(exc)}"}
    if not filelease.finish(db, doc, worker, result):
        log.warning("lease on %s was taken over; dropping this result", doc.path)
    # Whatever the outcome: a version is complete once each of its files has one.
    validate_datasets(db, gcs or instance.gcs(), str(obj.get("bucket")), ref)
    return doc.path


def internal(obj: dict[str, Any]) -> bool:
    """Bytes aletheia stored for itself, which no data file has named since."""
    metadata = obj.get("metadata") or {}
    return bool(metadata.get(blobstore.INTERNAL_METADATA)) and analysis.original_path(obj) is None


def is_data_object(obj: dict[str, Any]) -> bool:
    """Whether the object is the function's work: a content-addressed blob of a project
    that is not aletheia's own (samples, profiles, manifests, another tool's files are not)."""
    return layout.parse_blob_name(str(obj.get("name") or "")) is not None and not internal(obj)


def _too_big(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ``deferred`` result for an object over the function's size limit, else None."""
    size, limit = int(obj.get("size") or 0), filestatus.max_bytes()
    if size <= limit:
        return None
    return {
        "status": STATUS_DEFERRED,
        # The hint is in the reason too: every reader (the dashboard) shows the reason.
        "reason": f"{size:,} bytes is over the function's limit of {limit:,} bytes "
        f"({filestatus.MAX_BYTES_ENV}); {filestatus.SPARK_HINT}",
        "hint": filestatus.SPARK_HINT,
    }


def _plainly_unsupported(obj: dict[str, Any], gcs: Any) -> str | None:
    """Why the object cannot be profiled, if its name, type and magic bytes already say.

    Most blobs of a dataset of images or model files are not tables; deciding
    that from four bytes spares each of them the lease's two transactions.
    """
    blob = gcs.bucket(obj["bucket"]).blob(obj["name"])
    try:
        magic = blob.download_as_bytes(start=0, end=3, checksum=None)
        detect_format(analysis.original_path(obj), obj.get("contentType"), magic)
    except UnsupportedFormatError as exc:
        return str(exc)
    except (gexc.NotFound, gexc.RequestRangeNotSatisfiable):
        return None  # deleted meanwhile, or empty: the full path records which
    return None


@firestore.transactional
def _record_unsupported(
    tx: firestore.Transaction, doc: Any, project_doc: Any, obj: dict[str, Any], reason: str
) -> bool:
    """One idempotent write (nothing is processed, so no lease is needed); False, and
    nothing written, when the project was deleted since the event's tenancy check."""
    if not doc.get(transaction=tx).exists and not project_doc.get(transaction=tx).exists:
        return False
    tx.set(
        doc,
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
    return True


def validate_datasets(db: firestore.Client, gcs: Any, bucket: str, ref: layout.BlobRef) -> None:
    """Record the profile and validation of the dataset versions these bytes complete.

    Only once each of their files has a terminal status (done, failed or
    unsupported: the last one to get it may be any of them; a ``deferred``
    one completes when the Spark job, which calls this too, records it).
    Best effort: a problem is logged, never turned into a redelivery.
    """
    from aletheia.data import manifests
    from aletheia.function import holders
    from aletheia.stats import versioncheck, versionprofile  # datasets sits above this module

    store = blobstore.BlobStore(gcs, bucket, ref.project)
    # Within one event a version is asked for more than once (which datasets hold the
    # bytes, then whether the version is complete): its document is read once.
    loaded: dict[tuple[str, str], Mapping[str, Any]] = {}

    def manifest(name: str, version: str) -> Mapping[str, Any]:
        if (name, version) not in loaded:
            loaded[name, version] = manifests.load_manifest(
                db,
                store,
                ref.project,
                name,
                version,
                cache=instance.manifest_cache(),
                decoded=instance.decoded_manifests(),
            )
        return loaded[name, version]

    profiles = versionprofile.profile_loader(store.derived_profile)
    try:
        versioncheck.for_file(
            db,
            ref.project,
            ref.sha256,
            manifest,
            profiles,
            holders=lambda sha: holders.dataset_versions(db, ref.project, sha, manifest),
        )
    except Exception:
        log.exception("validation of datasets holding %s failed", ref.sha256)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _blob_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's metadata as typed fields the console shows readably."""
    return {
        "blob": f"gs://{obj.get('bucket')}/{obj.get('name')}",
        "size": int(obj.get("size") or 0),
        "crc32c": obj.get("crc32c"),
        "md5": obj.get("md5Hash"),
        "content_type": obj.get("contentType"),
        "path": analysis.original_path(obj),
        "generation": str(obj.get("generation", "")),
        "seen_at": firestore.SERVER_TIMESTAMP,
    }
