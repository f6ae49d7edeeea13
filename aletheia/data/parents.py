"""Which version a new dataset version descends from (versions form a tree).

In order: an explicit ``--parent``; the version the workspace was pulled
from (its pull state, :mod:`aletheia.data.workspace`); the git repository's pin
of the dataset (:mod:`aletheia.data.lockfile`); the latest version. The latest is
the newest by number, not an ancestor of everything: on ``main`` pinned to
v2 after v3 was added on a branch, pull -> edit -> add gives v4 with parent
v2, and its changes and validation are measured against v2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.data import workspace
from aletheia.data.lockfile import LockFile, Pin, find_repo_root
from aletheia.errors import NotFoundError, ValidationError

#: Where a parent came from, strongest first.
SOURCES = ("explicit", "pull-state", "lock", "latest")


def choose_parent(
    db: firestore.Client,
    project: str,
    name: str,
    path: Path,
    *,
    explicit: str | None,
    latest: dict[str, Any] | None,
    workdir: Path | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """``(parent version document or None, one of SOURCES or None)``.

    ``explicit`` must exist (:class:`NotFoundError`). A pull state or pin
    naming a removed version, or a version whose manifest is not the one it
    recorded, is passed over. ``latest`` is the latest version document.
    """
    if explicit is not None:
        version = layout.validate_id(explicit, "dataset version")
        doc = version_or_none(db, project, name, Pin(version))
        if doc is None:
            raise NotFoundError(
                f"--parent {version}: dataset {name!r} has no such version in {project!r}",
                f"list them with `aletheia datasets versions {name}`",
            )
        return doc, "explicit"
    pulled = pulled_version(project, name, Path(path).expanduser())
    if pulled is not None:
        doc = version_or_none(db, project, name, pulled)
        if doc is not None:
            return doc, "pull-state"
    root = find_repo_root(workdir)
    pin = LockFile.load(root).get(project, name) if root is not None else None
    if pin is not None:
        doc = version_or_none(db, project, name, pin)
        if doc is not None:
            return doc, "lock"
    return latest, ("latest" if latest is not None else None)


def pulled_version(project: str, name: str, path: Path) -> Pin | None:
    """What the pull state of ``path``'s workspace says of ``name`` (for a single
    file: only if that file is one the pull placed)."""
    if not path.exists():
        return None
    entry = workspace.PullState.load(workspace.workspace_dir(path)).get(project, name)
    if entry is None or entry.version is None:
        return None
    if not path.is_dir() and path.name not in entry.files:
        return None
    return Pin(entry.version, entry.manifest_sha256)


def version_or_none(
    db: firestore.Client, project: str, name: str, pin: Pin
) -> dict[str, Any] | None:
    """The version document ``pin`` names, if it exists and holds the data it recorded."""
    try:
        version = layout.validate_id(pin.version, "dataset version")
    except ValidationError:
        return None
    snap = db.document(layout.dataset_version(project, name, version)).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or (pin.manifest_sha256 and doc.get("manifest_sha256") != pin.manifest_sha256):
        return None
    return doc
