"""Reading a stored object for profiling, verifying on the way that its bytes match its name.

Objects are named by their sha256: a sequential read hashes what it reads,
and the profile is kept only if the digest matches (else the whole object
is hashed once more; a mismatch fails the file).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import IO, Any

from aletheia.stats.formats import ProfileError

_READ_CHUNK = 4 << 20
_SNIFF_BYTES = 64 << 10


@dataclass
class BlobSource:
    """Opens the object for reading, hashing what is read in order to verify its name."""

    blob: Any
    sha256: str
    bytes_read: int = 0
    _verified: bool = False

    def open(self) -> IO[bytes]:
        reader = HashingReader(self.blob.open("rb", chunk_size=_READ_CHUNK), self)
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
        """A front-to-back read ended with ``digest``: the object is verified, or it is not."""
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


class HashingReader(io.RawIOBase):
    """A file object over a blob reader that hashes bytes read front to back."""

    def __init__(self, raw: Any, source: BlobSource) -> None:
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
