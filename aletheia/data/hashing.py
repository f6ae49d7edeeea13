"""Streamed, parallel sha256 of files, with a stat-based memo for unchanged files.

Files are read in 1 MiB chunks into one reused buffer, so memory stays flat
whatever the file size. ``hashlib`` releases the GIL while it digests, so a
small thread pool hashes a large tree at close to the disk's (or the CPUs')
speed. :class:`HashIndex` remembers ``(size, mtime_ns, inode, ctime_ns)`` →
sha256 per absolute path, so re-adding a tree nobody touched costs one ``stat``
per file. :func:`digest_file` also computes the crc32c Cloud Storage keeps for
every object, in the same pass, so an upload can be checked against the bytes
that were hashed without hashing them a second time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aletheia.errors import ValidationError

#: Read size for hashing and copying.
CHUNK_SIZE = 1 << 20
#: Files whose mtime is this close to "now" are not memoised: a write in the
#: same clock tick would not change the stat signature (git's "racy clean";
#: 2 s covers the coarsest timestamps in use, FAT's).
RACY_WINDOW_NS = 2_000_000_000

OnBytes = Callable[[int], None]


def default_workers() -> int:
    """Hashing threads: one per CPU, at least two (I/O overlaps with digesting)."""
    return max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True)
class FileDigest:
    """What one read of a file established: its sha256, size and crc32c."""

    sha256: str
    size: int
    #: base64 of the big-endian crc32c, as Cloud Storage reports an object's ``crc32c``.
    crc32c: str


def digest_file(path: Path, on_bytes: OnBytes | None = None) -> FileDigest:
    """sha256, size and crc32c of a file in one streamed pass (1 MiB chunks)."""
    import google_crc32c  # a small C extension; imported here to keep module import cheap

    digest = hashlib.sha256()
    crc = google_crc32c.Checksum()
    size = 0
    try:
        with open(path, "rb", buffering=0) as fh:  # noqa: PTH123 - raw reads of whole chunks
            # bytes, not a reused buffer: google_crc32c accepts read-only buffers only.
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                crc.update(chunk)
                size += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except PermissionError as exc:
        raise ValidationError(
            f"cannot read {path}: permission denied", "fix its permissions or leave it out"
        ) from exc
    except IsADirectoryError as exc:  # pragma: no cover - callers pass files
        raise ValidationError(f"{path} is a directory, not a file") from exc
    return FileDigest(digest.hexdigest(), size, base64.b64encode(crc.digest()).decode("ascii"))


def sha256_file(path: Path, on_bytes: OnBytes | None = None) -> tuple[str, int]:
    """``(hex sha256, size)`` of a file, streamed in 1 MiB chunks."""
    found = digest_file(path, on_bytes)
    return found.sha256, found.size


def sha256_files(
    paths: Sequence[Path], *, workers: int | None = None, on_bytes: OnBytes | None = None
) -> list[tuple[str, int]]:
    """Hash many files in parallel; results are in the order of ``paths``."""
    if len(paths) <= 1:
        return [sha256_file(p, on_bytes) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        return list(pool.map(lambda p: sha256_file(p, on_bytes), paths))


@dataclass(frozen=True)
class StatKey:
    """What must not have changed for a memoised digest to still hold."""

    size: int
    mtime_ns: int
    inode: int
    #: The kernel sets ctime on every write and every ``utime``: a file rewritten in
    #: place with its mtime put back (``cp -p``, ``touch -d``) still shows (git checks it too).
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        """The key of a ``stat`` result."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class HashIndex:
    """A small SQLite memo: absolute path + :class:`StatKey` → sha256.

    Shared by every workspace on this machine (it lives in the cache dir);
    SQLite's locking makes concurrent processes safe. A stale or corrupt
    index only costs re-hashing: it is a memo, never the source of truth.
    """

    #: Paths looked up per SQL statement (SQLite allows 32,766 parameters).
    LOOKUP_CHUNK = 500

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # ``hashes`` was the memo before ctime was part of the key: it is only a
            # memo, so it is dropped rather than migrated (its files are hashed once more).
            conn.execute("DROP TABLE IF EXISTS hashes")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stat_hashes (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, inode INTEGER, ctime_ns INTEGER, sha256 TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def lookup(self, path: Path, key: StatKey) -> str | None:
        """The memoised sha256 of ``path`` if its stat signature is unchanged."""
        return self.lookup_many([(path, key)]).get(path)

    def lookup_many(self, items: Iterable[tuple[Path, StatKey]]) -> dict[Path, str]:
        """:meth:`lookup` for many paths, a few hundred per query."""
        wanted = {str(p): (p, k) for p, k in items}
        names = list(wanted)
        found: dict[Path, str] = {}
        conn = self._connect()
        for start in range(0, len(names), self.LOOKUP_CHUNK):
            part = names[start : start + self.LOOKUP_CHUNK]
            rows = conn.execute(
                "SELECT path, size, mtime_ns, inode, ctime_ns, sha256 FROM stat_hashes "
                f"WHERE path IN ({','.join('?' * len(part))})",
                part,
            )
            for name, size, mtime_ns, inode, ctime_ns, sha in rows:
                path, key = wanted[name]
                if StatKey(size, mtime_ns, inode, ctime_ns) == key:
                    found[path] = str(sha)
        return found

    def record_many(self, items: Iterable[tuple[Path, StatKey, str]]) -> None:
        """Memoise digests, skipping files changed too recently to trust their timestamps.

        A file written again within the timestamp granularity of its last
        write keeps the same signature (git's "racy" entries): one whose mtime
        is within :data:`RACY_WINDOW_NS` of now is hashed again next time. As in
        git, ctime is part of the key but not of this test: a later write moves
        the mtime past the recorded one, and a later ``utime`` (mtime put back)
        moves the ctime.
        """
        horizon = time.time_ns() - RACY_WINDOW_NS
        rows = [
            (str(p), k.size, k.mtime_ns, k.inode, k.ctime_ns, d)
            for p, k, d in items
            if k.mtime_ns < horizon
        ]
        if not rows:
            return
        with self._connect() as conn:
            conn.executemany("INSERT OR REPLACE INTO stat_hashes VALUES (?, ?, ?, ?, ?, ?)", rows)

    def forget(self, path: Path) -> None:
        """Drop the memo of one path (after its content was found wrong)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM stat_hashes WHERE path = ?", (str(path),))
