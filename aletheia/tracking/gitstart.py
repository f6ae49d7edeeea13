"""The git state of a run at its start: one batch of git processes, no GitPython.

``start_run`` must decide the git policy before it returns (a strict refusal
writes nothing; a warning points at the caller), and what a run records
must be the tree *as it started*, not as it is a second later when the diff
and the untracked files have been read and uploaded in the background
(:mod:`aletheia.tracking.runcapture`). So :func:`read` takes, during
``start_run``:

* ``git status --porcelain=v2 --branch`` (commit, branch, upstream, ahead,
  every changed and untracked path) and, unless the policy is ``off`` and
  there is no upstream, the two remote-branch scans that say whether ``HEAD``
  is pushed, all three started at once (GitPython is not imported: on a busy
  machine its import alone costs more than the whole start);
* a *stamp* (mtime, ctime, size, inode) of every changed and untracked file.

Later readers check their bytes against these stamps: :func:`diff` keeps
only the paths changed at start, and leaves out (naming them) any whose stamp
moved, so an edit made after ``start_run`` returned never lands in the run's
diff; :meth:`StartGit.unchanged` does the same for the untracked files' snapshot.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aletheia.tracking.gitinfo import (
    MAX_UNTRACKED,
    TRUNCATION_MARKER,
    GitInfo,
    parse_status,
)

_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
#: A file's ctime comes from the kernel's coarse clock, which may lag the wall clock by a
#: tick: a file whose ctime is this close to the start may have changed just after it.
COARSE_CLOCK_NS = 20_000_000
#: Most bytes of paths handed to ``git diff`` on its command line.
MAX_PATHSPEC_BYTES = 100_000
#: Attempts at a diff whose files keep changing while it is read.
DIFF_ATTEMPTS = 3

Stamp = tuple[int, int, int, int] | None  # mtime_ns, ctime_ns, size, inode; None: no file


def stamp(path: Path) -> Stamp:
    """What a file's content is known by without reading it; ``None`` when it is absent."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class StartGit:
    """The tree as ``start_run`` saw it: :class:`GitInfo` (no diff, no remote) and stamps."""

    info: GitInfo
    changed_paths: tuple[str, ...] = ()
    #: As ``git status`` lists them: files, and directories (ending in ``/``) not walked.
    untracked_entries: tuple[str, ...] = ()
    stamps: dict[str, Stamp] = field(default_factory=dict, repr=False)
    #: When the stamps were taken (``time.time_ns``).
    taken_ns: int = 0

    def unchanged(self, rel: str, before: os.stat_result, after: os.stat_result) -> bool:
        """Whether untracked file ``rel``, read between ``before`` and ``after``, is as it was
        at start: its stamp, or (inside an untracked directory, not stamped) a ctime before it."""
        now = (after.st_mtime_ns, after.st_ctime_ns, after.st_size, after.st_ino)
        if now != (before.st_mtime_ns, before.st_ctime_ns, before.st_size, before.st_ino):
            return False  # changed while it was read
        if rel in self.stamps:
            return self.stamps[rel] == now
        return self.existed(rel) and after.st_ctime_ns < self.taken_ns - COARSE_CLOCK_NS

    def existed(self, rel: str) -> bool:
        """Whether ``rel`` was among (or under) the untracked paths at start."""
        if rel in self.stamps:
            return True
        return any(e.endswith("/") and rel.startswith(e) for e in self.untracked_entries)


def read_tree(path: Path, *, cheap: bool) -> StartGit:
    """The tree around ``path`` now (the repository is searched upwards), as
    :func:`aletheia.tracking.gitinfo.capture` reads it but without the diff and the remote
    URL; ``cheap`` (the ``off`` policy) skips the remote-branch scans. The policy is the
    caller's to apply (:func:`aletheia.tracking.gitinfo.apply_policy`)."""
    if not path.exists():
        return StartGit(GitInfo(in_repo=False, error=f"{path} does not exist"))
    base = ["git", "-C", str(path)]
    refs = [*base, "for-each-ref", "--count=1", "--format=%(refname)"]
    commands = {"status": [*base, "status", "--porcelain=v2", "--branch", "-z"]}
    commands["status"].append("--untracked-files=normal")  # a new directory is one entry
    if not cheap:  # whether HEAD is pushed, when there is no upstream to tell
        commands["remote"] = [*refs, "refs/remotes/"]
        commands["contains"] = [*refs, "--contains=HEAD", "refs/remotes/"]
    try:
        out = _run_all(commands)
    except OSError as exc:
        return StartGit(GitInfo(in_repo=False, error=f"git is not available: {exc}"))
    code, stdout, stderr = out["status"]
    if code != 0:
        message = " ".join(stderr.strip().splitlines())[:500]
        if "not a git repository" in message:
            return StartGit(GitInfo(in_repo=False))
        return StartGit(GitInfo(in_repo=True, root=_root(path), error=message or "git failed"))
    status = parse_status(stdout)
    root = _root(path)
    pushed: bool | None = None
    if status.ahead is not None:
        pushed = status.ahead == 0
    elif status.commit is not None and not cheap:
        pushed = bool(out["contains"][1].strip()) or (None if not out["remote"][1] else False)
    info = GitInfo(
        in_repo=True,
        root=root,
        commit=status.commit,
        branch=status.branch,
        detached=status.detached,
        upstream=status.upstream,
        dirty=bool(status.changed or status.untracked),
        changed=status.changed,
        untracked=tuple(status.untracked[:MAX_UNTRACKED]),
        untracked_count=len(status.untracked),
        pushed=pushed,
        ahead=status.ahead,
    )
    top = Path(root) if root else path
    files = [*status.changed_paths, *(u for u in status.untracked if not u.endswith("/"))]
    stamps = {rel: stamp(top / rel) for rel in files}
    return StartGit(
        info,
        tuple(status.changed_paths),
        tuple(status.untracked),
        stamps,
        time.time_ns(),
    )


def _run_all(commands: dict[str, list[str]]) -> dict[str, tuple[int, str, str]]:
    """Run git commands side by side: each waits on disk, not on the others."""
    env = {**os.environ, **_GIT_ENV}
    procs = {
        name: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for name, argv in commands.items()
    }
    done = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate()
        done[name] = (proc.returncode, stdout, stderr)
    return done


def _root(path: Path) -> str | None:
    """The working tree's top directory: the nearest directory holding ``.git``."""
    here = path.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    return None


def diff(start: StartGit, max_bytes: int) -> tuple[str | None, bool, list[str]]:
    """``git diff HEAD`` of the paths changed at start, as they were then.

    Returns the diff text (``None``: nothing to diff), whether it was cut at
    ``max_bytes``, and the paths left out because they changed after the
    start (their content then is gone: the run names them rather than
    record a later edit).
    """
    info = start.info
    if info.root is None or info.commit is None or not start.changed_paths:
        return None, False, []
    root = Path(info.root)
    paths = list(dict.fromkeys(start.changed_paths))
    moved: list[str] = []
    for _ in range(DIFF_ATTEMPTS):
        paths = [p for p in paths if p not in moved]
        if not paths:
            return None, False, sorted(moved)
        if sum(len(p.encode()) + 1 for p in paths) > MAX_PATHSPEC_BYTES:
            return None, False, sorted(moved)  # more changed paths than a command line holds
        text, truncated = _diff(root, paths, max_bytes)
        now_moved = [p for p in paths if stamp(root / p) != start.stamps.get(p)]
        if not now_moved:
            return text, truncated, sorted(moved)
        moved += now_moved
    return None, False, sorted(moved + paths)


def _diff(root: Path, paths: list[str], max_bytes: int) -> tuple[str, bool]:
    """The diff of ``paths`` (literal, not patterns), cut at ``max_bytes`` with the marker
    :func:`aletheia.tracking.gitinfo.capture` uses; no external diff drivers or filters."""
    argv = ["git", "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv"]
    env = {**os.environ, **_GIT_ENV, "GIT_LITERAL_PATHSPECS": "1"}
    proc = subprocess.Popen(
        [*argv, "--", *paths], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    try:
        data = proc.stdout.read(max_bytes + 1)
    finally:
        proc.kill()  # a huge diff is not read to its end
        proc.stdout.close()
        proc.wait()
    truncated = len(data) > max_bytes
    text = data[:max_bytes].decode("utf-8", errors="replace")
    if truncated:
        text += TRUNCATION_MARKER.format(limit=max_bytes)
    return text, truncated
