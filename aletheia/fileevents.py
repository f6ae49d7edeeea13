"""What the storage function does with one finalized object.

Objects are content-addressed (``{project}/sha256/ab/cdef…``, see
:mod:`aletheia.layout`), so the registry document ``Projects/{p}/Files/{sha256}``
is keyed by the same digest and the same bytes are recorded once, however
often they are uploaded. Anything else in the bucket (samples the function
writes, temporary uploads, foreign files) is ignored, so the function never
triggers itself.

Idempotent: the same event twice, or two uploads of the same bytes, leave
one document; a later delivery never moves ``status`` backwards.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from aletheia import clients, config, layout

log = logging.getLogger("aletheia.fileevents")

STATUS_SEEN = "seen"


@functools.lru_cache(maxsize=1)
def _db() -> firestore.Client:
    # One client per function instance, built from the instance's environment.
    return clients.firestore_client(config.resolve(), probe=False)


def handle_finalized(obj: dict[str, Any], db: firestore.Client | None = None) -> str | None:
    """Register a finalized object; returns the Files document path, or ``None`` if ignored."""
    name = str(obj.get("name", ""))
    ref = layout.parse_blob_name(name)
    if ref is None:
        log.info("ignoring %s: not a content-addressed aletheia blob", name)
        return None
    db = db or _db()
    path = layout.file(ref.project, ref.sha256)
    doc = db.document(path)
    blob_fields = _blob_fields(obj)
    try:
        doc.create({**blob_fields, "status": STATUS_SEEN, "created_at": firestore.SERVER_TIMESTAMP})
    except AlreadyExists:
        # Same bytes again (or a redelivery): refresh what the bucket says, keep the status.
        doc.update(blob_fields)
    return path


def _blob_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's metadata as typed fields the console shows readably."""
    return {
        "blob": f"gs://{obj.get('bucket')}/{obj.get('name')}",
        "size": int(obj.get("size") or 0),
        "crc32c": obj.get("crc32c"),
        "md5": obj.get("md5Hash"),
        "content_type": obj.get("contentType"),
        "generation": str(obj.get("generation", "")),
        "seen_at": firestore.SERVER_TIMESTAMP,
    }
