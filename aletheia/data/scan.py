"""The files a dataset is made of: a directory walked, links followed, aletheia's own left out."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aletheia.cloud import layout
from aletheia.data import workspace
from aletheia.errors import ValidationError

#: Directories never taken into a dataset (aletheia's and git's own).
SKIP_DIRS = workspace.OWN_DIRS


def scan_tree(path: Path) -> list[tuple[str, Path]]:
    """``(relpath, absolute path)`` of every file under ``path`` (or ``path`` itself).

    See :func:`scan_tree_stats`, which also gives each file's ``stat``.
    """
    return [(rel, full) for rel, full, _ in scan_tree_stats(path)]


def scan_tree_stats(path: Path) -> list[tuple[str, Path, os.stat_result]]:
    """``(relpath, absolute path, stat)`` of every file under ``path`` (or ``path`` itself).

    The ``stat`` is the one the walk needed anyway (links followed): a caller
    comparing files with a stat memo need not ``stat`` each file again.

    Symlinks are followed (their targets' bytes are the data); a symlink loop,
    a dangling link, an unreadable directory, a special file or an empty tree
    is a :class:`ValidationError` raised before anything is uploaded.
    Aletheia's own files (:mod:`aletheia.data.workspace`: the pull state, ``.aletheia/``,
    partial downloads) and ``.git/`` are never data and are left out.
    """
    root = Path(path).expanduser()
    if not root.exists():
        if root.is_symlink():
            raise ValidationError(f"{root} is a dangling symlink", "point it at real data")
        raise ValidationError(f"{root} does not exist", "check the path you passed")
    if root.is_file():
        if workspace.is_own_file(root.name):
            raise ValidationError(f"{root} is aletheia's own file, not data", "add your data")
        full = root.resolve()
        return [(layout.validate_relpath(root.name), full, full.stat())]
    found: list[tuple[str, Path, os.stat_result]] = []
    _walk(root.resolve(), "", {_dir_key(root)}, found)
    if not found:
        raise ValidationError(f"{root} contains no files", "a dataset needs at least one file")
    found.sort()
    return found


def _dir_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


def _walk(directory: Path, prefix: str, ancestors: set[tuple[int, int]], out: list) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except PermissionError as exc:
        raise ValidationError(
            f"cannot list {directory}: permission denied", "fix its permissions or leave it out"
        ) from exc
    for entry in entries:
        if entry.name in SKIP_DIRS or workspace.is_own_file(entry.name):
            continue  # by name, before following links: never data, whatever it points at
        rel = f"{prefix}{entry.name}"
        # A child of a parsed path, and the entry's own stat: pathlib's parsing of a
        # whole path per file was most of the time of a 10,000-file unchanged re-add.
        full = directory / entry.name
        try:
            st = entry.stat()  # follows symlinks
        except FileNotFoundError as exc:
            raise ValidationError(f"{full} is a dangling symlink", "fix or remove it") from exc
        except OSError as exc:  # ELOOP: a link pointing at itself
            raise ValidationError(
                f"cannot follow {full}: {exc.strerror}", "fix or remove it"
            ) from exc
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                raise ValidationError(
                    f"symlink loop: {full} leads back to one of its parent directories",
                    "remove the link or add a directory below it",
                )
            _walk(full, f"{rel}/", ancestors | {key}, out)
        elif stat.S_ISREG(st.st_mode):
            out.append((layout.validate_relpath(rel), full, st))
        else:
            raise ValidationError(f"{full} is not a regular file", "leave sockets/devices out")
