"""A dataset version's validation against its parent, recorded where the data is written.

The validation (:func:`aletheia.stats.drift.compare` of each changed file with the
parent's file at the same path) needs every involved file profiled. It is
recorded on the version document, once, by whichever writer first sees
everything in place:

- the storage function, when the last file of a version finishes profiling
  (:func:`for_file`);
- ``DatasetStore.add``, right after its commit, when every file was already
  profiled, e.g. bytes uploaded before (:func:`after_commit`).

The two can race. Both compute the same thing from the same terminal
documents, and the write carries a precondition (the document's update
time when it was read without a validation), so only the first lands and
the second re-reads and stops; the rules allow exactly this one edit of an
otherwise immutable version. Readers (``datasets show``/``stats``) never
write: :func:`compute` gives them the validation in memory when none is
recorded yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout, queries
from aletheia.stats import drift

log = logging.getLogger("aletheia.stats.versioncheck")

#: ``(dataset, version) -> {relative path: entry}``; entries are sha256 strings or have ``.sha256``.
ManifestLoader = Callable[[str, str], Mapping[str, Any]]

_TERMINAL = ("done", "failed", "unsupported")
_ATTEMPTS = 3
#: Files listed per validation (the counts cover all; the document stays small).
MAX_FILES_LISTED = 50


def compute(
    db: firestore.Client,
    project: str,
    name: str,
    version_doc: Mapping[str, Any],
    manifests: ManifestLoader,
    thresholds: drift.Thresholds | None = None,
) -> dict[str, Any] | None:
    """The validation of a version, without writing anything.

    ``None`` when the version has no parent or some involved file is not
    profiled yet.
    """
    parent = version_doc.get("parent")
    if not parent:
        return None
    old = _digests(manifests(name, str(parent)))
    new = _digests(manifests(name, str(version_doc["version"])))
    pairs = {p: (old[p], sha) for p, sha in new.items() if p in old}
    digests = sorted({s for pair in pairs.values() for s in pair})
    docs = _file_docs(db, project, digests)
    if any(docs.get(s, {}).get("status") not in _TERMINAL for s in digests):
        return None
    results: dict[str, Any] = {}
    for path, (old_sha, new_sha) in sorted(pairs.items()):
        before, after = docs[old_sha], docs[new_sha]
        if old_sha == new_sha or before.get("status") != "done" or after.get("status") != "done":
            continue
        results[path] = {"baseline": old_sha, **drift.compare(before, after, thresholds)}
    anomalies = sum(len(r["anomalies"]) for r in results.values())
    listed = list(results.items())[:MAX_FILES_LISTED]
    return {
        "parent": parent,
        "ok": anomalies == 0,
        "anomalies": anomalies,
        "files_compared": len(results),
        "files": {layout.file_doc_id(p): {"path": p, **r} for p, r in listed},
    }


def record(
    db: firestore.Client,
    project: str,
    name: str,
    version: str,
    manifests: ManifestLoader,
    thresholds: drift.Thresholds | None = None,
) -> dict[str, Any] | None:
    """Write the version's validation unless it has one; the recorded validation, or ``None``.

    ``None`` while the version has no parent, does not exist, or has files
    not yet profiled (the last one's function run records it then).
    """
    ref = db.document(layout.dataset_version(project, name, version))
    for _ in range(_ATTEMPTS):
        snap = ref.get()
        if not snap.exists:
            return None
        doc = snap.to_dict() or {}
        if doc.get("validation") is not None:
            return dict(doc["validation"])
        validation = compute(db, project, name, doc, manifests, thresholds)
        if validation is None:
            return None
        stamped = {**validation, "checked_at": firestore.SERVER_TIMESTAMP}
        try:
            # Only onto the document as read, i.e. still without a validation.
            ref.update(
                {"validation": stamped}, option=db.write_option(last_update_time=snap.update_time)
            )
        except gexc.FailedPrecondition:
            continue  # another writer got there first: read what it recorded
        except gexc.PermissionDenied:
            # The rules refuse a second validation to a signed-in writer before the
            # precondition is looked at: the same race, unless nothing was recorded.
            recorded = (ref.get().to_dict() or {}).get("validation")
            if recorded is None:
                raise
            return dict(recorded)
        return validation
    return None


def after_commit(
    db: firestore.Client, project: str, name: str, version: str, manifests: ManifestLoader
) -> None:
    """Record the validation of a just-committed version if its files are all profiled.

    Never raises: the data is committed either way, and a version whose
    files are still being profiled is validated by the function.
    """
    try:
        record(db, project, name, version, manifests)
    except Exception:  # a validation problem must not fail the add
        log.warning("validation of %s %s not recorded", name, version, exc_info=True)


def for_file(db: firestore.Client, project: str, sha256: str, manifests: ManifestLoader) -> None:
    """Record the validation of each dataset version these bytes complete.

    These are the versions that introduced the bytes at some path (their
    change is what is validated) and each dataset's latest version.
    """
    versions: dict[str, set[str]] = {}
    for snap in queries.dataset_versions_with_file(db, project, sha256).stream():
        entry = snap.to_dict() or {}
        if entry.get("dataset") and entry.get("version"):
            versions.setdefault(str(entry["dataset"]), set()).add(str(entry["version"]))
    for name, introduced in sorted(versions.items()):
        newest = queries.dataset_versions_newest_first(db, project, name).limit(1).stream()
        latest = {
            str(d["version"]) for d in (s.to_dict() or {} for s in newest) if d.get("version")
        }
        for version in sorted(introduced | latest):
            record(db, project, name, version, manifests)


def _digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    return {p: e if isinstance(e, str) else str(e.sha256) for p, e in manifest.items()}


def _file_docs(db: firestore.Client, project: str, digests: list[str]) -> dict[str, dict]:
    refs = [db.document(layout.file(project, s)) for s in digests]
    return {snap.id: snap.to_dict() or {} for snap in db.get_all(refs) if snap.exists}
