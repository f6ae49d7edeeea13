"""Git hooks that keep pinned datasets in step with commits (``aletheia git install-hooks``).

* ``post-checkout`` (a branch or tag checked out) and ``post-merge`` (``git
  pull``): when the lock file differs between the old and the new commit,
  every pinned dataset is pulled to its workspace (:func:`aletheia.data.pull.pull_pinned`),
  so the data follows the branch. Local edits in the way stop that pull,
  named, as ``datasets pull`` does; the checkout itself has already happened.
* ``pre-push``: every commit being pushed whose lock file pins a version
  this project's catalog or bucket lacks refuses the push
  (:func:`missing_pins`), saying which and how to fix it: someone who clones
  the commit could not pull its data.

The hooks are small shell scripts calling this installation's aletheia
with the interpreter that installed them. A hook file that is not
aletheia's is never overwritten without ``force``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from aletheia.data.datasets import DatasetStore
from aletheia.data.lockfile import LOCK_DIR, LOCK_NAME, LockFile
from aletheia.data.manifests import version_doc
from aletheia.errors import ConflictError, NotFoundError, ValidationError

HOOKS = ("post-checkout", "post-merge", "pre-push")
MARKER = "# aletheia: keeps pinned datasets in step with git"
_ZERO = "0" * 40
LOCK_IN_GIT = f"{LOCK_DIR}/{LOCK_NAME}"


def hooks_dir(repo_root: Path) -> Path:
    """Where git reads hooks for this repository (``core.hooksPath`` honoured)."""
    out = _git(repo_root, "rev-parse", "--git-path", "hooks").strip()
    path = Path(out)
    return path if path.is_absolute() else repo_root / path


def script(hook: str) -> str:
    """The hook's shell script: this interpreter running aletheia's ``git hook`` command."""
    python = shlex.quote(sys.executable)
    call = shlex.quote("from aletheia.cli import main; main()")
    return f'#!/bin/sh\n{MARKER}\nexec {python} -c {call} git hook {hook} "$@"\n'


def install(repo_root: Path, *, force: bool = False) -> list[Path]:
    """Write the hooks; refuse (naming them) to replace hooks that are not aletheia's."""
    where = hooks_dir(repo_root)
    foreign = [
        where / h
        for h in HOOKS
        if (where / h).exists() and MARKER not in (where / h).read_text(errors="replace")
    ]
    if foreign and not force:
        raise ConflictError(
            f"{', '.join(str(p) for p in foreign)} already exist and are not aletheia's",
            'call `aletheia git hook NAME "$@"` from them yourself, or pass --force to replace',
        )
    where.mkdir(parents=True, exist_ok=True)
    written = []
    for hook in HOOKS:
        path = where / hook
        path.write_text(script(hook), encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written


def lock_at(repo_root: Path, commit: str) -> str | None:
    """The lock file's text at ``commit`` (None: it has none)."""
    done = subprocess.run(
        ["git", "-C", str(repo_root), "show", f"{commit}:{LOCK_IN_GIT}"],
        capture_output=True,
        text=True,
    )
    return done.stdout if done.returncode == 0 else None


def lock_changed(repo_root: Path, old: str, new: str) -> bool:
    """Whether the pins differ between two commits (a new branch from nothing: True)."""
    if old == _ZERO:
        return True
    return lock_at(repo_root, old) != lock_at(repo_root, new)


def pushed_commits(pre_push_input: str) -> list[str]:
    """The local commits a ``pre-push`` hook is told about (deletions left out)."""
    found = []
    for line in pre_push_input.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] != _ZERO:
            found.append(parts[1])
    return found


def missing_pins(
    store_for: Callable[[str], DatasetStore], repo_root: Path, commits: list[str]
) -> list[str]:
    """``project/name version`` (with why) of each pin of ``commits`` not stored remotely.

    A version is there when its document exists and its manifest is in the
    bucket (the version document is written only after every file is).
    """
    problems: dict[str, str] = {}
    seen: set[tuple[str, str, str]] = set()
    for commit in commits:
        text = lock_at(repo_root, commit)
        if text is None:
            continue
        lock = LockFile.from_text(text, Path(f"{commit[:12]}:{LOCK_IN_GIT}"))
        for project in lock.projects():
            store = store_for(project)
            for name, pin in lock.pins_of(project).items():
                key = (project, name, pin.version)
                if key in seen:
                    continue
                seen.add(key)
                label = f"{project}/{name} {pin.version}"
                try:
                    doc = version_doc(store.db, project, name, pin.version)
                except NotFoundError:
                    problems[label] = "no such version in the catalog"
                    continue
                manifest = doc.get("manifest_sha256")
                if manifest and not store.blobs.exists(str(manifest)):
                    problems[label] = f"its manifest is not in gs://{store.blobs.bucket.name}"
    return [f"{label}: {why}" for label, why in sorted(problems.items())]


def refuse_if_missing(problems: list[str]) -> None:
    """Raise the error that stops a push when pins are missing remotely."""
    if problems:
        raise ValidationError(
            "push refused: the pushed commits pin dataset versions others could not pull: "
            + "; ".join(problems),
            "add the data to this project (`aletheia datasets add NAME PATH`), or pin a version "
            "that exists (`aletheia datasets pull NAME --version V --lock`) and commit the lock "
            "file; `git push --no-verify` skips this check",
        )


def _git(repo_root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValidationError(
            f"git {args[0]} failed: {done.stderr.strip()}", "check the repository"
        )
    return done.stdout
