"""Pinning a dataset in its git repository: the lock file entry, and the data kept out of git.

``datasets add`` (and ``pull --lock``) inside a repository pin the version
in ``.aletheia/datasets.lock`` (:mod:`aletheia.data.lockfile`). When the data
lies inside the repository its path is recorded too and git is made to
ignore it (:mod:`aletheia.data.gitignore`), as ``dvc add`` does. What could make
that impossible is checked by :func:`plan` before anything is hashed or
uploaded; :func:`pin` writes after the version exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aletheia.data import gitignore
from aletheia.data.lockfile import LockFile, find_repo_root
from aletheia.data.workspace import PULL_STATE
from aletheia.errors import ValidationError


@dataclass(frozen=True)
class Place:
    """A git repository and where in it a dataset's workspace is (``rel`` None: outside)."""

    root: Path
    rel: str | None
    is_file: bool


def plan(
    workdir: Path | None, path: Path | None, lock: bool | None, *, is_dir: bool | None = None
) -> Place | None:
    """Where pinning will record ``path``; ``None`` when nothing is to be pinned.

    ``lock``: ``False`` never pins, ``None`` pins inside a repository (found
    from ``workdir``, default cwd), ``True`` requires one. Data outside the
    repository is pinned without a path. Data inside must not be the
    repository itself (or git's or aletheia's own files), and git must not
    track it already: a .gitignore cannot hide tracked files, so the user is
    told the ``git rm --cached`` to run. ``is_dir``: what ``path`` will be if
    it does not exist yet (a pull target).
    """
    if lock is False:
        return None
    root = find_repo_root(workdir)
    if root is None:
        if lock:
            raise ValidationError(
                f"--lock needs a git repository; {workdir or Path.cwd()} is not in one",
                "run it inside your repo, or pass --no-lock",
            )
        return None
    if path is None:
        return Place(root, None, False)
    rel = gitignore.repo_relative(root, Path(path))
    if rel is None:
        return Place(root, None, False)
    gitignore.check_workspace_path(rel)
    if is_dir is None:
        is_dir = Path(path).expanduser().is_dir()
    tracked = gitignore.tracked_files(root, rel)
    if tracked:
        command = gitignore.untrack_command(rel, is_dir)
        raise ValidationError(
            f"{rel} is tracked by git ({len(tracked)} file(s)); aletheia keeps data out of "
            "git, and a .gitignore cannot hide tracked files",
            f"stop tracking it (the files stay on disk): `{command}`, commit, "
            "then add again; or pass --no-lock to leave git alone",
        )
    return Place(root, rel, not is_dir)


def pin(
    place: Place | None, project: str, name: str, version: str, digest: str
) -> tuple[Path | None, str | None, list[str]]:
    """Pin ``version`` (and the workspace path, kept out of git) in the lock file.

    Returns ``(lock file, recorded path, lines added to .gitignore)``.
    """
    if place is None:
        return None, None, []
    added: list[str] = []
    if place.rel is not None:
        also: tuple[str, ...] = ()
        if place.is_file:  # its directory also receives the pull state of later pulls
            parent = Path(place.rel).parent.as_posix()
            also = (f"{parent}/{PULL_STATE}" if parent != "." else PULL_STATE,)
        added = gitignore.ignore(place.root, place.rel, also=also)
    lock_file = LockFile.load(place.root)
    lock_file.pin(project, name, version, digest, path=place.rel)
    lock_file.save()
    return lock_file.path, place.rel, added
