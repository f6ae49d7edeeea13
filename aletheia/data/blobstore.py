"""Content-addressed blobs in Cloud Storage.

A blob's object name is derived from the sha256 of its bytes
(:func:`aletheia.cloud.layout.blob_name`), so the same bytes are stored once per
project. Uploads use ``if_generation_match=0``: concurrent uploaders of the
same bytes never clobber each other, and a 412 just means "already there".
A large file is first checked with one metadata request, so bytes already
stored are not sent again; a small one is sent at once, since re-sending it
costs about what the extra round trip would. A file goes up in one
streamed request (:mod:`aletheia.data.streamupload`) up to
:data:`SINGLE_REQUEST_MAX`, resumably in chunks above it, and every upload
is verified by the crc32c Cloud Storage computes on its side: against the
crc32c taken when the file was hashed, when the caller has it (so a file
changed since is caught without hashing it twice), else against the
sha256 and crc32c of the bytes as they streamed. Downloads are verified by
sha256 as they stream (see :meth:`aletheia.data.cache.LocalCache.open_for_write`).

:class:`TransferStats` counts requests and bytes, so tests and benchmarks can
assert "the second add uploaded nothing" without timing anything.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from aletheia.cloud import layout
from aletheia.cloud.config import LOCAL_BUCKET
from aletheia.cloud.lazy import gexc, requests, storage
from aletheia.cloud.transient import is_transient
from aletheia.data import streamupload
from aletheia.data.hashing import OnBytes
from aletheia.data.phases import PhaseTimes
from aletheia.errors import (
    AletheiaError,
    BackendUnavailableError,
    ConfigError,
    IntegrityError,
    NotFoundError,
)
from aletheia.stats.formats import tabular_name

log = logging.getLogger("aletheia.data.blobstore")

#: Files of at least this size get a metadata request (HEAD) before their upload.
HEAD_THRESHOLD = 1 << 20
#: Files up to this size go up in one streamed request (nothing held in memory); a
#: failed request is sent again whole, so larger ones go up resumably, in chunks.
SINGLE_REQUEST_MAX = 512 << 20
#: Must be a multiple of 256 KiB (a Cloud Storage rule). Each chunk is one request held
#: in memory; 16 MiB chunks took twice as long per 100 MB as 32 MiB ones on the local
#: stack (bench 3), and larger ones gained little while costing memory per upload thread.
RESUMABLE_CHUNK = 32 << 20

_OCTETS = "application/octet-stream"

# What a retry can fix is decided in one place for every backend; 403, 404, 400 are permanent.
_retry = retry(
    retry=retry_if_exception(is_transient),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.2),
    reraise=True,
)


#: Custom object metadata naming a file's original relative path (read by the storage function).
PATH_METADATA = "relpath"
#: Custom object metadata marking bytes aletheia keeps for itself (manifests, diffs, package
#: lists, snapshots, notebooks): no data file, so the storage function leaves them alone.
INTERNAL_METADATA = "aletheia-internal"


@dataclass(frozen=True)
class BlobInfo:
    """Where some bytes live and what they are."""

    sha256: str
    size: int
    uri: str
    uploaded: bool  # False when the bytes were already in the bucket
    #: The bytes were in the bucket without a file name (kept by a run's snapshot, say) and
    #: were given this file's: the storage function profiles them next, as an upload.
    named: bool = False


@dataclass
class TransferStats:
    """Requests and bytes this store sent; increments are thread-safe."""

    head_requests: int = 0
    uploads: int = 0
    bytes_uploaded: int = 0
    uploads_skipped: int = 0
    downloads: int = 0
    bytes_downloaded: int = 0
    deletes: int = 0
    copies: int = 0
    bytes_copied: int = 0

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters, e.g. to diff before/after an operation."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BlobStore:
    """Content-addressed access to one project's blobs in one bucket."""

    def __init__(
        self, client: storage.Client, bucket: str, project: str, *, bucket_from: str | None = None
    ) -> None:
        """``bucket_from``: where the bucket name came from (``Settings.sources``), for errors."""
        self.client = client
        self._bucket_from = bucket_from
        self.bucket = client.bucket(bucket)
        self.project = layout.validate_id(project, "project name")
        self.stats = TransferStats()
        #: Thread-seconds spent in metadata requests ("head") and uploads ("upload").
        self.times = PhaseTimes()
        #: Files up to this size go up in one streamed request (see :data:`SINGLE_REQUEST_MAX`).
        self.single_request_max = SINGLE_REQUEST_MAX
        self._lock = threading.Lock()
        self._bucket_seen = False

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _blob(self, sha256: str) -> Any:
        return self.bucket.blob(layout.blob_name(self.project, sha256))

    def uri(self, sha256: str) -> str:
        """``gs://bucket/{project}/sha256/ab/cdef…``."""
        return f"gs://{self.bucket.name}/{layout.blob_name(self.project, sha256)}"

    def require_bucket(self) -> None:
        """Raise :class:`ConfigError` if the bucket does not exist.

        One object listing under this project's prefix (``storage.objects.list``,
        which every role that may use the bucket has, unlike ``buckets.get``),
        once per store; callers do it before writing any document, so a wrong
        ``bucket`` setting stops an add before it records anything.
        """
        if self._bucket_seen:
            return
        try:
            _call(
                lambda: list(
                    self.client.list_blobs(self.bucket, prefix=f"{self.project}/", max_results=1)
                )
            )
        except gexc.NotFound as exc:
            raise self._missing_bucket() from exc
        self._bucket_seen = True

    def _missing_bucket(self) -> ConfigError:
        where = {None: "", "default": "; this value is the default"}.get(
            self._bucket_from, f"; this value is from {self._bucket_from}"
        )
        return ConfigError(
            f"Cloud Storage bucket {self.bucket.name!r} does not exist "
            f"(the `bucket` setting: ALETHEIA_BUCKET or `bucket` in config.toml{where})",
            "`aletheia config` shows where the value came from; for the cloud set it to "
            "`terraform output -raw bucket`, for the local stack unset it (the stack "
            f"creates {LOCAL_BUCKET!r}) and check `aletheia local status`",
        )

    def _object_not_found(self, exc: gexc.NotFound, error: NotFoundError) -> AletheiaError:
        """A 404 means the object or the whole bucket is missing: say which."""
        try:
            self.require_bucket()
        except ConfigError as missing:
            return missing
        return error

    @_retry
    def exists(self, sha256: str) -> bool:
        """True if these bytes are already stored (one metadata request)."""
        self._count(head_requests=1)
        with self.times.timed("head"):
            return bool(self._blob(sha256).exists())

    def _stored(self, sha256: str) -> Any:
        """The stored object of these bytes with its metadata, or None (one metadata
        request, counted and timed as :meth:`exists` is)."""
        self._count(head_requests=1)
        with self.times.timed("head"):
            return _call(self.bucket.get_blob, layout.blob_name(self.project, sha256))

    def put_bytes(self, data: bytes, content_type: str = "application/octet-stream") -> BlobInfo:
        """Store small in-memory bytes (diffs, package lists, manifests); skipped if present.

        They are marked :data:`INTERNAL_METADATA`: the storage function spends nothing on
        them. A data file found to hold the same bytes names them later
        (:meth:`_name_if_nameless`), and is profiled then.
        """
        digest = hashlib.sha256(data).hexdigest()
        info = BlobInfo(digest, len(data), self.uri(digest), uploaded=False)
        if len(data) >= HEAD_THRESHOLD and self.exists(digest):
            self._count(uploads_skipped=1)
            return info
        blob = self._blob(digest)
        blob.metadata = {INTERNAL_METADATA: "true"}
        try:
            _call(blob.upload_from_string, data, content_type=content_type, if_generation_match=0)
        except gexc.PreconditionFailed:
            self._count(uploads_skipped=1)
            return info  # stored before, or by a concurrent uploader
        except gexc.NotFound as exc:  # creating an object 404s only without a bucket
            raise self._missing_bucket() from exc
        self._count(uploads=1, bytes_uploaded=len(data))
        return BlobInfo(digest, len(data), info.uri, uploaded=True)

    def get_bytes(self, sha256: str) -> bytes:
        """Fetch small bytes by digest, verifying them."""
        blob = self._blob(sha256)
        try:
            data: bytes = _call(blob.download_as_bytes)
        except gexc.NotFound as exc:
            raise self._object_not_found(
                exc, NotFoundError(f"no blob {sha256} in {self.bucket.name}")
            ) from exc
        self._count(downloads=1, bytes_downloaded=len(data))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"blob {sha256} does not match its hash", "re-upload it")
        return data

    def upload_file(
        self,
        path: Path,
        sha256: str,
        size: int,
        *,
        on_bytes: OnBytes | None = None,
        relpath: str | None = None,
        crc32c: str | None = None,
    ) -> BlobInfo:
        """Upload a file whose digest is known, unless the bucket already has it.

        From :data:`HEAD_THRESHOLD` up one HEAD decides; the upload itself is
        conditional (``if_generation_match=0``: a 412 means the bytes are there),
        one streamed request up to :attr:`single_request_max`, resumable above,
        and checked against the crc32c the server computed. ``crc32c`` (base64,
        as :func:`aletheia.data.hashing.digest_file` gives it) is the file's
        when it was hashed: if the server saw other bytes, the file changed
        since. Without it the bytes are re-hashed as they stream. Either way a
        changed file's object is deleted again and :class:`IntegrityError`
        raised. ``relpath`` (the file's name in its dataset) is stored as
        object metadata and sets the content type, so the storage function
        knows how to read the bytes.
        """
        info = BlobInfo(sha256, size, self.uri(sha256), uploaded=False)
        if size >= HEAD_THRESHOLD:
            stored = self._stored(sha256)
            if stored is not None:
                self._count(uploads_skipped=1)
                if on_bytes is not None:
                    on_bytes(size)
                return replace(info, named=self._name_if_nameless(sha256, relpath, stored))
        content_type = (mimetypes.guess_type(relpath)[0] if relpath else None) or _OCTETS
        try:
            with self.times.timed("upload"):
                if size <= self.single_request_max:
                    self._upload_streamed(
                        path, size, sha256, content_type, relpath, crc32c, on_bytes
                    )
                else:
                    blob = self._blob(sha256)
                    blob.chunk_size = RESUMABLE_CHUNK
                    if relpath:
                        blob.metadata = {PATH_METADATA: relpath}
                    self._upload(blob, path, size, sha256, content_type, on_bytes)
        except gexc.PreconditionFailed:  # stored before, or by a concurrent uploader
            self._count(uploads_skipped=1)
            return replace(info, named=self._name_if_nameless(sha256, relpath))
        except gexc.NotFound as exc:  # creating an object 404s only without a bucket
            raise self._missing_bucket() from exc
        self._count(uploads=1, bytes_uploaded=size)
        return BlobInfo(sha256, size, info.uri, uploaded=True)

    def _name_if_nameless(self, sha256: str, relpath: str | None, stored: Any = None) -> bool:
        """Give stored bytes this data file's name if they were stored without one; True if so.

        :meth:`put_bytes` stores without a name (a run's snapshot keeps an untracked
        ``train.csv`` that way), and the storage function leaves such bytes alone (older
        versions recorded them unsupported: no format can be told without a name). The
        same bytes added later as a data file are found stored, so no upload tells the
        function their name. Rewriting the object onto itself with the name finalizes a
        new generation, whose event the function profiles as an upload's. Only names of
        tables are worth the request.
        """
        if not relpath or not tabular_name(relpath):
            return False
        blob = stored if stored is not None else self._stored(sha256)
        if blob is None or (blob.metadata or {}).get(PATH_METADATA):
            return False
        blob.metadata = {**(blob.metadata or {}), PATH_METADATA: relpath}
        blob.content_type = mimetypes.guess_type(relpath)[0] or blob.content_type
        try:
            refinalize(blob, if_generation_match=blob.generation)
        except gexc.PreconditionFailed:
            pass  # named meanwhile (by a concurrent adder, or this call's retry): an event too
        except (gexc.Forbidden, gexc.NotFound) as exc:
            # The bytes are stored either way: the add goes on, the file is not profiled.
            log.warning("could not name %s as %s (%s): it is not profiled", sha256, relpath, exc)
            return False
        return True

    @_retry
    def _upload_streamed(
        self,
        path: Path,
        size: int,
        sha256: str,
        content_type: str,
        relpath: str | None,
        crc32c: str | None,
        on_bytes: OnBytes | None,
    ) -> None:
        metadata: dict[str, Any] = {
            "name": layout.blob_name(self.project, sha256),
            "contentType": content_type,
        }
        if relpath:
            metadata["metadata"] = {PATH_METADATA: relpath}
        with open(path, "rb") as fh:  # noqa: PTH123
            body = streamupload.MultipartBody(
                metadata,
                fh,
                size,
                content_type=content_type,
                on_bytes=on_bytes,
                hash_sha256=crc32c is None,
            )
            try:
                resource = streamupload.post(self.client, self.bucket.name, body)
            except requests.ConnectionError as exc:
                raise BackendUnavailableError(
                    f"Cloud Storage is unreachable: {exc}",
                    "check the network, or start the local stack with `aletheia local up`",
                ) from exc
        sent = body.sent_crc32c()
        stored = resource.get("crc32c")
        if stored is not None and stored != sent:
            self._delete_ours(resource)
            raise IntegrityError(
                f"upload of {path} was corrupted in transit (crc32c mismatch)", "retry the add"
            )
        if (
            int(resource.get("size", -1)) != size
            or (crc32c is not None and sent != crc32c)
            or body.sent_sha256() not in (None, sha256)
        ):
            self._delete_ours(resource)
            raise IntegrityError(
                f"{path} changed while it was being added", "add it again once it is stable"
            )

    def _delete_ours(self, resource: dict[str, Any]) -> None:
        """Delete the object this store just created: wrong bytes never stay under a name."""
        generation = resource.get("generation")
        blob = self.bucket.blob(str(resource["name"]))
        _call(blob.delete, if_generation_match=int(generation) if generation else None)

    @_retry
    def _upload(
        self,
        blob: Any,
        path: Path,
        size: int,
        sha256: str,
        content_type: str,
        on_bytes: OnBytes | None,
    ) -> None:
        with open(path, "rb") as fh:  # noqa: PTH123
            reader = _CountingReader(fh, on_bytes)
            try:
                blob.upload_from_file(
                    reader,
                    size=size,
                    content_type=content_type,
                    if_generation_match=0,
                    checksum="crc32c",
                )
            except gexc.PreconditionFailed:
                raise
            except Exception as exc:  # resumable-media reports checksum mismatches itself
                if type(exc).__name__ == "DataCorruption":
                    raise IntegrityError(
                        f"upload of {path} was corrupted in transit (crc32c mismatch)",
                        "retry the add",
                    ) from exc
                raise
        if (blob.size is not None and int(blob.size) != size) or reader.digest() not in (
            None,
            sha256,
        ):
            blob.delete()  # ours (the conditional create succeeded): never keep wrong bytes
            raise IntegrityError(
                f"{path} changed while it was being added", "add it again once it is stable"
            )

    def download_to(self, sha256: str, fh: BinaryIO, *, on_bytes: OnBytes | None = None) -> int:
        """Stream blob ``sha256`` into ``fh`` (the caller verifies the digest); returns bytes."""
        blob = self._blob(sha256)
        writer = _CountingWriter(fh, on_bytes)
        try:
            _call(blob.download_to_file, writer, checksum=None)
        except gexc.NotFound as exc:
            raise self._object_not_found(
                exc,
                NotFoundError(
                    f"blob {sha256[:12]}… is missing from gs://{self.bucket.name}",
                    "the data was deleted from the bucket; re-add it from a copy",
                ),
            ) from exc
        self._count(downloads=1, bytes_downloaded=writer.count)
        return writer.count

    def copy_from(self, source: BlobStore, sha256: str) -> BlobInfo:
        """Copy blob ``sha256`` from ``source`` (another project or bucket) server-side.

        A Cloud Storage rewrite: the bytes never pass through this machine, and
        the object's metadata (its relative path, its content type) comes along,
        so the storage function reads the copy as it read the original. The
        copy is conditional (``if_generation_match=0``) like an upload: bytes
        the target already holds are not copied again.
        """
        info = BlobInfo(sha256, 0, self.uri(sha256), uploaded=False)
        original = source._blob(sha256)
        copy = self._blob(sha256)
        token: str | None = None
        try:
            while True:  # a large object may take several rewrite calls
                token, done, total = _call(
                    copy.rewrite, original, token=token, if_generation_match=0
                )
                if token is None:
                    break
        except gexc.PreconditionFailed:
            self._count(uploads_skipped=1)
            return info  # already in the target
        except gexc.NotFound as exc:
            missing = source._object_not_found(
                exc,
                NotFoundError(
                    f"blob {sha256[:12]}… is missing from gs://{source.bucket.name}",
                    "the source data was deleted from the bucket; nothing of it can be copied",
                ),
            )
            if isinstance(missing, ConfigError):
                raise missing from exc
            self.require_bucket()  # a missing target bucket, said as such
            raise missing from exc
        self._count(copies=1, bytes_copied=int(done))
        return BlobInfo(sha256, int(total), info.uri, uploaded=True)

    def derived_profile(self, sha256: str) -> bytes | None:
        """The full profile the storage function derived from blob ``sha256``, if it has one."""
        try:
            data: bytes = _call(
                self.bucket.blob(layout.profile_blob_name(self.project, sha256)).download_as_bytes
            )
        except gexc.NotFound:
            return None
        self._count(downloads=1, bytes_downloaded=len(data))
        return data

    def delete(self, sha256: str) -> bool:
        """Delete a blob; False if it was already gone."""
        try:
            _call(self._blob(sha256).delete)
        except gexc.NotFound:
            self.require_bucket()  # "already gone" must not hide a wrong bucket setting
            return False
        self._count(deletes=1)
        return True

    def delete_derived(self, sha256: str) -> int:
        """Delete what the storage function derived from blob ``sha256``: its row sample and
        full profile, which hold real rows and values. Returns how many existed."""
        deleted = 0
        for name in (
            layout.sample_blob_name(self.project, sha256),
            layout.profile_blob_name(self.project, sha256),
        ):
            try:
                _call(self.bucket.blob(name).delete)
            except gexc.NotFound:
                continue
            deleted += 1
        self._count(deletes=deleted)
        return deleted


def refinalize(blob: Any, **preconditions: Any) -> None:
    """Rewrite ``blob`` onto itself with its local metadata: the same bytes finalize a new
    generation, which the bucket notifies like an upload (the storage function's trigger).
    Large objects take several calls."""
    token, _done, _total = _call(blob.rewrite, blob, **preconditions)
    while token is not None:
        token, _done, _total = _call(blob.rewrite, blob, token=token, **preconditions)


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a storage method with retries, turning unreachable backends into our error."""
    try:
        return _retry(fn)(*args, **kwargs)
    except (requests.ConnectionError, ConnectionError) as exc:
        raise BackendUnavailableError(
            f"Cloud Storage is unreachable: {exc}",
            "check the network, or start the local stack with `aletheia local up`",
        ) from exc


class _CountingReader:
    """A readable file wrapper that reports bytes read and hashes them.

    The digest is only meaningful for one sequential pass; a seek elsewhere
    (a resumed chunk) makes :meth:`digest` return ``None`` (unknown).
    """

    def __init__(self, fh: BinaryIO, on_bytes: OnBytes | None) -> None:
        self._fh = fh
        self._on_bytes = on_bytes
        self._hash: Any = hashlib.sha256()
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if data:
            if self._hash is not None:
                self._hash.update(data)
            self._pos += len(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._fh.seek(offset, whence)
        if pos != self._pos:
            self._hash = hashlib.sha256() if pos == 0 else None
            self._pos = pos
        return pos

    def tell(self) -> int:
        return self._fh.tell()

    def digest(self) -> str | None:
        """sha256 of everything read, if it was read once from start to end."""
        return self._hash.hexdigest() if self._hash is not None else None


class _CountingWriter:
    """A writable file wrapper that counts bytes written (download progress)."""

    def __init__(self, fh: BinaryIO, on_bytes: OnBytes | None) -> None:
        self._fh = fh
        self._on_bytes = on_bytes
        self.count = 0

    def write(self, data: bytes) -> int:
        written = self._fh.write(data)
        self.count += len(data)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return written

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self._fh.flush()
