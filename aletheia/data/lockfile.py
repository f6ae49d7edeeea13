"""The dataset lock file of a git repository: ``.aletheia/datasets.lock``.

It pins, per aletheia project, the dataset version a branch uses and, when
the data was added from inside the repository, where it lives there (its
workspace ``path``, relative to the repository root; git ignores it). It is
committed with the code, so checking out another branch (and pulling)
gives that branch's data, and ``aletheia datasets pull`` in a fresh clone
puts every pinned dataset back where it belongs. The format is JSON with
sorted keys and one entry per line, so merges and reviews see one changed
line per changed pin::

    {
      "format": 1,
      "projects": {
        "default": {
          "mnist": {"manifest_sha256": "…", "path": "data/mnist", "version": "v2"}
        }
      }
    }

A ``path`` is never absolute and never leaves the repository (no ``..``):
pulling writes there, so a lock file from someone else's branch must not be
able to point a pull at ``~/.ssh``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aletheia.cloud import layout, repoconfig
from aletheia.data.workspace import write_atomically
from aletheia.errors import ConfigError, ValidationError

LOCK_DIR = repoconfig.REPO_DIR
LOCK_NAME = "datasets.lock"
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    """The version of one dataset a repository uses."""

    version: str
    manifest_sha256: str | None = None
    #: Where the data lives in the repository (POSIX, relative to its root), if known.
    path: str | None = None


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: cwd) holding ``.git``.

    The same repository the repository's settings come from (one definition).
    """
    return repoconfig.find_repo_root(start)


def repository_lock(workdir: Path | None, hint: str) -> tuple[Path, LockFile]:
    """The repository root at or above ``workdir`` (default: cwd) and its lock file.

    Outside a git repository there is no lock file: a :class:`ValidationError`
    with ``hint`` (what the calling command can do instead).
    """
    root = find_repo_root(workdir)
    if root is None:
        raise ValidationError(
            f"{workdir or Path.cwd()} is not inside a git repository, so there is no lock file",
            hint,
        )
    return root, LockFile.load(root)


def lock_path(repo_root: Path) -> Path:
    """``{repo}/.aletheia/datasets.lock``."""
    return repo_root / LOCK_DIR / LOCK_NAME


class LockFile:
    """Read, change and atomically save the pins of one repository."""

    def __init__(self, path: Path, pins: dict[str, dict[str, Pin]] | None = None) -> None:
        self.path = path
        self.pins: dict[str, dict[str, Pin]] = pins or {}

    @classmethod
    def load(cls, repo_root: Path) -> LockFile:
        """The lock file of a repository (empty if it has none yet)."""
        path = lock_path(repo_root)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"{path} cannot be read: {exc}", "check its permissions") from exc
        return cls.from_text(text, path)

    @classmethod
    def from_text(cls, text: str, path: Path) -> LockFile:
        """A lock file's content as read from anywhere (``git show COMMIT:...``); ``path``
        names it in errors."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"{path} is not a valid lock file: {exc}",
                "resolve the merge conflict in it, or delete it and pin again",
            ) from exc
        return cls(path, _parse(data, path))

    def get(self, project: str, name: str) -> Pin | None:
        """The pin of ``name`` in ``project``, if any."""
        return self.pins.get(project, {}).get(name)

    def pin(
        self,
        project: str,
        name: str,
        version: str,
        manifest_sha256: str | None,
        *,
        path: str | None = None,
    ) -> None:
        """Pin ``name`` to ``version`` (call :meth:`save` to write it).

        ``path``: the workspace in the repository; ``None`` keeps the one
        already recorded (a version added from elsewhere still belongs there).
        """
        layout.validate_id(project, "project name")
        layout.validate_id(name, "dataset name")
        if path is not None:
            path = validate_workspace_path(path)
        else:
            previous = self.get(project, name)
            path = previous.path if previous is not None else None
        self.pins.setdefault(project, {})[name] = Pin(version, manifest_sha256, path)

    def projects(self) -> list[str]:
        """Projects with at least one pin, sorted."""
        return sorted(p for p, names in self.pins.items() if names)

    def pins_of(self, project: str) -> dict[str, Pin]:
        """``{dataset: Pin}`` of one project, sorted by name."""
        return dict(sorted(self.pins.get(project, {}).items()))

    def unpin(self, project: str, name: str) -> bool:
        """Drop a pin; True if there was one."""
        return self.pins.get(project, {}).pop(name, None) is not None

    def save(self) -> None:
        """Write atomically (temp file + rename), creating ``.aletheia/`` if needed."""
        body = {
            "format": FORMAT,
            "projects": {
                p: {n: _pin_dict(pin) for n, pin in sorted(names.items())}
                for p, names in sorted(self.pins.items())
                if names
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(body, indent=2, sort_keys=True) + "\n")


def _pin_dict(pin: Pin) -> dict[str, Any]:
    out: dict[str, Any] = {"version": pin.version}
    if pin.manifest_sha256:
        out["manifest_sha256"] = pin.manifest_sha256
    if pin.path:
        out["path"] = pin.path
    return out


def validate_workspace_path(path: str) -> str:
    """A workspace path fit for the lock file: relative, inside the repository, normalised.

    Raises :class:`ValidationError` for an absolute path, one with ``..``,
    the repository root itself, or one inside ``.git``/``.aletheia``.
    """
    pure = PurePosixPath(path)
    parts = [p for p in pure.parts if p != "."]
    if pure.is_absolute() or ".." in parts or not parts or parts[0] in (".git", LOCK_DIR):
        raise ValidationError(
            f"workspace path {path!r} is outside the repository (or is the repository itself)",
            "the lock file records only paths inside the repository, relative to its root",
        )
    return "/".join(parts)


def _parse(data: Any, path: Path) -> dict[str, dict[str, Pin]]:
    """Every shape is checked: a hand-edited or half-merged lock file gets a
    :class:`ConfigError` naming the entry, never an ``AttributeError``."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f"{path}: unknown lock file format",
            f"expected {{'format': {FORMAT}, 'projects': {{...}}}}; fix it, or delete it and "
            "pin again",
        )
    projects = data.get("projects") or {}
    if not isinstance(projects, dict):
        raise _bad_shape(path, "'projects'", "an object of {project: {dataset: pin}}", projects)
    pins: dict[str, dict[str, Pin]] = {}
    for project, names in projects.items():
        if not isinstance(names, dict):
            raise _bad_shape(path, f"project {project!r}", "an object of {dataset: pin}", names)
        for name, entry in names.items():
            pins.setdefault(project, {})[name] = _parse_pin(entry, path, f"{project}/{name}")
    return pins


def _parse_pin(entry: Any, path: Path, where: str) -> Pin:
    if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
        raise ConfigError(
            f"{path}: bad pin for {where}: expected {{'version': '...'}}, found {entry!r:.80}",
            "pin it again (`aletheia datasets get NAME --version V`) or remove that entry",
        )
    digest = entry.get("manifest_sha256")
    if digest is not None and not isinstance(digest, str):
        raise _bad_shape(path, f"{where} manifest_sha256", "a string", digest)
    workspace = entry.get("path")
    if workspace is not None:
        if not isinstance(workspace, str):
            raise _bad_shape(path, f"{where} path", "a string", workspace)
        try:
            workspace = validate_workspace_path(workspace)
        except ValidationError as exc:
            raise ConfigError(
                f"{path}: {where}: {exc.message}",
                "fix or remove that path in the lock file (pulling would write there)",
            ) from exc
    return Pin(entry["version"], digest, workspace)


def _bad_shape(path: Path, what: str, expected: str, found: Any) -> ConfigError:
    return ConfigError(
        f"{path}: {what} must be {expected}, not {type(found).__name__} {found!r:.80}",
        "fix that entry by hand (or delete the lock file and pin again)",
    )
