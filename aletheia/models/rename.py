"""Renaming a registered model: its versions, aliases, tags and description move.

A model's name is its document id, so a rename is a move of documents, done
so that a crash at any point loses no version and running the rename again
finishes it:

1. the old model document is marked ``renaming_to: NEW`` (registrations into
   it are then refused, :func:`aletheia.models.records.commit_version`);
2. the new model document is created as a copy, marked ``renamed_from: OLD``
   (``create``: a name already taken fails here, unless it is this rename's
   own, unfinished);
3. versions move in batches, each batch creating the copies and deleting the
   originals together, so every version is under exactly one name at every
   commit; a small model moves in one batch with step 2;
4. the copies are checked against the originals' numbers, then the old model
   document is deleted, and the mark on the new one dropped.

``firestore.rules`` let writers do this (MLflow's rename is an update): a
copy must equal its original but for ``model``, and an original may go only
with its copy. The rules read two documents per version moved, so a batch
moves at most :data:`USER_BATCH` versions for a signed-in user (Firestore
allows 20 document reads per batch), :data:`SERVER_BATCH` with server
credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import clients, layout
from aletheia.errors import ConflictError, IntegrityError, NotFoundError

#: Versions moved per batch for a signed-in user (the rules read 2 documents per version).
USER_BATCH = 8
#: Versions moved per batch with server credentials (2 writes each, 500 per batch).
SERVER_BATCH = 200
RENAMING_TO, RENAMED_FROM = "renaming_to", "renamed_from"


def rename_model(
    db: firestore.Client,
    project: str,
    old: str,
    new: str,
    old_doc: dict[str, Any],
    before_move: Callable[[], None] | None = None,
) -> list[int]:
    """Rename model ``old`` (its document ``old_doc``) to ``new``; returns the versions moved.

    ``before_move`` runs once the new name is known to be free, before anything moves.
    """
    layout.model(project, new)  # validates the new name before any I/O
    if old == new:
        raise ConflictError(f"model {old!r} already has that name", "choose another name")
    old_ref = db.document(layout.model(project, old))
    new_ref = db.document(layout.model(project, new))
    new_snap = new_ref.get()
    if new_snap.exists and (new_snap.to_dict() or {}).get(RENAMED_FROM) != old:
        raise ConflictError(
            f"model {new!r} already exists in project {project!r}",
            "choose another name, or delete that model first",
        )
    if old_doc.get(RENAMING_TO) not in (None, new):
        raise ConflictError(
            f"model {old!r} is being renamed to {old_doc[RENAMING_TO]!r}",
            f"finish that: rename {old!r} to {old_doc[RENAMING_TO]!r} again",
        )
    if before_move is not None:
        before_move()
    if old_doc.get(RENAMING_TO) != new:
        old_ref.update({RENAMING_TO: new})
        old_doc = {**old_doc, RENAMING_TO: new}
    size = USER_BATCH if clients.acting_uid(db) is not None else SERVER_BATCH
    versions = _versions(db, project, old)
    first = versions[:size] if not new_snap.exists else []
    batch = db.batch()
    if not new_snap.exists:
        copy = {k: v for k, v in old_doc.items() if k not in (RENAMING_TO, RENAMED_FROM)}
        copy.update({"name": new, RENAMED_FROM: old, "updated_at": firestore.SERVER_TIMESTAMP})
        try:
            _move(db, project, new, first, batch, create_model=(new_ref, copy))
        except gexc.AlreadyExists as exc:
            raise ConflictError(
                f"model {new!r} already exists in project {project!r}",
                "choose another name, or delete that model first",
            ) from exc
    rest = versions[len(first) :]
    for start in range(0, len(rest), size):
        _move(db, project, new, rest[start : start + size], db.batch())
    left = _versions(db, project, old)
    if left:  # registered before the mark was seen: move them too
        for start in range(0, len(left), size):
            _move(db, project, new, left[start : start + size], db.batch())
    moved = {int(d["version"]) for d in _versions(db, project, new)}
    wanted = {int(d["version"]) for d in versions + left}
    if not wanted <= moved:
        raise IntegrityError(
            f"renaming model {old!r} to {new!r}: versions {sorted(wanted - moved)} did not move",
            f"rename {old!r} to {new!r} again to finish",
        )
    old_ref.delete()
    # A version registered into the old name after the copy was taken moved too: count it.
    counted = int((new_ref.get().to_dict() or {}).get("version_count") or 0)
    final: dict[str, Any] = {RENAMED_FROM: firestore.DELETE_FIELD}
    if moved and max(moved) > counted:
        final.update(version_count=max(moved), latest_version=max(moved))
    new_ref.update(final)
    return sorted(moved)


def _versions(db: firestore.Client, project: str, name: str) -> list[dict[str, Any]]:
    """Every version document of ``name`` (one read of the collection)."""
    return [s.to_dict() or {} for s in db.collection(layout.model_versions(project, name)).stream()]


def _move(
    db: firestore.Client,
    project: str,
    new: str,
    docs: list[dict[str, Any]],
    batch: Any,
    create_model: tuple[Any, dict[str, Any]] | None = None,
) -> None:
    """In one batch: (the new model and) each version's copy under ``new``, its original gone."""
    if create_model is not None:
        batch.create(*create_model)
    for doc in docs:
        number = int(doc["version"])
        old = str(doc["model"])
        batch.create(db.document(layout.model_version(project, new, number)), {**doc, "model": new})
        batch.delete(db.document(layout.model_version(project, old, number)))
    if create_model is not None or docs:
        batch.commit()


def ensure_not_renaming(name: str, doc: dict[str, Any]) -> None:
    """Refuse to register into a model that is being renamed."""
    target = doc.get(RENAMING_TO)
    if target:
        raise NotFoundError(
            f"model {name!r} is being renamed to {target!r}",
            f"register into {target!r}",
        )
