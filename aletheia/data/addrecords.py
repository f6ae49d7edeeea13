"""This machine's record of its last add of each path: lets an unchanged re-add skip the server.

After every add, ``(target, project, dataset, absolute path)`` →
``(version, manifest digest, parent, file count, bytes)`` is kept in a small
SQLite file in the local cache (next to the stat memo,
:class:`aletheia.data.hashing.HashIndex`). When every file of the path is
answered by the stat memo and the manifest they make has that digest, the
data is the version recorded (:mod:`aletheia.data.quickadd`).

The *target* is where the documents live: the emulator host or the cloud
project, and the bucket; a record made against one stack never answers for
another. Removing a version through this machine drops the records naming it
(:func:`forget_version`); a removal elsewhere is not seen, which is why the
local answer says it was not re-checked. Like the stat memo it is only a
memo: a damaged file is treated as empty.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aletheia.cloud.config import Settings

#: The records' file, in the local file cache's directory.
ADDS_FILE = "adds.sqlite"


def target_of(settings: Settings) -> str:
    """Where ``settings`` put documents and blobs: one string, compared for equality."""
    host = settings.firestore_emulator_host if settings.uses_emulators else None
    return json.dumps([settings.mode, host, settings.cloud_project, settings.bucket])


@dataclass(frozen=True)
class Added:
    """The last add of one path: the version it was, and what it held."""

    version: str
    manifest_sha256: str
    parent: str | None
    file_count: int
    total_bytes: int


class AddRecords:
    """The records, in one SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS last_adds (target TEXT, project TEXT, dataset TEXT, "
            "path TEXT, version TEXT, manifest_sha256 TEXT, parent TEXT, file_count INTEGER, "
            "total_bytes INTEGER, PRIMARY KEY (target, project, dataset, path))"
        )
        return conn

    def get(self, target: str, project: str, name: str, path: Path) -> Added | None:
        """The last add of ``path`` as ``name`` on ``target``, if this machine made one."""
        if not self.path.is_file():
            return None
        try:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT version, manifest_sha256, parent, file_count, total_bytes "
                    "FROM last_adds WHERE target = ? AND project = ? AND dataset = ? AND path = ?",
                    (target, project, name, str(path)),
                ).fetchone()
        except sqlite3.Error:
            return None  # a memo: a damaged one only costs asking the server
        return None if row is None else Added(str(row[0]), str(row[1]), row[2], row[3], row[4])

    def record(self, target: str, project: str, name: str, path: Path, added: Added) -> None:
        """Remember that ``path`` holds ``added`` (replacing what it held before)."""
        try:
            with self._connect() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO last_adds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        target,
                        project,
                        name,
                        str(path),
                        added.version,
                        added.manifest_sha256,
                        added.parent,
                        added.file_count,
                        added.total_bytes,
                    ),
                )
        except sqlite3.Error:
            return  # a read-only or damaged cache: the next re-add asks the server

    def forget_version(self, target: str, project: str, name: str, version: str) -> None:
        """Drop every record naming ``version`` (it was removed): no path answers with it."""
        if not self.path.is_file():
            return
        try:
            with self._connect() as conn:
                conn.execute(
                    "DELETE FROM last_adds WHERE target = ? AND project = ? AND dataset = ? "
                    "AND version = ?",
                    (target, project, name, version),
                )
        except sqlite3.Error:
            # A record that cannot be dropped must not answer for a removed version.
            self.path.unlink(missing_ok=True)
