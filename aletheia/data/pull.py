"""Put pinned datasets where the repository expects them (``dvc pull`` for aletheia).

The lock file records, per dataset, the pinned version and (when it was
added from inside the repository) its workspace path. ``aletheia datasets
pull`` with no name pulls every pin: a dataset with a path goes there (a
single-file dataset to that file), verified; one without goes to the cache
checkout. ``datasets pull NAME`` with neither ``--to`` nor ``--version`` uses
the recorded path too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from aletheia.data import gitignore
from aletheia.data.getversion import DatasetHandle
from aletheia.data.lockfile import LockFile, find_repo_root, repository_lock
from aletheia.data.manifests import FileEntry
from aletheia.errors import ValidationError

if TYPE_CHECKING:  # the store loads the cloud clients; the CLI imports this module for every add
    from aletheia.data.datasets import DatasetStore


@dataclass(frozen=True)
class PulledPin:
    """One pinned dataset put in place."""

    project: str
    name: str
    version: str
    #: The workspace path recorded in the lock file (None: the cache checkout was used).
    path: str | None
    local_path: Path | None
    file_count: int


def workspace_target(root: Path, rel: str, files: list[FileEntry]) -> Path:
    """The directory the files of a dataset recorded at ``rel`` go to.

    A single-file dataset was added as that file, so its one entry (named
    like the file) goes to the file's directory. A target outside the
    repository once symlinks are followed is allowed only through symlinks
    git does not track (the user's own, e.g. ``data -> /mnt/big``): a
    symlink committed on someone's branch must not aim a pull at, say, ``~/.ssh``.
    """
    target = root / rel
    if len(files) == 1 and files[0].path == PurePosixPath(rel).name:
        target = target.parent
    base = root.resolve()
    resolved = target.resolve()
    if resolved == base or base in resolved.parents:
        return target
    parts = PurePosixPath(rel).parts
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if (root / prefix).is_symlink() and gitignore.tracked_files(root, prefix):
            raise ValidationError(
                f"{rel} leads outside the repository to {resolved} through {prefix}, "
                "a symlink committed to git",
                "check that link; pull with --to somewhere else if it is meant",
            )
    return target


def pull(
    store: DatasetStore,
    name: str,
    version: str | None = None,
    *,
    to: Path | None = None,
    lock: bool = False,
    force: bool = False,
) -> tuple[DatasetHandle, str | None]:
    """Pull one dataset, verified; without ``to`` and ``version``, to its recorded workspace.

    Returns the handle and the workspace path used (None: ``to`` or the cache).
    """
    root = find_repo_root(store.workdir)
    if to is None and version is None and root is not None:
        pin = LockFile.load(root).get(store.project, name)
        if pin is not None and pin.path is not None:
            target = workspace_target(
                root, pin.path, list(store.manifest(name, pin.version).values())
            )
            # The pin is already this version at this path: nothing to re-pin.
            handle = store.get(name, None, to=target, verify="full", force=force)
            return handle, pin.path
    return store.get(name, version, to=to, verify="full", lock=lock, force=force), None


def pull_pinned(
    store_for: Callable[[str], DatasetStore],
    project: str | None,
    workdir: Path | None = None,
    *,
    force: bool = False,
) -> list[PulledPin]:
    """Pull every dataset the repository's lock file pins (of ``project``, or of all).

    ``store_for(project)`` gives the store of one aletheia project.
    """
    _, lock = repository_lock(
        workdir, "run it inside the repository, or name the dataset: `datasets pull NAME --to DIR`"
    )
    projects = [project] if project is not None else lock.projects()
    if not any(lock.pins_of(p) for p in projects):
        raise ValidationError(
            f"{lock.path} pins no dataset" + (f" of project {project!r}" if project else ""),
            "pin one with `aletheia datasets add NAME PATH` or `datasets pull NAME --lock`",
        )
    out: list[PulledPin] = []
    for p in projects:
        store = store_for(p)
        for name in lock.pins_of(p):
            handle, used = pull(store, name, force=force)
            out.append(
                PulledPin(p, name, handle.version, used, handle.local_path, len(handle.files))
            )
    return out
