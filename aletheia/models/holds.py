"""The blobs a registered model holds, and letting go of them when versions go.

Every version's files (and manifest) are registered under the model's one
holder, ``model:{name}`` (:mod:`aletheia.data.blobrefs`), so ``datasets rm``
keeps them. Deleting versions releases the blobs no remaining version of the
model holds; renaming records the new name's holds before the move and
releases the old name's after it. A blob nothing holds any more can then be
freed by whatever frees bytes; until released, it is kept (never the reverse).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.data import blobrefs
from aletheia.data.artifacts import ArtifactStore
from aletheia.errors import NotFoundError
from aletheia.models.entities import ModelVersion


def digests(artifacts: ArtifactStore | None, versions: Iterable[ModelVersion]) -> set[str]:
    """Every blob the artifact versions of ``versions`` hold (their files and manifests)."""
    found: set[str] = set()
    if artifacts is None:
        return found
    refs = {(r.experiment, r.name, r.version): r for mv in versions if (r := mv.artifact)}
    for ref in refs.values():  # versions registered from one artifact version read it once
        try:
            av = artifacts.get(ref.experiment, ref.name, ref.version)
        except NotFoundError:
            continue
        if av.uploaded:
            found.update(f.sha256 for f in av.files)
        if av.manifest_sha256:
            found.add(av.manifest_sha256)
    return found


def release(
    db: firestore.Client, project: str, name: str, gone: set[str], kept: set[str]
) -> list[str]:
    """Release model ``name``'s hold on ``gone`` blobs that no ``kept`` version holds.

    Returns the blobs nothing holds any more.
    """
    return blobrefs.release(db, project, blobrefs.MODEL, blobrefs.model_holder(name), gone - kept)


def hold(db: firestore.Client, project: str, new: str, held: set[str]) -> None:
    """Record model ``new``'s hold on ``held`` (before a rename moves the versions)."""
    blobrefs.record(db, project, blobrefs.model_references(new, held))


def release_renamed(db: firestore.Client, project: str, old: str, held: set[str]) -> None:
    """After a rename: the old name's holds go (kept when the rules let only owners
    remove references: the bytes are then kept longer, never lost)."""
    with contextlib.suppress(gexc.PermissionDenied):
        blobrefs.release(db, project, blobrefs.MODEL, blobrefs.model_holder(old), held)
