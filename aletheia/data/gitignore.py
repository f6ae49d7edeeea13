"""Keep a dataset's workspace out of git, as ``dvc add`` does.

``datasets add NAME PATH`` inside a repository appends ``/PATH`` (relative to
the repository root, anchored, special characters escaped) to the root
``.gitignore``, unless a committed ``.gitignore`` already ignores it. Git
itself answers "is it ignored, and by which rule" (``git check-ignore -v``)
and "is it tracked" (``git ls-files``), so git's own matching (nested
``.gitignore`` files, negations, directory rules) is used rather than
re-implemented.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

from aletheia.data.workspace import OWN_DIRS, PULL_STATE, write_atomically
from aletheia.errors import ConfigError, ValidationError

GITIGNORE = ".gitignore"
_GIT_FAILED = "do what git says, or pass --no-lock to leave the repository alone"
#: Characters with a meaning in a .gitignore pattern.
_SPECIAL = re.compile(r"([\\*?\[\]!#])")


def repo_relative(repo_root: Path, path: Path) -> str | None:
    """``path`` relative to ``repo_root`` (POSIX form), or ``None`` if it lies outside.

    The path is taken as written (a symlink named inside the repo stays inside),
    with its parent directory resolved if that is what places it in the repo.
    """
    root = repo_root.resolve()
    # Lexically normalised, symlinks kept (resolve() would move a linked dir outside).
    absolute = Path(os.path.normpath(Path(path).expanduser().absolute()))
    for candidate in (absolute, absolute.parent.resolve() / absolute.name):
        try:
            rel = candidate.relative_to(root)
        except ValueError:
            continue
        return rel.as_posix()
    return None


def check_workspace_path(rel: str) -> str:
    """Refuse workspace paths that would hide the repository or aletheia's own files."""
    parts = PurePosixPath(rel).parts
    if rel in ("", ".") or not parts:
        raise ValidationError(
            "the repository root cannot be a dataset workspace: ignoring it would "
            "ignore the lock file and the code",
            "add a directory or file inside the repository",
        )
    if parts[0] in OWN_DIRS or parts[-1] in (GITIGNORE, PULL_STATE):
        raise ValidationError(
            f"{rel} is git's or aletheia's own, not data (the lock file lives in .aletheia/)",
            "add a directory or file of data",
        )
    if any(c in rel for c in "\n\r"):
        raise ValidationError(f"{rel!r} cannot be written to .gitignore", "rename it")
    return rel


def pattern(rel: str) -> str:
    """The anchored .gitignore line matching exactly ``rel`` (a file or a directory)."""
    escaped = _SPECIAL.sub(r"\\\1", rel)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return f"/{escaped}"


def tracked_files(repo_root: Path, rel: str) -> list[str]:
    """Files under ``rel`` that git tracks (the index), which a .gitignore cannot hide.

    Empty files are left out: placeholders such as ``data/raw/.gitkeep`` (the
    cookiecutter-data-science layout) keep a directory in git, hold no data,
    and stay tracked harmlessly once the directory is ignored.
    """
    out = _git(repo_root, "ls-files", "-z", "--", f":(literal){rel}")
    return [p for p in out.split("\0") if p and _size(repo_root / p) != 0]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None  # tracked but gone from disk: still tracked, so still reported


def untrack_command(rel: str, is_dir: bool) -> str:
    """The command that stops git tracking ``rel`` while keeping the files on disk."""
    return f"git rm {'-r ' if is_dir else ''}--cached {shlex.quote(rel)}"


def is_ignored(repo_root: Path, rel: str) -> bool:
    """Whether a committed ``.gitignore`` makes git ignore ``rel`` (tracked or not).

    Rules only this clone has (``.git/info/exclude``, ``core.excludesFile``)
    do not count: a fresh clone would not have them, and its pulled data
    would show up in ``git status``.
    """
    done = _run(repo_root, "check-ignore", "-v", "-z", "--no-index", "--stdin", stdin=f"{rel}\0")
    if done.returncode == 1:
        return False
    if done.returncode != 0:
        raise ConfigError(f"git check-ignore failed: {done.stderr.strip()}", _GIT_FAILED)
    source, _line, rule, _path = [*done.stdout.split("\0"), "", "", "", ""][:4]
    if rule.startswith("!"):
        return False  # the deciding rule re-includes it
    where = PurePosixPath(source)
    return not where.is_absolute() and where.parts[:1] != (".git",) and where.name == GITIGNORE


def ignore(repo_root: Path, rel: str, *, also: tuple[str, ...] = ()) -> list[str]:
    """Make git ignore ``rel`` (and the paths in ``also``); return the lines added.

    Idempotent: nothing is written when git already ignores the path, and no
    line is ever written twice. If the path is still not ignored afterwards
    (a later ``!`` rule un-ignores it), that is an error naming the cause.
    """
    wanted = [(path, pattern(path)) for path in (rel, *also)]
    missing = [(path, line) for path, line in wanted if not is_ignored(repo_root, path)]
    if not missing:
        return []
    gitignore = repo_root / GITIGNORE
    try:
        text = gitignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    present = {line.rstrip("\r") for line in text.splitlines()}
    added = [line for _, line in missing if line not in present]
    if added:
        newline = "\r\n" if "\r\n" in text else "\n"
        if text and not text.endswith("\n"):
            text += newline
        text += "".join(line + newline for line in added)
        write_atomically(gitignore, text)
    for path, line in missing:
        if not is_ignored(repo_root, path):
            why = _run(repo_root, "check-ignore", "-v", "--no-index", "-n", "--", path)
            raise ConfigError(
                f"{path} is still not ignored by git after adding {line!r} to {gitignore}: "
                f"{why.stdout.strip()}",
                "remove the rule that un-ignores it (a line starting with '!')",
            )
    return added


def _git(repo_root: Path, *args: str) -> str:
    done = _run(repo_root, *args)
    if done.returncode != 0:
        raise ConfigError(f"git {args[0]} failed: {done.stderr.strip()}", _GIT_FAILED)
    return done.stdout


def _run(repo_root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo_root), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            "git is not installed, so the data cannot be kept out of the repository",
            "install git, or pass --no-lock",
        ) from exc
