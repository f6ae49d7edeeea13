"""Who references each content-addressed blob: one registry for every kind of holder.

Bytes are stored once per project by sha256 and shared by whatever holds
them: dataset versions, artifact versions, files logged through MLflow, a
run's git diff and package list. Before deleting a blob, ``datasets rm``
must know whether anything else still holds it; this registry answers that
with one batched read, whatever the number of datasets, versions or files::

    Projects/{p}/Blobs/{sha256}     sha256, datasets{name: true}, holders{kind: true}, updated_at
      Refs/{holder}                 kind, holder, sha256, project, where it is
                                    (experiment, run, artifact, path), recorded_at

* ``datasets`` names the datasets with a version holding the bytes. Which
  versions exactly is in the dataset's manifests, so a new version writes
  entries only for blobs its parent lacked (a one-file change is one write),
  and an unchanged re-add writes nothing.
* ``holders`` names the other kinds (``artifact``, ``mlflow``, ``run``, ``model``)
  present; each holder also has its own ``Refs`` document saying exactly who.
  The summary stays bounded (one key per dataset or kind) while ``Refs``
  holds any number of holders, so no document grows without bound.
* Entries are written where a reference is created, in batches, as
  idempotent merges: a retried or replayed write writes the same thing. They
  are written *before* the holder's own commit where possible, so a crash in
  between leaves an extra entry (a blob kept too long), never a missing one.
* A blob with **no entry** was stored before the registry existed (or by a
  client that could not reach Firestore): nothing is known about it, so it
  is kept (:attr:`Verdict.unregistered`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from aletheia.cloud import layout, pbwrite, queries

DATASET, ARTIFACT, MLFLOW, RUN, MODEL = "dataset", "artifact", "mlflow", "run", "model"
KINDS = (DATASET, ARTIFACT, MLFLOW, RUN, MODEL)
#: Writes per batch (Firestore allows 500; registry documents are a few hundred bytes).
BATCH_WRITES = 400
#: Documents per batched read.
READ_CHUNK = 300


@dataclass(frozen=True)
class Reference:
    """``holder`` (of ``kind``) references the blob ``sha256``; ``where`` locates the holder."""

    sha256: str
    kind: str
    holder: str
    where: Mapping[str, Any] = field(default_factory=dict)


def dataset_references(name: str, digests: Iterable[str]) -> list[Reference]:
    """Dataset ``name`` holds these blobs (files and manifests of its versions)."""
    return [Reference(s, DATASET, name) for s in sorted(set(digests))]


def artifact_references(
    experiment: str, name: str, digests: Iterable[str], run: str | None
) -> list[Reference]:
    """Artifact ``name`` of ``experiment`` holds these blobs (any of its versions)."""
    where = {"experiment": experiment, "artifact": name, "run": run}
    holder = f"{ARTIFACT}:{experiment}/{name}"
    return [Reference(s, ARTIFACT, holder, where) for s in sorted(set(digests))]


def model_references(name: str, digests: Iterable[str]) -> list[Reference]:
    """Registered model ``name`` holds these blobs (files and manifests of its versions).

    The artifact versions it was registered from hold them too; the model's
    own entry keeps them whatever happens to those artifacts.
    """
    where = {"model": name}
    return [Reference(s, MODEL, model_holder(name), where) for s in sorted(set(digests))]


def model_holder(name: str) -> str:
    """The holder id of registered model ``name`` (every version of it)."""
    return f"{MODEL}:{name}"


def mlflow_reference(experiment: str, run: str, sha256: str, path: str) -> Reference:
    """A file logged to a run through MLflow's artifact API."""
    holder = f"{MLFLOW}:{experiment}/{run}/{path}"
    return Reference(sha256, MLFLOW, holder, {"experiment": experiment, "run": run, "path": path})


#: The blob references a run document holds, as ``(map, key)``.
RUN_BLOB_FIELDS = (
    ("git", "diff_ref"),
    ("git", "snapshot_ref"),
    ("env", "packages_ref"),
    ("env", "distributions_ref"),
    ("notebook", "content_ref"),
    ("notebook", "executed_ref"),
)


def run_references(
    experiment: str, run: str, fields: Mapping[str, Any], extra: Iterable[str] = ()
) -> list[Reference]:
    """The blobs of a run document's ``git``/``env``/``notebook`` maps (:data:`RUN_BLOB_FIELDS`).

    ``extra``: blobs those name in turn (the files of the untracked-files snapshot).
    """
    found: list[Reference] = []
    for section, key in RUN_BLOB_FIELDS:
        ref = (fields.get(section) or {}).get(key) or {}
        if ref.get("sha256"):
            what = f"{section}.{key}"
            where = {"experiment": experiment, "run": run, "field": what}
            found.append(
                Reference(str(ref["sha256"]), RUN, f"{RUN}:{experiment}/{run}:{what}", where)
            )
    where = {"experiment": experiment, "run": run, "field": "git.snapshot"}
    for sha256 in sorted(set(extra)):  # one Refs document per file blob, under its own blob
        found.append(Reference(sha256, RUN, f"{RUN}:{experiment}/{run}:git.snapshot", where))
    return found


def record(
    db: firestore.Client,
    project: str,
    refs: Iterable[Reference],
    *,
    call: Mapping[str, Any] | None = None,
) -> int:
    """Write these references (batched, idempotent); returns the number of writes.

    A holder's ``Refs`` document and its blob's summary go in the same batch,
    so neither exists without the other. ``call``: ``retry=``/``timeout=`` of
    each commit (:func:`aletheia.cloud.transient.bounded`), the library's if not given.
    """
    groups: list[list[tuple[str, dict[str, Any]]]] = []
    for ref in refs:
        if ref.kind not in KINDS:
            raise ValueError(f"unknown reference kind {ref.kind!r}")
        summary: dict[str, Any] = {"sha256": ref.sha256, "updated_at": firestore.SERVER_TIMESTAMP}
        if ref.kind == DATASET:
            summary["datasets"] = {layout.validate_id(ref.holder, "dataset name"): True}
            groups.append([(layout.blob_record(project, ref.sha256), summary)])
            continue
        summary["holders"] = {ref.kind: True}
        entry = {
            "kind": ref.kind,
            "holder": ref.holder,
            "sha256": ref.sha256,
            "project": project,
            **ref.where,
            "recorded_at": firestore.SERVER_TIMESTAMP,
        }
        groups.append(
            [
                (layout.blob_record(project, ref.sha256), summary),
                (layout.blob_ref(project, ref.sha256, ref.holder), entry),
            ]
        )
    return _commit_groups(db, groups, call or {})


def _commit_groups(
    db: firestore.Client,
    groups: Sequence[Sequence[tuple[str, dict[str, Any] | None]]],
    call: Mapping[str, Any] | None = None,
) -> int:
    """Commit groups of merges (``None``: a delete), a group never split across batches."""
    call = call or {}
    written = 0
    batch, pending = db.batch(), 0
    for group in groups:
        if pending + len(group) > BATCH_WRITES:
            batch.commit(**call)
            batch, pending = db.batch(), 0
        for path, data in group:
            ref = db.document(path)
            if data is None:
                batch.delete(ref)
            elif pbwrite.merge_encodable(data):
                # One per blob of an add: the library's proto-plus encoding was ~a quarter
                # of the tool's CPU on 10,000 small files; this is the same message.
                batch._add_write_pbs([pbwrite.merge_write(ref._document_path, data)])
            else:
                batch.set(ref, data, merge=True)
        pending += len(group)
        written += len(group)
    if pending:
        batch.commit(**call)
    return written


def lookup(db: firestore.Client, project: str, digests: Iterable[str]) -> dict[str, dict | None]:
    """``{sha256: summary document or None}``: one batched read per :data:`READ_CHUNK` blobs."""
    wanted = sorted(set(digests))
    found: dict[str, dict | None] = dict.fromkeys(wanted)
    for start in range(0, len(wanted), READ_CHUNK):
        refs = [
            db.document(layout.blob_record(project, s)) for s in wanted[start : start + READ_CHUNK]
        ]
        for snap in db.get_all(refs):
            if snap.exists:
                found[snap.id] = snap.to_dict() or {}
    return found


@dataclass(frozen=True)
class Verdict:
    """What removing a dataset's hold on some blobs allows."""

    deletable: list[str]
    #: ``{sha256: who else holds it}`` (other datasets, kinds of holders).
    held: dict[str, list[str]]
    #: Blobs with no registry entry: unknown holders, so kept.
    unregistered: list[str]


def classify(records: Mapping[str, dict | None], dataset: str) -> Verdict:
    """Which blobs only ``dataset`` holds (deletable), which others hold, which are unknown."""
    deletable: list[str] = []
    held: dict[str, list[str]] = {}
    unregistered: list[str] = []
    for sha256, doc in sorted(records.items()):
        if doc is None:
            unregistered.append(sha256)
            continue
        others = [f"dataset {d}" for d in sorted(doc.get("datasets") or {}) if d != dataset]
        others += sorted(k for k, v in (doc.get("holders") or {}).items() if v)
        if others:
            held[sha256] = others
        else:
            deletable.append(sha256)
    return Verdict(deletable, held, unregistered)


def release_dataset(
    db: firestore.Client, project: str, dataset: str, deleted: Iterable[str], held: Iterable[str]
) -> None:
    """After ``rm``: drop the entries of deleted blobs, and ``dataset`` from those still held."""
    groups: list[list[tuple[str, dict[str, Any] | None]]] = [
        [(layout.blob_record(project, s), None)] for s in sorted(set(deleted))
    ]
    groups += [
        [(layout.blob_record(project, s), {"datasets": {dataset: firestore.DELETE_FIELD}})]
        for s in sorted(set(held))
    ]
    _commit_groups(db, groups)


def release(
    db: firestore.Client, project: str, kind: str, holder: str, digests: Iterable[str]
) -> list[str]:
    """Drop ``holder``'s references to these blobs; returns those nothing holds any more.

    One transaction per blob: the holder's ``Refs`` document goes, and the
    summary's ``holders[kind]`` with it when no other holder of that kind is
    left, read in the same transaction (so a reference recorded meanwhile is
    never dropped). A blob then holding nothing (no dataset, no holder) is
    returned: whatever frees bytes (``datasets rm``) may delete it.
    """
    if kind not in KINDS or kind == DATASET:
        raise ValueError(f"cannot release a {kind!r} reference this way")
    unheld = []
    for sha256 in sorted(set(digests)):
        if _release_one(db.transaction(), db, project, kind, holder, sha256):
            unheld.append(sha256)
    return unheld


@firestore.transactional
def _release_one(
    tx: firestore.Transaction,
    db: firestore.Client,
    project: str,
    kind: str,
    holder: str,
    sha256: str,
) -> bool:
    summary_ref = db.document(layout.blob_record(project, sha256))
    snap = summary_ref.get(transaction=tx)
    query = queries.blob_refs_of_kind(db, project, sha256, kind).limit(2)
    others = [s for s in tx.get(query) if (s.to_dict() or {}).get("holder") != holder]
    tx.delete(db.document(layout.blob_ref(project, sha256, holder)))
    if not snap.exists:
        return False  # stored before the registry: unknown holders, never freed
    doc = snap.to_dict() or {}
    held = {k for k, v in (doc.get("holders") or {}).items() if v}
    if not others:
        held.discard(kind)
        tx.update(summary_ref, {FieldPath("holders", kind).to_api_repr(): firestore.DELETE_FIELD})
    return not held and not doc.get("datasets")


def holders(db: firestore.Client, project: str, sha256: str) -> list[str]:
    """Everything the registry knows holds blob ``sha256`` (datasets and ``Refs`` holders)."""
    snap = db.document(layout.blob_record(project, sha256)).get()
    if not snap.exists:
        return []
    names = [f"{DATASET}:{d}" for d in sorted((snap.to_dict() or {}).get("datasets") or {})]
    refs = db.collection(layout.blob_refs(project, sha256)).stream()
    return sorted(names + [str((r.to_dict() or {}).get("holder")) for r in refs])
