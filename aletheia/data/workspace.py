"""A dataset workspace on local disk: aletheia's own files in it, and its pull state.

A workspace is a directory a dataset was pulled into (``datasets pull --to``,
or the path the lock file records). Aletheia keeps one file there,
``.aletheia-pull.json``, saying per dataset which version was placed and
which files it placed, so that

* the next pull removes files of the previous version the new one lacks
  (switching branches), and never touches files it did not place;
* the next ``add`` of the directory knows the version it descends from (its
  parent), whatever was added since on other branches.

Aletheia's own files are never data: the pull state, anything under
``.aletheia/`` (the lock file and its temporary copies), ``.git/``, and the
temporary files a pull writes before renaming them into place (left behind if
it is killed). :func:`is_own_file` and :data:`OWN_DIRS` are the one definition
scanning uses.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Written into a workspace to know which version and files a pull placed there.
PULL_STATE = ".aletheia-pull.json"
#: Directories never taken into a dataset.
OWN_DIRS = frozenset({".git", ".aletheia"})
PULL_STATE_FORMAT = 2
_TEMP_SUFFIX = ".tmp"
#: ``.{name}.{8 hex}.tmp``: see :func:`temp_name`.
_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def temp_name(final: Path) -> Path:
    """Where to write ``final`` before renaming it into place (recognised by
    :func:`is_own_file`, so a partial file left by a killed process is never data)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")


def write_atomically(final: Path, text: str) -> None:
    """Replace ``final`` with ``text`` (UTF-8, newlines as given) in one rename.

    A reader sees the old file or the new one, never half of either; a
    killed writer leaves at most a :func:`temp_name` file, which is never data.
    """
    tmp = temp_name(final)
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)


def is_own_file(name: str) -> bool:
    """True for a file name aletheia writes into workspaces (never part of a dataset)."""
    return name == PULL_STATE or _TEMP.match(name) is not None


@dataclass(frozen=True)
class Pulled:
    """What one pull (or add) placed in a workspace for one dataset."""

    version: str | None
    manifest_sha256: str | None
    files: frozenset[str] = field(default_factory=frozenset)


class PullState:
    """The ``.aletheia-pull.json`` of one directory: ``{project: {dataset: Pulled}}``."""

    def __init__(self, directory: Path, entries: dict[tuple[str, str], Pulled]) -> None:
        self.path = directory / PULL_STATE
        self.entries = entries
        #: Files listed by the old format (a bare list), which named no dataset.
        self.legacy_files: frozenset[str] = frozenset()

    @classmethod
    def load(cls, directory: Path) -> PullState:
        """The state of ``directory`` (empty if it has none or it is unreadable:
        the state only ever saves work, so a damaged one is treated as absent)."""
        state = cls(directory, {})
        try:
            body = json.loads(state.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return state
        if isinstance(body, list):  # format 1: the files of the last pull, any dataset
            state.legacy_files = frozenset(str(p) for p in body)
            return state
        if not isinstance(body, dict) or body.get("format") != PULL_STATE_FORMAT:
            return state
        projects = body.get("projects")
        for project, names in (projects if isinstance(projects, dict) else {}).items():
            for name, entry in (names if isinstance(names, dict) else {}).items():
                if isinstance(entry, dict):
                    state.entries[(str(project), str(name))] = _pulled(entry)
        return state

    def get(self, project: str, name: str) -> Pulled | None:
        """What the last pull or add of ``name`` left here, if any."""
        return self.entries.get((project, name))

    def previous_files(self, project: str, name: str) -> frozenset[str]:
        """Files an earlier pull of ``name`` placed here (old-format states included)."""
        entry = self.get(project, name)
        return entry.files if entry is not None else self.legacy_files

    def record(
        self, project: str, name: str, version: str, manifest_sha256: str, files: list[str]
    ) -> None:
        """Remember that ``files`` of ``version`` are here now (call :meth:`save`)."""
        self.entries[(project, name)] = Pulled(version, manifest_sha256, frozenset(files))
        self.legacy_files = frozenset()

    def save(self) -> None:
        """Write atomically: a killed process leaves the old state or the new one."""
        projects: dict[str, dict[str, Any]] = {}
        for (project, name), e in sorted(self.entries.items()):
            projects.setdefault(project, {})[name] = {
                "version": e.version,
                "manifest_sha256": e.manifest_sha256,
                "files": sorted(e.files),
            }
        body = {"format": PULL_STATE_FORMAT, "projects": projects}
        write_atomically(self.path, json.dumps(body, indent=1, sort_keys=True) + "\n")


def _pulled(entry: dict[str, Any]) -> Pulled:
    version = entry.get("version")
    digest = entry.get("manifest_sha256")
    files = entry.get("files")
    return Pulled(
        str(version) if isinstance(version, str) else None,
        str(digest) if isinstance(digest, str) else None,
        frozenset(str(p) for p in files) if isinstance(files, list) else frozenset(),
    )


def workspace_dir(path: Path) -> Path:
    """The directory whose pull state describes ``path`` (a file's own directory)."""
    return path if path.is_dir() else path.parent


def remember(
    path: Path,
    project: str,
    name: str,
    version: str,
    digest: str,
    files: list[str],
    *,
    start: bool = False,
) -> None:
    """After an add from ``path``: its workspace now holds ``version`` (the next edit
    there descends from it).

    Only a workspace that already has a pull state is updated (an add does
    not start writing into directories aletheia never pulled into), unless
    ``start``: a workspace pinned in its git repository (kept out of git,
    where switching branches pulls other versions into it) starts its state
    at its first add, so the next pull knows which files that version placed
    and removes the ones the new version lacks. A read-only one is left as it
    is: the state only ever saves work.
    """
    directory = workspace_dir(Path(path).expanduser())
    if not start and not (directory / PULL_STATE).is_file():
        return
    state = PullState.load(directory)
    state.record(project, name, version, digest, files)
    try:
        state.save()
    except OSError:
        return
