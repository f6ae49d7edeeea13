"""``datasets status``: each pinned workspace against its pinned version, like ``git status``.

For every dataset the repository's lock file pins with a workspace path,
the files on disk are compared with the pinned version's manifest:

* **modified**: the path is in both, with other bytes;
* **missing**: the version has it, the workspace does not;
* **extra**: the workspace has it, the version does not (aletheia's own
  files, :func:`aletheia.data.workspace.is_own_file`, are never data).

A file whose size differs is modified without being read; the others are
hashed, through the cache's stat memo (:class:`~aletheia.data.hashing.HashIndex`)
when it knows them, so a second ``status`` of an unchanged workspace reads
no bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from aletheia.data.datasets import DatasetStore
from aletheia.data.hashing import StatKey, sha256_files
from aletheia.data.lockfile import Pin, repository_lock
from aletheia.data.manifests import FileEntry
from aletheia.data.pull import workspace_target
from aletheia.data.scan import scan_tree
from aletheia.errors import ValidationError


@dataclass
class WorkspaceStatus:
    """One pinned dataset's workspace against its pinned version."""

    project: str
    name: str
    version: str
    path: str | None
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    #: Files read to decide (the rest were known by size or the stat memo).
    hashed: int = 0

    @property
    def clean(self) -> bool:
        """The workspace holds exactly the pinned version."""
        return not (self.modified or self.missing or self.extra)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "project": self.project,
            "name": self.name,
            "version": self.version,
            "path": self.path,
            "clean": self.clean,
            "modified": self.modified,
            "missing": self.missing,
            "extra": self.extra,
        }


def status(
    store_for: Callable[[str], DatasetStore], project: str | None, workdir: Path | None = None
) -> list[WorkspaceStatus]:
    """The status of every pinned workspace (of ``project``, or of every project pinned)."""
    root, lock = repository_lock(
        workdir, "run it inside the repository whose datasets you want to compare"
    )
    projects = [project] if project is not None else lock.projects()
    found: list[WorkspaceStatus] = []
    for p in projects:
        pins = lock.pins_of(p)
        if not pins:
            continue
        store = store_for(p)
        for name, pin in sorted(pins.items()):
            found.append(workspace_status(store, root, name, pin))
    return found


def workspace_status(store: DatasetStore, root: Path, name: str, pin: Pin) -> WorkspaceStatus:
    """Compare the workspace of one pin with its version's manifest."""
    result = WorkspaceStatus(store.project, name, pin.version, pin.path)
    if pin.path is None:
        return result  # pinned without a workspace in the repository: nothing to compare
    manifest = store.manifest(name, pin.version)
    target = workspace_target(root, pin.path, list(manifest.values()))
    on_disk = _files(target, manifest, pin.path)
    result.missing = sorted(set(manifest) - set(on_disk))
    result.extra = sorted(set(on_disk) - set(manifest))
    both = sorted(set(manifest) & set(on_disk))
    result.modified, result.hashed = _modified(store, manifest, on_disk, both)
    return result


def _files(target: Path, manifest: dict[str, FileEntry], pin_path: str) -> dict[str, Path]:
    """The workspace's files by relative path (a single-file dataset: that one file)."""
    if len(manifest) == 1 and next(iter(manifest)) == PurePosixPath(pin_path).name:
        rel = next(iter(manifest))  # added as a file: the workspace is that file alone
        return {rel: target / rel} if (target / rel).is_file() else {}
    if not target.is_dir():
        return {}
    try:
        return dict(scan_tree(target))
    except ValidationError:  # an empty directory: every file is missing
        return {}


def _modified(
    store: DatasetStore, manifest: dict[str, FileEntry], on_disk: dict[str, Path], both: list[str]
) -> tuple[list[str], int]:
    modified: list[str] = []
    keys: dict[str, StatKey] = {}
    for rel in both:
        key = StatKey.of(on_disk[rel].stat())
        if key.size != manifest[rel].size:
            modified.append(rel)
        else:
            keys[rel] = key
    memo = store.cache.index if store.cache is not None else None
    known = memo.lookup_many((on_disk[r], k) for r, k in keys.items()) if memo else {}
    unknown = [r for r in keys if on_disk[r] not in known]
    hashed = sha256_files([on_disk[r] for r in unknown])
    digests = {r: digest for r, (digest, _size) in zip(unknown, hashed, strict=True)}
    if memo is not None and unknown:
        memo.record_many((on_disk[r], keys[r], digests[r]) for r in unknown)
    for rel in keys:
        digest = known.get(on_disk[rel]) or digests[rel]
        if digest != manifest[rel].sha256:
            modified.append(rel)
    return sorted(modified), len(unknown)
