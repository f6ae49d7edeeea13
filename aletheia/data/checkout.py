"""Place a dataset version's files in a directory without losing local edits.

A pull copies (or links) cached objects into a workspace and removes the
files the previous pull of the same dataset placed there that the new version
lacks (switching branches). A file in the way is safe to replace when its
bytes are the new version's, the ones the previous pull placed at that path,
or stored in the bucket already (some add uploaded them: a version holds
them). Anything else is a local edit or a file the user put there, which
exists nowhere else: the pull refuses, naming the files, unless ``force``.
A fresh directory costs nothing extra; an existing one costs one hash per
file in the way (answered by the stat memo when it can be) and one HEAD per
file whose bytes are not otherwise known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aletheia.data.cache import LinkMode, LocalCache, safe_join
from aletheia.data.hashing import StatKey, default_workers, sha256_files
from aletheia.data.transfer import run_parallel
from aletheia.errors import ConflictError

#: Files named in the refusal; the count says how many there are.
MAX_LISTED = 10


@dataclass(frozen=True)
class Placement:
    """What to put where: ``files`` is ``{relpath: sha256}`` of the version to place."""

    files: dict[str, str]
    #: ``{relpath: sha256}`` the previous pull of this dataset placed (unknown: empty).
    previous: dict[str, str]
    #: Paths the previous pull placed (known even when their digests are not).
    previous_paths: frozenset[str]


def place(
    cache: LocalCache,
    root: Path,
    plan: Placement,
    mode: LinkMode,
    *,
    stored: Callable[[str], bool],
    force: bool = False,
) -> None:
    """Put ``plan.files`` under ``root`` and remove the previous pull's leftovers.

    ``stored(sha256)``: whether the bucket holds those bytes. Raises
    :class:`ConflictError` before changing anything if a file in the way holds
    bytes that would be lost (see the module docstring).
    """
    root.mkdir(parents=True, exist_ok=True)
    todo = {
        rel: sha
        for rel, sha in sorted(plan.files.items())
        if not _already_placed(cache, safe_join(root, rel), sha, mode)
    }
    stale = {
        rel: safe_join(root, rel)
        for rel in sorted(plan.previous_paths - plan.files.keys())
        if safe_join(root, rel).is_file() or safe_join(root, rel).is_symlink()
    }
    in_the_way = {rel: safe_join(root, rel) for rel in todo}
    current = _digests({**in_the_way, **stale}, cache)
    unknown = {
        rel: sha
        for rel, sha in current.items()
        if sha != plan.files.get(rel) and sha != plan.previous.get(rel)
    }
    digests = sorted(set(unknown.values()))
    kept = {sha for sha, ok in zip(digests, run_parallel(stored, digests), strict=True) if ok}
    lost = sorted(rel for rel, sha in unknown.items() if sha not in kept)
    if lost and not force:
        listed = ", ".join(lost[:MAX_LISTED]) + (" …" if len(lost) > MAX_LISTED else "")
        raise ConflictError(
            f"{len(lost)} file(s) in {root} hold changes no version has and would be "
            f"overwritten or removed: {listed}",
            "save them first (`aletheia datasets add NAME DIR`), move them away, "
            "or pass --force to discard them",
        )
    for rel, sha in todo.items():
        if current.get(rel) != sha:  # equal bytes already there: nothing to copy
            cache.materialize(sha, safe_join(root, rel), mode)
    for target in stale.values():
        target.unlink()


def _already_placed(cache: LocalCache, dest: Path, sha256: str, mode: LinkMode) -> bool:
    try:
        st = dest.stat()
    except FileNotFoundError:
        return False
    src = cache.path(sha256)
    if mode == "hardlink" or mode == "symlink":
        return dest.resolve() == src or st.st_ino == src.stat().st_ino
    return cache.index.lookup(dest.resolve(), StatKey.of(st)) == sha256


def _digests(paths: dict[str, Path], cache: LocalCache) -> dict[str, str]:
    """``{relpath: sha256}`` of those ``paths`` that are regular files (not links into
    the cache, which hold no edits), via the stat memo or hashing."""
    files = {rel: p for rel, p in paths.items() if p.is_file() and not p.is_symlink()}
    if not files:
        return {}
    stats = {rel: StatKey.of(p.stat()) for rel, p in files.items()}
    found: dict[str, str] = {}
    for rel, p in files.items():
        memo = cache.index.lookup(p, stats[rel])
        if memo is not None:
            found[rel] = memo
    rest = [rel for rel in files if rel not in found]
    digests = sha256_files([files[rel] for rel in rest], workers=default_workers())
    found.update({rel: sha for rel, (sha, _) in zip(rest, digests, strict=True)})
    cache.index.record_many((files[rel], stats[rel], found[rel]) for rel in rest)
    return found
