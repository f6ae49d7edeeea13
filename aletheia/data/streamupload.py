"""One-request uploads that stream a file to Cloud Storage's JSON API.

The client library sends a file above 8 MiB as a resumable upload whose
every chunk is read into memory first: on the local stack a 100 MB file in
32 MiB chunks took 4x as long as the same bytes in one request (bench 3),
and one 100 MiB chunk per upload thread is 800 MiB of memory for 8 threads.
A *multipart* upload (object metadata, then the bytes, in one request) has
no size limit, but the library only builds it from bytes in memory. This
module streams it from the open file instead: the body is the metadata
part, the file read piece by piece as the HTTP connection asks for it, and
the closing boundary, with an exact ``Content-Length``.

The request goes through the storage client's own authorised session, to
the endpoint the client was configured with (the emulator's, locally), with
the same query parameters the library uses (``ifGenerationMatch=0``: a 412
means the object already exists). A failed request is sent again whole by
the caller; files large enough for that to hurt go up resumably instead
(:data:`aletheia.data.blobstore.SINGLE_REQUEST_MAX`). The session itself
sends the same body object again after refreshing its credentials (a 401 on
a token that expired in flight): a body read to its end starts over from the
file's start when it is read again, so the re-sent request carries every
byte its ``Content-Length`` promises (a consumed body sent nothing, and the
server waited for the promised bytes until the timeout).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any, BinaryIO

from aletheia.cloud.lazy import gexc, storage
from aletheia.data.hashing import OnBytes
from aletheia.errors import IntegrityError

#: Seconds to connect and to wait for each response read (the client library's default).
TIMEOUT_S = 60


class MultipartBody:
    """A file-like request body: the metadata part, the file's bytes, the closing boundary.

    It hashes what it reads (sha256 only when asked: it is the expensive
    one) and computes the crc32c, so the caller can compare both with what
    was hashed before and with what the server stored. Read again after its
    end (a re-sent request), it starts over: ``fh`` must be seekable (a
    file), and the hashes are of the bytes of the last sending.
    """

    def __init__(
        self,
        metadata: dict[str, Any],
        fh: BinaryIO,
        size: int,
        *,
        content_type: str,
        on_bytes: OnBytes | None = None,
        hash_sha256: bool = False,
    ) -> None:
        boundary = f"==={uuid.uuid4().hex}=="
        self.content_type = f'multipart/related; boundary="{boundary}"'
        self._head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(metadata)}\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._fh = fh
        self._start = fh.tell()  # where the file's bytes begin (a re-send seeks back here)
        self._size = size
        self._length = len(self._head) + size + len(self._tail)
        self._on_bytes = on_bytes
        self._reported = 0  # bytes told to on_bytes: a re-send does not count them twice
        self._hash_sha256 = hash_sha256
        self._begin()

    def _begin(self) -> None:
        """Be at the body's first byte, with nothing hashed."""
        import google_crc32c

        self._left = self._size
        self._sha: Any = hashlib.sha256() if self._hash_sha256 else None
        self._crc = google_crc32c.Checksum()
        self._stage = 0  # 0: head, 1: file, 2: tail, 3: end, 4: end read (the sending is over)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """The next piece of the body (``b""`` at its end; after that, from its start)."""
        if self._stage == 4:
            # A sender reads until b"": a read after it is the body sent again.
            self._fh.seek(self._start)
            self._begin()
        if self._stage == 0:
            self._stage = 1
            return self._head
        if self._stage == 1:
            want = self._left if size is None or size < 0 else min(size, self._left)
            data = self._fh.read(want) if want else b""
            if data:
                self._left -= len(data)
                self._crc.update(data)
                if self._sha is not None:
                    self._sha.update(data)
                if self._on_bytes is not None:
                    sent = self._size - self._left
                    if sent > self._reported:  # progress, not bytes sent again
                        self._on_bytes(sent - self._reported)
                        self._reported = sent
                return data
            if self._left:
                # Shorter than when it was hashed: the promised Content-Length cannot be
                # met, and the server would wait for the rest. Abandon the request.
                raise IntegrityError(
                    f"{getattr(self._fh, 'name', 'a file')} changed while it was being added",
                    "add it again once it is stable",
                )
            self._stage = 2
        if self._stage == 2:
            self._stage = 3
            return self._tail
        self._stage = 4
        return b""

    def sent_crc32c(self) -> str:
        """base64 crc32c of the file bytes sent, as Cloud Storage reports an object's."""
        return base64.b64encode(self._crc.digest()).decode("ascii")

    def sent_sha256(self) -> str | None:
        """Hex sha256 of the file bytes sent, if it was asked for."""
        return None if self._sha is None else self._sha.hexdigest()


def post(client: storage.Client, bucket: str, body: MultipartBody) -> dict[str, Any]:
    """Create the object described by ``body`` unless it exists; returns its resource.

    Raises the library's exceptions for an HTTP error (``PreconditionFailed``
    when the object exists, ``NotFound`` without the bucket).
    """
    connection = client._connection
    base = (
        connection.get_api_base_url_for_mtls()
        if hasattr(connection, "get_api_base_url_for_mtls")
        else connection.API_BASE_URL
    )
    response = client._http.post(
        f"{base}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "multipart", "ifGenerationMatch": "0"},
        data=body,
        headers={"Content-Type": body.content_type},
        timeout=TIMEOUT_S,
    )
    if response.status_code >= 400:
        raise gexc.from_http_response(response)
    resource: dict[str, Any] = response.json()
    return resource
