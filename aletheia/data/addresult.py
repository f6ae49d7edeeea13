"""What one ``datasets add`` did: the result both the full add and the local check return.

Kept apart from :mod:`aletheia.data.datasets` so the CLI's local answer to an
unchanged re-add (:mod:`aletheia.data.quickadd`) can build one without
importing the cloud clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: ``AddResult.checked`` of an add that asked the server (every add that writes).
CHECKED_SERVER = "server"
#: ``AddResult.checked`` of an unchanged re-add answered from this machine's record alone.
CHECKED_LOCAL = "local"


@dataclass(frozen=True)
class AddResult:
    """What ``add`` did."""

    name: str
    version: str
    created: bool
    parent: str | None
    file_count: int
    total_bytes: int
    files_uploaded: int
    bytes_uploaded: int
    bytes_hashed: int
    changes: dict[str, int]
    lock_file: Path | None = None
    #: Where the time went, in seconds: wall time of "scan" (walk, stat, memo),
    #: "transfer" (hashing and uploading, overlapped), "documents" (registry,
    #: manifest, version, ``files/``) and "total"; thread time summed over the
    #: workers of "hash", "head" (metadata requests) and "upload".
    seconds: dict[str, float] = field(default_factory=dict)
    #: Why ``parent`` is the parent: "explicit", "pull-state", "lock" or "latest".
    parent_from: str | None = None
    #: The data's path in the git repository recorded in the lock file (None: not recorded).
    workspace_path: str | None = None
    #: Lines this add appended to the repository's .gitignore.
    gitignore_added: list[str] = field(default_factory=list)
    #: Who said the data is unchanged: ``"server"`` (the version documents were read) or
    #: ``"local"`` (this machine's record of its last add of this path on this target;
    #: nothing was asked of the server, which ``--verify`` does).
    checked: str = CHECKED_SERVER
