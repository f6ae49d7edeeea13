"""What code a run ran: commit, branch, dirty state, diff and whether the commit is pushed.

:func:`capture` answers, for the git working tree around a script:

- which commit is checked out, on which branch (``None`` on a detached HEAD),
  tracking which upstream, fetched from which remote (credentials stripped);
- whether the tree is **dirty**. Dirty means *tracked* changes (staged or
  not, relative to ``HEAD``) **or untracked, not ignored files**: an
  untracked ``model.py`` changes what a run does as much as an edit does, and
  outputs belong in ``.gitignore``. The untracked files are listed (capped);
- the ``git diff HEAD`` of a dirty tree (staged and unstaged, capped with a
  clear marker; untracked file *contents* are never read, so a big untracked
  data file costs nothing);
- whether ``HEAD`` is **pushed**: contained in its upstream, or, without an
  upstream, in any remote-tracking branch. ``None`` when there is nothing to
  compare with (no remote-tracking branches at all). This is checked against
  the remote-tracking refs as of the last ``git fetch``: capture never touches
  the network.

The git **policy** decides what happens with a dirty tree or an unpushed
commit (seed 001: "check you run on an up-to-date commit"):

- ``"warn"`` (default): a :class:`GitPolicyWarning` via :mod:`warnings` for
  each problem; the run goes on.
- ``"strict"``: :class:`~aletheia.errors.GitPolicyError` listing every
  problem. Strict also refuses to run *outside* a git repository, on a
  repository without commits and when the commit is on no remote: strict
  promises that the run's code can be checked out again by someone else, and
  none of those can keep that promise.
- ``"off"`` (notebooks): no checks, no warnings, and only what is cheap is
  recorded: commit, branch, remote, dirty state and untracked files (one
  ``git status``), but no diff and no scan of remote branches.

Everything runs through GitPython, with ``GIT_OPTIONAL_LOCKS=0`` so a capture
during training never takes ``index.lock`` from under the user's own git.
"""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aletheia.cloud.redact import redact_url
from aletheia.errors import GitPolicyError, ValidationError

log = logging.getLogger(__name__)

Policy = Literal["warn", "strict", "off"]
POLICIES: tuple[str, ...] = ("warn", "strict", "off")

#: Largest diff kept, in bytes of ``git diff`` output; more is cut with a marker.
MAX_DIFF_BYTES = 1024 * 1024
#: Most untracked paths listed (the count is always exact).
MAX_UNTRACKED = 100
#: Marker that ends a truncated diff, so nobody applies a partial patch unaware.
TRUNCATION_MARKER = (
    "\n# aletheia: diff truncated after {limit} bytes; run `git diff HEAD` for all\n"
)

# Never let a capture take the index lock or prompt for anything.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
_STRICT_HINT = "commit and push, or use git_policy='warn'"


class GitPolicyWarning(UserWarning):
    """The working tree breaks the git policy, but the policy is ``warn``."""


@dataclass(frozen=True)
class GitInfo:
    """The state of the git working tree a run started from.

    ``in_repo`` is False outside a git working tree (then every other field is
    empty). ``error`` says why git could not be read, if it could not.
    """

    in_repo: bool
    root: str | None = None
    commit: str | None = None
    branch: str | None = None
    detached: bool = False
    remote: str | None = None
    upstream: str | None = None
    dirty: bool = False
    changed: int = 0
    untracked: tuple[str, ...] = ()
    untracked_count: int = 0
    pushed: bool | None = None
    ahead: int | None = None
    diff: str | None = field(default=None, repr=False)
    diff_truncated: bool = False
    error: str | None = None

    def to_doc(self) -> dict[str, Any]:
        """A Firestore-ready map of everything but the diff text (that one is a blob)."""
        return {
            "in_repo": self.in_repo,
            "root": self.root,
            "commit": self.commit,
            "branch": self.branch,
            "detached": self.detached,
            "remote": self.remote,
            "upstream": self.upstream,
            "dirty": self.dirty,
            "changed": self.changed,
            "untracked": list(self.untracked),
            "untracked_count": self.untracked_count,
            "pushed": self.pushed,
            "ahead": self.ahead,
            "diff_truncated": self.diff_truncated,
            "error": self.error,
        }

    def problems(self) -> list[str]:
        """What the strict policy objects to, in words (empty when all is well)."""
        if not self.in_repo:
            return [f"not in a git repository{f' ({self.error})' if self.error else ''}"]
        if self.error:
            return [f"git could not be read: {self.error}"]
        if self.commit is None:
            return ["the repository has no commit yet"]
        found = []
        if self.dirty:
            found.append(f"the working tree is dirty ({self._dirt()})")
        if self.pushed is False:
            where = self.upstream or "any remote branch"
            ahead = f"{self.ahead} commit(s) ahead of " if self.ahead else "not in "
            found.append(f"commit {self.commit[:12]} is not pushed: {ahead}{where}")
        elif self.pushed is None:
            found.append(
                f"commit {self.commit[:12]} is on no remote "
                "(the repository has no remote-tracking branches; push it, or git fetch)"
            )
        return found

    def _dirt(self) -> str:
        parts = []
        if self.changed:
            parts.append(f"{self.changed} changed file(s)")
        if self.untracked_count:
            shown = ", ".join(self.untracked[:5])
            more = "…" if self.untracked_count > 5 else ""
            parts.append(f"{self.untracked_count} untracked: {shown}{more}")
        return "; ".join(parts)


def capture(
    path: Path | None = None,
    policy: str = "warn",
    *,
    max_diff_bytes: int = MAX_DIFF_BYTES,
) -> GitInfo:
    """Record the git state around ``path`` and apply ``policy`` to it.

    ``path`` defaults to the directory of the running script (``__main__``),
    or the current directory in a notebook or REPL; parent directories are
    searched for the repository. Raises :class:`~aletheia.errors.GitPolicyError`
    under ``strict`` (see the module docstring), never otherwise.
    """
    check_policy(policy)
    info = _read(path or default_path(), cheap=policy == "off", max_diff_bytes=max_diff_bytes)
    apply_policy(info, policy)
    return info


def check_policy(policy: str) -> None:
    """Raise :class:`~aletheia.errors.ValidationError` unless ``policy`` is a known one."""
    if policy not in POLICIES:
        raise ValidationError(f"unknown git policy {policy!r}", "use 'warn', 'strict' or 'off'")


def apply_policy(info: GitInfo, policy: str) -> None:
    """Warn (``warn``) or raise :class:`~aletheia.errors.GitPolicyError` (``strict``) for
    what ``info`` shows; nothing under ``off``."""
    if policy == "off":
        return
    found = info.problems()
    if not found:
        return
    if policy == "strict":
        raise GitPolicyError("git policy 'strict': " + "; ".join(found), _STRICT_HINT)
    level = _user_stacklevel()
    for problem in found:
        warnings.warn(f"aletheia git check: {problem}", GitPolicyWarning, stacklevel=level)


def _user_stacklevel() -> int:
    """Stack level of the first frame outside aletheia, so a warning points at user code."""
    frame = sys._getframe(1)  # apply_policy
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("aletheia"):
        frame = frame.f_back
        level += 1
    return level


def default_path() -> Path:
    """Where a run's code is: the running script's directory, else the current directory."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    return Path(script).resolve().parent if script else Path.cwd()


# --------------------------------------------------------------------------- reading git


def _read(path: Path, *, cheap: bool, max_diff_bytes: int) -> GitInfo:
    try:
        import git  # GitPython refuses to import when no git executable is found
    except ImportError as exc:
        return GitInfo(in_repo=False, error=f"git is not available: {exc}")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except git.NoSuchPathError:
        return GitInfo(in_repo=False, error=f"{path} does not exist")
    except git.InvalidGitRepositoryError:
        return GitInfo(in_repo=False)
    with repo:
        if repo.bare or repo.working_tree_dir is None:
            return GitInfo(in_repo=False, error="a bare repository has no working tree")
        try:
            return _read_repo(repo, cheap=cheap, max_diff_bytes=max_diff_bytes)
        except git.CommandError as exc:
            log.debug("git failed in %s", repo.working_tree_dir, exc_info=True)
            message = (exc.stderr or str(exc)).strip().splitlines()
            return GitInfo(
                in_repo=True, root=str(repo.working_tree_dir), error=" ".join(message)[:500]
            )


@dataclass
class _Status:
    """The parts of ``git status --porcelain=v2 --branch`` we use."""

    commit: str | None = None
    branch: str | None = None
    detached: bool = False
    upstream: str | None = None
    ahead: int | None = None
    changed: int = 0
    untracked: list[str] = field(default_factory=list)
    #: Every path of a tracked change (both sides of a rename).
    changed_paths: list[str] = field(default_factory=list)


def _read_repo(repo: Any, *, cheap: bool, max_diff_bytes: int) -> GitInfo:
    status = _status(repo)
    dirty = bool(status.changed or status.untracked)
    pushed: bool | None = None
    if status.ahead is not None:
        pushed = status.ahead == 0
    elif status.commit is not None and not cheap:
        pushed = _on_any_remote_branch(repo)
    diff, truncated = None, False
    if status.changed and status.commit is not None and not cheap:
        diff, truncated = _diff(repo, max_diff_bytes)
    return GitInfo(
        in_repo=True,
        root=str(repo.working_tree_dir),
        commit=status.commit,
        branch=status.branch,
        detached=status.detached,
        remote=_remote_url(repo, status),
        upstream=status.upstream,
        dirty=dirty,
        changed=status.changed,
        untracked=tuple(status.untracked[:MAX_UNTRACKED]),
        untracked_count=len(status.untracked),
        pushed=pushed,
        ahead=status.ahead,
        diff=diff,
        diff_truncated=truncated,
    )


def _status(repo: Any) -> _Status:
    """One ``git status`` gives commit, branch, upstream, ahead count and changes.

    ``--untracked-files=normal`` reports a new directory as one entry instead
    of walking it, which keeps big untracked trees (data, venvs) cheap.
    """
    out = repo.git.status(
        "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", env=_GIT_ENV
    )
    return parse_status(out)


def parse_status(out: str) -> _Status:
    """Parse NUL-separated ``git status --porcelain=v2 --branch -z`` output."""
    status = _Status()
    entries = iter(out.split("\0"))
    for entry in entries:
        if entry.startswith("# "):
            _header(status, entry[2:])
        elif entry.startswith("? "):
            status.untracked.append(entry[2:])
        elif entry.startswith("1 "):
            status.changed += 1
            status.changed_paths.append(entry.split(" ", 8)[-1])
        elif entry.startswith("u "):
            status.changed += 1
            status.changed_paths.append(entry.split(" ", 10)[-1])
        elif entry.startswith("2 "):
            status.changed += 1
            status.changed_paths.append(entry.split(" ", 9)[-1])
            original = next(entries, None)  # a rename's second field is its original path
            if original:
                status.changed_paths.append(original)
    return status


def _header(status: _Status, header: str) -> None:
    key, _, value = header.partition(" ")
    if key == "branch.oid":
        status.commit = None if value == "(initial)" else value
    elif key == "branch.head":
        status.detached = value == "(detached)"
        status.branch = None if status.detached else value
    elif key == "branch.upstream":
        status.upstream = value
    elif key == "branch.ab":
        ahead, _, _behind = value.partition(" ")
        status.ahead = int(ahead.lstrip("+"))


def _on_any_remote_branch(repo: Any) -> bool | None:
    """Whether any remote-tracking branch contains ``HEAD`` (None: there are none)."""
    if not repo.git.for_each_ref("--count=1", "--format=%(refname)", "refs/remotes/", env=_GIT_ENV):
        return None
    hit = repo.git.for_each_ref(
        "--count=1", "--contains=HEAD", "--format=%(refname)", "refs/remotes/", env=_GIT_ENV
    )
    return bool(hit)


def _diff(repo: Any, max_bytes: int) -> tuple[str, bool]:
    """``git diff HEAD`` (staged and unstaged), read as a stream and cut at ``max_bytes``.

    No external diff drivers or textconv filters: the diff must be a plain
    patch that ``git apply`` understands, and must not run user tools;
    ``--binary`` so a changed binary file is in it too, not "Binary files differ".
    """
    proc = repo.git.diff(
        "HEAD",
        "--binary",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        as_process=True,
        env=_GIT_ENV,
    )
    try:
        data = proc.proc.stdout.read(max_bytes + 1)
    finally:
        proc.proc.kill()  # a huge diff is not read to its end
        proc.proc.wait()
    truncated = len(data) > max_bytes
    text = data[:max_bytes].decode("utf-8", errors="replace")
    if truncated:
        text += TRUNCATION_MARKER.format(limit=max_bytes)
    return text, truncated


# --------------------------------------------------------------------------- remotes


def remote_of(root: Path, branch: str | None, upstream: str | None) -> str | None:
    """The recorded remote URL of the repository at ``root`` (as :func:`capture` records it),
    read from its configuration by GitPython: no git process."""
    try:
        import git
    except ImportError:
        return None
    try:
        with git.Repo(root) as repo:
            return _remote_url(repo, _Status(branch=branch, upstream=upstream))
    except (git.GitError, OSError, ValueError):
        return None


def _remote_url(repo: Any, status: _Status) -> str | None:
    """URL of the upstream's remote, else ``origin``, else the first remote; redacted."""
    names = [remote.name for remote in repo.remotes]
    if not names:
        return None
    name = _upstream_remote(repo, status) or ("origin" if "origin" in names else names[0])
    try:
        url = repo.remote(name).url
    except (ValueError, KeyError, OSError):  # remote without url / unreadable config
        return None
    return redact_url(url)


def _upstream_remote(repo: Any, status: _Status) -> str | None:
    if status.branch is None or status.upstream is None:
        return None
    reader = repo.config_reader()
    section = f'branch "{status.branch}"'
    if reader.has_option(section, "remote"):
        value = reader.get_value(section, "remote")
        return str(value) if value != "." else None
    return None
