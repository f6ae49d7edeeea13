"""Bring a run back: its code as it ran, its data, its artifacts and its environment file.

:func:`checkout` builds, in a new directory:

* **code**: a git worktree (or clone) detached at the run's commit, with its
  recorded ``git diff HEAD`` applied to the index and tree (``git apply
  --index``) and its untracked files (:mod:`aletheia.tracking.snapshot`)
  written back byte for byte, modes included. ``git status`` there shows
  the changed and untracked files the run recorded. The commit comes from
  a local repository that has it (``source``, the current one, or the one
  the run ran in), else from the recorded remote;
* **data**: every dataset version the run used, at the workspace path the
  commit's ``.aletheia/datasets.lock`` gives it (else under
  ``.aletheia/run/datasets/NAME``), verified;
* **artifacts**: every artifact version the run saved, where it was saved
  from when that was inside the repository, else under
  ``.aletheia/run/artifacts/NAME``;
* **environment**: ``.aletheia/run/requirements.txt``, installable
  (:mod:`aletheia.tracking.envfile`).

``.aletheia/run/`` ignores itself (its own ``.gitignore`` says ``*``), so
what the checkout adds never shows in ``git status``. Everything that can
be refused (no commit recorded, a truncated diff, a non-empty target) is
refused before anything is written.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from aletheia.cloud import layout
from aletheia.data.cache import safe_join
from aletheia.data.lockfile import LockFile, find_repo_root
from aletheia.data.pull import workspace_target
from aletheia.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from aletheia.tracking import envfile, snapshot
from aletheia.tracking.compose import Backend
from aletheia.tracking.readapi import RunView, thaw

#: Where a checkout keeps what has no place of its own in the repository (self-ignored).
RUN_DIR = PurePosixPath(".aletheia") / "run"
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}

Echo = Callable[[str], None]


@dataclass
class CheckoutResult:
    """What a checkout put where, and what it could not bring back."""

    path: Path
    commit: str | None = None
    source: str | None = None
    diff_applied: bool = False
    untracked: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "path": str(self.path),
            "commit": self.commit,
            "source": self.source,
            "diff_applied": self.diff_applied,
            "untracked": self.untracked,
            "datasets": self.datasets,
            "artifacts": self.artifacts,
            "env_file": self.env_file,
            "missing": self.missing,
        }


def checkout(
    backend: Backend,
    view: RunView,
    to: Path,
    *,
    code: bool = True,
    data: bool = True,
    source: Path | None = None,
) -> CheckoutResult:
    """Rebuild run ``view`` under ``to`` (see the module docstring).

    ``code=False`` (``--data-only``) places data and artifacts into ``to``,
    an existing checkout of the code; ``data=False`` (``--code-only``) skips them.
    """
    git = thaw(view.doc.get("git")) or {}
    label = f"run {view.id} of experiment {view.experiment!r}"
    result = CheckoutResult(path=to.resolve())
    if code:
        _check_code(git, label, to)
        result.commit = git["commit"]
        result.source = _materialize_commit(git, to, source)
        result.path = to.resolve()
        _apply_diff(backend, git, to, result)
        _restore_untracked(backend, git, to, result)
    elif not to.is_dir():
        raise NotFoundError(f"{to} is not a directory", "check out the code first, or pass --to")
    else:  # --data-only, maybe from a subdirectory: workspaces are relative to the root
        to = find_repo_root(to) or to
        result.path = to.resolve()
    _ensure_run_dir(to)
    if code:
        result.env_file = _write_env(backend, view, to, result)
    if data:
        _place_datasets(backend, view, to, result)
        _place_artifacts(backend, view, git, to, result)
    return result


# --------------------------------------------------------------------------- code


def _check_code(git: dict[str, Any], label: str, to: Path) -> None:
    if not git.get("commit"):
        why = "it ran outside a git repository" if not git.get("in_repo") else "no commit"
        raise NotFoundError(f"{label} recorded no git commit ({why})", "use --data-only")
    if git.get("diff_truncated"):
        raise IntegrityError(
            f"{label} recorded only part of its diff (it was over the size limit)",
            "the code cannot be rebuilt exactly; use --data-only",
        )
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise ConflictError(f"{to} exists and is not empty", "choose a new directory with --to")


def _materialize_commit(git: dict[str, Any], to: Path, source: Path | None) -> str:
    """A worktree of a local repository holding the commit, else a clone of the remote."""
    commit = str(git["commit"])
    candidates = [source] if source is not None else [Path.cwd(), git.get("root")]
    for candidate in candidates:
        root = _repo_with(Path(candidate), commit) if candidate else None
        if root is not None:
            _git(root, "worktree", "add", "--detach", "--quiet", str(to.resolve()), commit)
            return str(root)
    remote = git.get("remote")
    if not remote:
        where = f"{source}" if source else "the current repository or the run's"
        raise NotFoundError(
            f"commit {commit[:12]} is not in {where}, and the run recorded no remote",
            "pass --repo PATH of a clone that has the commit",
        )
    to.mkdir(parents=True, exist_ok=True)
    _git(to, "clone", "--quiet", "--no-checkout", str(remote), ".")
    try:
        _git(to, "checkout", "--quiet", "--detach", commit)
    except ValidationError as exc:
        raise NotFoundError(
            f"commit {commit[:12]} is not in {remote} ({exc.message})",
            "push it, or pass --repo PATH of a clone that has it",
        ) from exc
    return str(remote)


def _repo_with(path: Path, commit: str) -> Path | None:
    if not path.is_dir():
        return None
    found = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
    )
    if found.returncode != 0:
        return None
    root = Path(found.stdout.strip())
    has = subprocess.run(
        ["git", "-C", str(root), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        env={**os.environ, **_GIT_ENV},
    )
    return root if has.returncode == 0 else None


def _apply_diff(backend: Backend, git: dict[str, Any], to: Path, result: CheckoutResult) -> None:
    ref = git.get("diff_ref")
    if not ref:
        if git.get("changed"):
            result.missing.append(f"the diff of {git['changed']} changed file(s) (not recorded)")
        return
    patch = backend.blobs.get_bytes(layout.validate_sha256(str(ref["sha256"])))
    # --index: a new file the run had staged is tracked here too, so `git status`
    # shows every changed path as changed, none as untracked.
    _git(to, "apply", "--index", "--whitespace=nowarn", "-", stdin=patch)
    result.diff_applied = True


def _restore_untracked(
    backend: Backend, git: dict[str, Any], to: Path, result: CheckoutResult
) -> None:
    summary = git.get("snapshot") or {}
    ref = git.get("snapshot_ref")
    if ref:
        manifest = backend.blobs.get_bytes(layout.validate_sha256(str(ref["sha256"])))
        for entry in snapshot.decode_manifest(manifest):
            target = safe_join(to, entry["path"])  # a manifest never writes outside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(backend.blobs.get_bytes(layout.validate_sha256(entry["sha256"])))
            target.chmod(0o755 if entry.get("mode") == "755" else 0o644)
            result.untracked.append(entry["path"])
    for skipped in summary.get("skipped") or []:
        result.missing.append(f"untracked {skipped['path']} ({skipped['reason']})")
    hidden = int(summary.get("skipped_count") or 0) - len(summary.get("skipped") or [])
    if hidden > 0:
        result.missing.append(f"{hidden} more skipped untracked file(s)")
    if not ref and git.get("untracked_count") and not summary:
        result.missing.append(f"{git['untracked_count']} untracked file(s) (not recorded)")


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(cwd), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **_GIT_ENV},
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
        raise ValidationError(f"git {args[0]} failed in {cwd}: {message}", "do what git says")
    return proc.stdout.decode(errors="replace")


# --------------------------------------------------------------------------- the rest


def _ensure_run_dir(to: Path) -> None:
    run_dir = to / RUN_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".gitignore").write_text("# written by aletheia runs checkout\n*\n")


def _write_env(backend: Backend, view: RunView, to: Path, result: CheckoutResult) -> str | None:
    try:
        text = envfile.render_for_run(backend.blobs, view, "requirements")
    except NotFoundError as exc:
        result.missing.append(f"the environment ({exc.message})")
        return None
    rel = RUN_DIR / "requirements.txt"
    (to / rel).write_text(text, encoding="utf-8")
    return str(rel)


def _place_datasets(backend: Backend, view: RunView, to: Path, result: CheckoutResult) -> None:
    used = view.datasets()
    if not used:
        return
    root = find_repo_root(to) or to  # --data-only may be run from a subdirectory
    pins = LockFile.load(root).pins_of(view.project) if (root / ".git").exists() else {}
    store = backend.datasets(workdir=root)
    for entry in used:
        if not entry.version:
            result.missing.append(f"dataset {entry.name} (no version recorded)")
            continue
        pin = pins.get(entry.name)
        if pin is not None and pin.path is not None:
            files = list(store.manifest(entry.name, entry.version).values())
            target = workspace_target(root, pin.path, files)
        else:
            target = root / RUN_DIR / "datasets" / entry.name
        # lock=False: the lock file is part of the recorded code, never rewritten here;
        # local edits in the way (--data-only into a worked-on checkout) stop it, named.
        store.get(entry.name, entry.version, to=target, verify="full", lock=False)
        result.datasets[f"{entry.name}@{entry.version}"] = _rel(root, target)


def _place_artifacts(
    backend: Backend, view: RunView, git: dict[str, Any], to: Path, result: CheckoutResult
) -> None:
    saved = view.artifacts()
    if not saved:
        return
    store = backend.artifacts()
    for entry in saved:
        av = store.get(view.experiment, entry.name, entry.version)
        if av.kind == "remote" or not av.uploaded:
            result.missing.append(
                f"artifact {entry.name} {entry.version} (its bytes are not stored)"
            )
            continue
        path = layout.artifact_version(view.project, view.experiment, entry.name, entry.version)
        doc = backend.db.document(path).get().to_dict() or {}
        target = _artifact_target(to, git.get("root"), doc.get("source_path"), av.is_dir)
        if target is None:
            target = to / RUN_DIR / "artifacts" / entry.name
        av.download(target)
        result.artifacts[f"{entry.name}@{entry.version}"] = _rel(to, target)


def _artifact_target(to: Path, root: Any, source_path: Any, is_dir: bool) -> Path | None:
    """Where in the checkout an artifact saved from ``host:/abs/path`` goes (None: nowhere)."""
    if not root or not isinstance(source_path, str) or ":" not in source_path:
        return None
    _host, _, absolute = source_path.partition(":")
    try:
        rel = PurePosixPath(Path(absolute).relative_to(Path(root).resolve()).as_posix())
    except ValueError:
        return None  # saved from outside the repository
    if not rel.parts or ".." in rel.parts:
        return None
    target = safe_join(to, str(rel))
    return target if is_dir else target.parent


def _rel(to: Path, target: Path) -> str:
    try:
        return target.resolve().relative_to(to.resolve()).as_posix() or "."
    except ValueError:
        return str(target)
