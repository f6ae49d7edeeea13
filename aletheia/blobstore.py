"""Content-addressed blobs in Cloud Storage.

A blob's object name is derived from the sha256 of its bytes
(:func:`aletheia.layout.blob_name`), so the same bytes are stored once per
project and an upload of bytes already there is skipped after one metadata
request. Uploads use ``if_generation_match=0``: concurrent uploaders of the
same bytes never clobber each other, the loser's 412 just means "already
there".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.api_core.exceptions import NotFound, PreconditionFailed
from google.cloud import storage  # type: ignore[attr-defined]

from aletheia import layout
from aletheia.errors import IntegrityError, NotFoundError


@dataclass(frozen=True)
class BlobInfo:
    """Where some bytes live and what they are."""

    sha256: str
    size: int
    uri: str
    uploaded: bool  # False when the bytes were already in the bucket


class BlobStore:
    """Content-addressed access to one project's blobs in one bucket."""

    def __init__(self, client: storage.Client, bucket: str, project: str) -> None:
        self.client = client
        self.bucket = client.bucket(bucket)
        self.project = layout.validate_id(project, "project name")

    def uri(self, sha256: str) -> str:
        """``gs://bucket/{project}/sha256/ab/cdef…``."""
        return f"gs://{self.bucket.name}/{layout.blob_name(self.project, sha256)}"

    def exists(self, sha256: str) -> bool:
        """True if these bytes are already stored (one metadata request)."""
        return self.bucket.blob(layout.blob_name(self.project, sha256)).exists()

    def put_bytes(self, data: bytes, content_type: str = "application/octet-stream") -> BlobInfo:
        """Store small in-memory bytes (diffs, package lists); skipped if present."""
        digest = hashlib.sha256(data).hexdigest()
        blob = self.bucket.blob(layout.blob_name(self.project, digest))
        info = BlobInfo(digest, len(data), self.uri(digest), uploaded=False)
        if blob.exists():
            return info
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except PreconditionFailed:
            return info  # a concurrent uploader stored the same bytes first
        return BlobInfo(digest, len(data), info.uri, uploaded=True)

    def get_bytes(self, sha256: str) -> bytes:
        """Fetch small bytes by digest, verifying them."""
        blob = self.bucket.blob(layout.blob_name(self.project, sha256))
        try:
            data = blob.download_as_bytes()
        except NotFound as exc:
            raise NotFoundError(f"no blob {sha256} in {self.bucket.name}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"blob {sha256} does not match its hash", "re-upload it")
        return data
