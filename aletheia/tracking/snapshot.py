"""The untracked source files of a run: read at run start, kept as content-addressed blobs.

``git diff HEAD`` says what changed in tracked files; an untracked
``helpers.py`` the script imports is just as much part of what ran. At run
start :func:`capture` lists the untracked, *not ignored* files of the
repository (``git ls-files --others --exclude-standard``: git's own ignore
rules), and keeps the smallest ones first until a budget is spent (default
:data:`DEFAULT_MAX_BYTES`, 10 MB in all; the ``snapshot_max_bytes`` setting,
0 turns it off). What does not fit, is not a regular file, or is past
:data:`MAX_FILES` is listed on the run as skipped, with why.

The kept files become blobs (one per distinct content) and a JSON manifest
``{"format": 1, "files": [{path, sha256, size, mode}]}`` becomes one more;
the run document holds the manifest's reference (``git.snapshot_ref``) and a
summary (``git.snapshot``). The manifest is uploaded last, so its presence in
the bucket proves every file it names is there: a run whose untracked files
did not change since the last snapshot costs one metadata request and stores
nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aletheia.cloud import config
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConfigError, IntegrityError, ValidationError

if TYPE_CHECKING:
    from aletheia.data.blobstore import BlobStore

log = logging.getLogger(__name__)

#: Default budget for untracked files' bytes, in all.
DEFAULT_MAX_BYTES = config.DEFAULT_SNAPSHOT_MAX_BYTES
#: Most files kept in one snapshot: each is a blob upload the first time, and the first
#: start of a run in a tree of many small unignored files must not take seconds.
MAX_FILES = 300
#: Most untracked paths read from git; a tree with more (an unignored venv) is cut here.
MAX_LISTED = 20_000
#: Most skipped paths named on the run document (the count is always exact).
MAX_SKIPPED_SHOWN = 100
MANIFEST_FORMAT = 1
MANIFEST_TYPE = "application/json"

_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}

# Manifest sha256 -> file digests, for the blob registry of the run this process starts.
_digests_lock = threading.Lock()
_digests: dict[str, list[str]] = {}


@dataclass(frozen=True)
class SnapshotFile:
    """One untracked file kept: its path (POSIX, relative to the repository root)."""

    path: str
    sha256: str
    size: int
    executable: bool

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "mode": "755" if self.executable else "644",
        }


@dataclass(frozen=True)
class Skipped:
    """An untracked file not kept, and why."""

    path: str
    size: int | None
    reason: str


@dataclass
class Snapshot:
    """The untracked files of one working tree: kept (with their bytes) and skipped."""

    files: list[SnapshotFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    max_bytes: int = DEFAULT_MAX_BYTES
    listing_cut: bool = False
    data: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def total_bytes(self) -> int:
        """Bytes of the kept files."""
        return sum(f.size for f in self.files)

    def manifest(self) -> bytes:
        """The manifest, deterministic for the same files (same bytes: same blob)."""
        entries = [f.to_dict() for f in sorted(self.files, key=lambda f: f.path)]
        return json.dumps(
            {"format": MANIFEST_FORMAT, "files": entries}, sort_keys=True, separators=(",", ":")
        ).encode()

    def summary(self) -> dict[str, Any]:
        """The run document's ``git.snapshot`` map."""
        return {
            "files": len(self.files),
            "bytes": self.total_bytes,
            "max_bytes": self.max_bytes,
            "skipped": [
                {"path": s.path, "size": s.size, "reason": s.reason}
                for s in self.skipped[:MAX_SKIPPED_SHOWN]
            ],
            "skipped_count": len(self.skipped),
            "listing_cut": self.listing_cut,
        }


#: Whether a file read between two stats (relative path, before, after) is as it was when
#: the run started (:meth:`aletheia.tracking.gitstart.StartGit.unchanged`).
AsStarted = Callable[[str, os.stat_result, os.stat_result], bool]


def capture(
    root: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    existed: Callable[[str], bool] | None = None,
    as_started: AsStarted | None = None,
) -> Snapshot:
    """Read the untracked, non-ignored files under ``root`` within ``max_bytes``.

    Smallest first, so one big stray file does not crowd out the source
    files; reads at most ``max_bytes`` bytes in all. Read after the run
    started, files that did not exist then (``existed``) are not listed, and
    files that changed since (``as_started``) are skipped, with that reason.
    """
    if max_bytes < 0:
        raise ValidationError(f"snapshot_max_bytes is {max_bytes}", "give 0 or more bytes")
    paths, cut = untracked_paths(root)
    if existed is not None:
        paths = [p for p in paths if existed(p)]
    snap = Snapshot(max_bytes=max_bytes, listing_cut=cut)
    sized: list[tuple[int, str]] = []
    for rel in paths:
        if not _is_text(rel):  # Firestore and JSON manifests hold only valid UTF-8 names
            snap.skipped.append(Skipped(_printable(rel), None, "its name is not valid UTF-8"))
            continue
        try:
            info = os.lstat(root / rel)
        except OSError as exc:  # deleted since git listed it
            snap.skipped.append(Skipped(rel, None, f"unreadable: {exc.strerror}"))
            continue
        if stat.S_ISLNK(info.st_mode):
            snap.skipped.append(Skipped(rel, None, "a symbolic link"))
        elif not stat.S_ISREG(info.st_mode):
            snap.skipped.append(Skipped(rel, None, "not a regular file"))
        else:
            sized.append((info.st_size, rel))
    budget = max_bytes
    for size, rel in sorted(sized):
        if len(snap.files) >= MAX_FILES:
            snap.skipped.append(Skipped(rel, size, f"more than {MAX_FILES} untracked files"))
            continue
        if size > budget:
            snap.skipped.append(Skipped(rel, size, f"over the {max_bytes}-byte snapshot budget"))
            continue
        _keep(root, rel, snap, as_started)
        budget = max_bytes - snap.total_bytes
    snap.skipped.sort(key=lambda s: s.path)
    return snap


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept as lone surrogates
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _keep(root: Path, rel: str, snap: Snapshot, as_started: AsStarted | None = None) -> None:
    path = root / rel
    try:
        before = os.lstat(path)
        data = path.read_bytes()  # the bytes hashed are the bytes uploaded
        after = os.lstat(path)
        executable = bool(path.stat().st_mode & stat.S_IXUSR)
    except OSError as exc:
        snap.skipped.append(Skipped(rel, None, f"unreadable: {exc.strerror}"))
        return
    if as_started is not None and not as_started(rel, before, after):
        snap.skipped.append(Skipped(rel, len(data), "changed after the run started"))
        return
    if len(data) > snap.max_bytes - snap.total_bytes:  # grew since it was measured
        snap.skipped.append(Skipped(rel, len(data), "grew past the snapshot budget"))
        return
    digest = hashlib.sha256(data).hexdigest()
    snap.files.append(SnapshotFile(rel, digest, len(data), executable))
    snap.data[digest] = data


def untracked_paths(root: Path) -> tuple[list[str], bool]:
    """Untracked, non-ignored files under ``root`` (relative, POSIX), and whether cut short."""
    proc = subprocess.Popen(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **_GIT_ENV},
    )
    assert proc.stdout is not None
    paths: list[str] = []
    buffer = b""
    cut = False
    try:
        while chunk := proc.stdout.read(1 << 16):
            buffer += chunk
            *done, buffer = buffer.split(b"\0")
            paths.extend(p.decode("utf-8", errors="surrogateescape") for p in done if p)
            if len(paths) > MAX_LISTED:
                cut = True
                break
    finally:
        if cut:
            proc.kill()
        proc.stdout.close()
        proc.wait()
    return paths[:MAX_LISTED], cut


def store(blobs: BlobStore, snap: Snapshot) -> dict[str, Any] | None:
    """Upload the kept files, then the manifest; its ``{sha256, uri, size}``, or None if empty.

    When the manifest is already in the bucket, so is every file it names:
    nothing is sent.
    """
    if not snap.files:
        return None
    manifest = snap.manifest()
    digest = hashlib.sha256(manifest).hexdigest()
    with _digests_lock:
        _digests[digest] = sorted(snap.data)
    if not blobs.exists(digest):
        run_parallel(lambda sha: blobs.put_bytes(snap.data[sha]), sorted(snap.data))
        blobs.put_bytes(manifest, content_type=MANIFEST_TYPE)
    return {"sha256": digest, "uri": blobs.uri(digest), "size": len(manifest)}


def capture_and_store(
    blobs: Callable[[], BlobStore],
    root: str | None,
    max_bytes: int,
    *,
    existed: Callable[[str], bool] | None = None,
    as_started: AsStarted | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(snapshot_ref, snapshot summary)`` for the run document; never fails the run.

    A missing bucket is the one error raised (said before the run exists,
    as for the diff); anything else is logged and recorded as the summary's
    ``error``.
    """
    if root is None or max_bytes == 0:
        return None, None
    try:
        snap = capture(Path(root), max_bytes, existed=existed, as_started=as_started)
    except (OSError, ValueError) as exc:
        log.warning("aletheia: could not read untracked files (%s)", exc)
        return None, {"error": str(exc)[:500]}
    summary = snap.summary()
    try:
        ref = store(blobs(), snap)
    except ConfigError:
        raise
    except Exception as exc:  # the run goes on without its snapshot
        log.warning("aletheia: could not store the untracked files (%s)", exc)
        summary["error"] = str(exc)[:500]
        return None, summary
    return ref, summary


def file_digests(manifest_sha256: str) -> list[str]:
    """The file blobs of a manifest this process stored (for the blob registry)."""
    with _digests_lock:
        return list(_digests.get(manifest_sha256, ()))


def decode_manifest(data: bytes) -> list[dict[str, Any]]:
    """The file entries of a snapshot manifest, checked."""
    try:
        doc = json.loads(data)
        files = doc["files"]
        if doc.get("format") != MANIFEST_FORMAT or not isinstance(files, list):
            raise ValueError("unknown format")
        for entry in files:
            if not (isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str)):
                raise ValueError("an entry without path or sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(
            f"the run's snapshot manifest cannot be read ({exc})", "the run's snapshot is unusable"
        ) from exc
    return list(files)
