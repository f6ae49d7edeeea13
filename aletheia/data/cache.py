"""LocalCache: content-addressed files on this machine (``cache/sha256/ab/cdef…``).

Every byte aletheia uploads or downloads passes through here. Writes are
atomic (a temp file in the cache, hashed while written, renamed into place
only when its digest is the expected one), so a crash or a concurrent writer
never leaves a half file under a digest name. Objects are read-only; reads
verify them (cheaply through the stat memo of :class:`~aletheia.data.hashing.HashIndex`,
or fully), and a corrupt object is removed so the caller fetches it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

from aletheia.cloud import layout
from aletheia.data.hashing import CHUNK_SIZE, HashIndex, OnBytes, StatKey, sha256_file
from aletheia.data.workspace import temp_name
from aletheia.errors import IntegrityError, ValidationError

Verify = Literal["stat", "full"]
LinkMode = Literal["copy", "hardlink", "symlink"]

OBJECTS_DIR = "sha256"
TMP_DIR = "tmp"
INDEX_FILE = "index.sqlite"


@dataclass
class CacheStats:
    """Counters a test or a benchmark can read (thread-safe increments)."""

    inserted: int = 0
    bytes_written: int = 0
    corrupt_removed: int = 0
    full_verifications: int = 0


class LocalCache:
    """A content-addressed store of files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.objects = self.root / OBJECTS_DIR
        self.tmp = self.root / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        self.index = HashIndex(self.root / INDEX_FILE)
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def path(self, sha256: str) -> Path:
        """Where the object with this digest lives (it may not exist)."""
        digest = layout.validate_sha256(sha256)
        return self.objects / digest[:2] / digest[2:]

    def has(self, sha256: str, *, verify: Verify = "stat") -> bool:
        """True if a valid object is cached; a corrupt one is removed and reported absent.

        ``stat`` trusts the memo when size, mtime and inode are unchanged since
        the object was last verified (any write changes them); ``full`` re-hashes.
        """
        path = self.path(sha256)
        try:
            key = StatKey.of(path.stat())
        except FileNotFoundError:
            return False
        if verify == "stat" and self.index.lookup(path, key) == sha256:
            return True
        self._count(full_verifications=1)
        actual, _ = sha256_file(path)
        if actual == sha256:
            self.index.record_many([(path, key, sha256)])
            return True
        self._remove_corrupt(path)
        return False

    def _remove_corrupt(self, path: Path) -> None:
        self._count(corrupt_removed=1)
        self.index.forget(path)
        path.unlink(missing_ok=True)

    def insert_file(
        self, src: Path, *, expected: str | None = None, on_bytes: OnBytes | None = None
    ) -> tuple[str, int]:
        """Copy ``src`` into the cache, hashing as it copies; returns ``(sha256, size)``.

        One read of the source both hashes and caches it, so what is cached
        is exactly what was hashed even if the source changes meanwhile.
        With ``expected`` a mismatch raises :class:`IntegrityError`.
        """
        with self._writer() as (fh, digest, commit):
            try:
                with open(src, "rb", buffering=0) as source:  # noqa: PTH123
                    _copy_hashing(source, fh, digest, on_bytes)
            except PermissionError as exc:
                raise ValidationError(
                    f"cannot read {src}: permission denied", "fix its permissions or leave it out"
                ) from exc
            sha, size = digest.hexdigest(), fh.tell()
            if expected is not None and sha != expected:
                raise IntegrityError(
                    f"{src} changed while it was being added", "add it again once it is stable"
                )
            commit(sha)
        return sha, size

    @contextmanager
    def open_for_write(self, sha256: str) -> Iterator[BinaryIO]:
        """A temp file to stream bytes into; it becomes object ``sha256`` if they match.

        Raises :class:`IntegrityError` (and keeps nothing) when they do not.
        """
        layout.validate_sha256(sha256)
        with self._writer() as (fh, digest, commit):
            yield cast(BinaryIO, _HashingWriter(fh, digest))
            actual = digest.hexdigest()
            if actual != sha256:
                raise IntegrityError(
                    f"downloaded bytes hash to {actual[:12]}…, expected {sha256[:12]}…",
                    "the remote copy may be corrupt; retry, then re-add the data",
                )
            commit(sha256)

    @contextmanager
    def _writer(
        self,
    ) -> Iterator[tuple[BinaryIO, hashlib._Hash, Callable[[str], None]]]:
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        done = False

        def commit(sha: str) -> None:
            nonlocal done
            fh.flush()
            os.fchmod(fh.fileno(), 0o444)
            dest = self.path(sha)
            dest.parent.mkdir(parents=True, exist_ok=True)
            size = fh.tell()
            tmp.replace(dest)  # atomic; a concurrent writer of the same bytes is harmless
            self.index.record_many([(dest, StatKey.of(dest.stat()), sha)])
            self._count(inserted=1, bytes_written=size)
            done = True

        try:
            with open(tmp, "wb") as fh:  # noqa: PTH123
                yield fh, digest, commit
        finally:
            if not done:
                tmp.unlink(missing_ok=True)

    def materialize(self, sha256: str, dest: Path, mode: LinkMode = "copy") -> None:
        """Place object ``sha256`` at ``dest`` (replacing what is there) by copy or link."""
        src = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(dest)  # recognised as never-data if a kill leaves it behind
        try:
            if mode == "hardlink":
                try:
                    os.link(src, tmp)
                except OSError:  # another filesystem: fall back to a copy
                    shutil.copyfile(src, tmp)
            elif mode == "symlink":
                tmp.symlink_to(src)
            else:
                shutil.copyfile(src, tmp)
            tmp.replace(dest)
        finally:
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()


def safe_join(root: Path, relpath: str) -> Path:
    """``root/relpath``, refusing any path that would land outside ``root``.

    The relative path is validated lexically (no ``..``, not absolute) and
    the result is checked after resolving symlinks already on disk, so a
    symlinked directory inside ``root`` cannot redirect a write elsewhere.
    """
    clean = layout.validate_relpath(relpath)
    base = root.resolve()
    target = base / clean
    resolved = target.parent.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValidationError(
            f"{relpath!r} would be written outside {base} (through a symlink)",
            "remove the symlink or choose another target directory",
        )
    return target


def _copy_hashing(
    src: BinaryIO, dst: BinaryIO, digest: hashlib._Hash, on_bytes: OnBytes | None
) -> None:
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    while n := src.readinto(buf):  # type: ignore[attr-defined]
        chunk = view[:n]
        digest.update(chunk)
        dst.write(chunk)
        if on_bytes is not None:
            on_bytes(n)


class _HashingWriter:
    """A write-only file object that digests what passes through it."""

    def __init__(self, fh: BinaryIO, digest: hashlib._Hash) -> None:
        self._fh = fh
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()
