"""Streamed, parallel sha256 of files, with a stat-based memo for unchanged files.

Files are read in 1 MiB chunks into one reused buffer, so memory stays flat
whatever the file size. ``hashlib`` releases the GIL while it digests, so a
small thread pool hashes a large tree at close to the disk's (or the CPUs')
speed. :class:`HashIndex` remembers ``(size, mtime_ns, inode)`` → sha256 per
absolute path, so re-adding a tree nobody touched costs one ``stat`` per file.
"""

from __future__ import annotations

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
#: same clock tick would not change the stat signature (git's "racy clean").
RACY_WINDOW_NS = 2_000_000_000

OnBytes = Callable[[int], None]


def default_workers() -> int:
    """Hashing threads: one per CPU, at least two (I/O overlaps with digesting)."""
    return max(2, min(8, os.cpu_count() or 2))


def sha256_file(path: Path, on_bytes: OnBytes | None = None) -> tuple[str, int]:
    """``(hex sha256, size)`` of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    size = 0
    try:
        with open(path, "rb", buffering=0) as fh:  # noqa: PTH123 - raw FileIO for readinto
            while n := fh.readinto(buf):
                digest.update(view[:n])
                size += n
                if on_bytes is not None:
                    on_bytes(n)
    except PermissionError as exc:
        raise ValidationError(
            f"cannot read {path}: permission denied", "fix its permissions or leave it out"
        ) from exc
    except IsADirectoryError as exc:  # pragma: no cover - callers pass files
        raise ValidationError(f"{path} is a directory, not a file") from exc
    return digest.hexdigest(), size


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

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        """The key of a ``stat`` result."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class HashIndex:
    """A small SQLite memo: absolute path + :class:`StatKey` → sha256.

    Shared by every workspace on this machine (it lives in the cache dir);
    SQLite's locking makes concurrent processes safe. A stale or corrupt
    index only costs re-hashing: it is a memo, never the source of truth.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, inode INTEGER, sha256 TEXT)"
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
        row = (
            self._connect()
            .execute(
                "SELECT size, mtime_ns, inode, sha256 FROM hashes WHERE path = ?", (str(path),)
            )
            .fetchone()
        )
        if row is None or StatKey(row[0], row[1], row[2]) != key:
            return None
        return str(row[3])

    def lookup_many(self, items: Iterable[tuple[Path, StatKey]]) -> dict[Path, str]:
        """:meth:`lookup` for many paths in one transaction."""
        found: dict[Path, str] = {}
        for path, key in items:
            digest = self.lookup(path, key)
            if digest is not None:
                found[path] = digest
        return found

    def record_many(self, items: Iterable[tuple[Path, StatKey, str]]) -> None:
        """Memoise digests, skipping files modified too recently to trust their mtime."""
        horizon = time.time_ns() - RACY_WINDOW_NS
        rows = [
            (str(p), k.size, k.mtime_ns, k.inode, d) for p, k, d in items if k.mtime_ns < horizon
        ]
        if not rows:
            return
        with self._connect() as conn:
            conn.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)", rows)

    def forget(self, path: Path) -> None:
        """Drop the memo of one path (after its content was found wrong)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM hashes WHERE path = ?", (str(path),))
