"""A dataset version's validation against its parent, recorded where the data is written.

The validation (:func:`aletheia.stats.drift.compare` of each changed file with the
parent's file at the same path, and of each table of the version's profile
(:mod:`aletheia.stats.versionprofile`) with the parent's table of the same
name) needs every involved file profiled. It is recorded on the version
document, once, by whichever writer first sees everything in place:

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
from typing import TYPE_CHECKING, Any

from google.cloud import firestore

from aletheia.cloud import layout, queries
from aletheia.stats import versionprofile
from aletheia.stats.versionprofile import ProfileLoader

if TYPE_CHECKING:
    from aletheia.stats import drift

log = logging.getLogger("aletheia.stats.versioncheck")

#: ``(dataset, version) -> {relative path: entry}``; entries are sha256 strings or have ``.sha256``.
ManifestLoader = Callable[[str, str], Mapping[str, Any]]

_TERMINAL = ("done", "failed", "unsupported")
#: Files listed per validation (the counts cover all; the document stays small).
MAX_FILES_LISTED = 50


def compute(
    db: firestore.Client,
    project: str,
    name: str,
    version_doc: Mapping[str, Any],
    manifests: ManifestLoader,
    thresholds: drift.Thresholds | None = None,
    profiles: ProfileLoader | None = None,
) -> dict[str, Any] | None:
    """The validation of a version, without writing anything.

    ``None`` when the version has no parent or some involved file is not
    profiled yet. With ``profiles`` (the files' stored profiles) the tables
    of both versions' profiles are compared too, and every file of both
    versions must be profiled.
    """
    parent = version_doc.get("parent")
    if not parent:
        return None
    tables: dict[str, Any] = {}
    if profiles is not None:
        compared = _compare_tables(db, project, name, version_doc, manifests, profiles, thresholds)
        if compared is None:
            return None
        tables = compared
    old = versionprofile.digests(manifests(name, str(parent)))
    new = versionprofile.digests(manifests(name, str(version_doc["version"])))
    pairs = {p: (old[p], sha) for p, sha in new.items() if p in old}
    digests = sorted({s for pair in pairs.values() for s in pair})
    docs = versionprofile.file_docs(db, project, digests)
    if any(docs.get(s, {}).get("status") not in _TERMINAL for s in digests):
        return None
    results: dict[str, Any] = {}
    for path, (old_sha, new_sha) in sorted(pairs.items()):
        before, after = docs[old_sha], docs[new_sha]
        if old_sha == new_sha or before.get("status") != "done" or after.get("status") != "done":
            continue
        results[path] = {"baseline": old_sha, **_compare(before, after, thresholds)}
    anomalies = sum(len(r["anomalies"]) for r in results.values())
    anomalies += sum(len(r["anomalies"]) for r in tables.values())
    listed = list(results.items())[:MAX_FILES_LISTED]
    out = {
        "parent": parent,
        "ok": anomalies == 0,
        "anomalies": anomalies,
        "files_compared": len(results),
        "files": {layout.file_doc_id(p): {"path": p, **r} for p, r in listed},
    }
    if profiles is not None:
        out["tables_compared"] = len(tables)
        out["tables"] = dict(list(tables.items())[:MAX_FILES_LISTED])
    return out


def _compare_tables(
    db: firestore.Client,
    project: str,
    name: str,
    version_doc: Mapping[str, Any],
    manifests: ManifestLoader,
    profiles: ProfileLoader,
    thresholds: drift.Thresholds | None,
) -> dict[str, Any] | None:
    """Each table of the version against the parent's table of the same name.

    A version with one table is compared with a parent with one table
    whatever their names (the folder was renamed). ``None`` while a file of
    either version is not profiled.
    """
    parent = str(version_doc["parent"])
    new = versionprofile.recorded_or_computed(db, project, name, version_doc, manifests, profiles)
    parent_doc = db.document(layout.dataset_version(project, name, parent)).get().to_dict()
    old = versionprofile.recorded_or_computed(
        db, project, name, parent_doc or {"version": parent}, manifests, profiles
    )
    if new is None or old is None:
        return None
    before = {t["table"]: t for t in old.get("tables") or []}
    after = {t["table"]: t for t in new.get("tables") or []}
    if len(before) == len(after) == 1:
        pairs = [(next(iter(after)), next(iter(before)))]
    else:
        pairs = [(t, t) for t in after if t in before]
    out: dict[str, Any] = {}
    for table, baseline in sorted(pairs):
        if before[baseline]["paths"] == after[table]["paths"] and after[table]["files"] == 1:
            continue  # one file at the same path: its own comparison says it all
        result = _compare(before[baseline], after[table], thresholds)
        out[layout.file_doc_id(table)] = {"table": table, "baseline_table": baseline, **result}
    return out


def record(
    db: firestore.Client,
    project: str,
    name: str,
    version: str,
    manifests: ManifestLoader,
    thresholds: drift.Thresholds | None = None,
    profiles: ProfileLoader | None = None,
) -> dict[str, Any] | None:
    """Write the version's validation unless it has one; the recorded validation, or ``None``.

    ``None`` while the version has no parent, does not exist, or has files
    not yet profiled (the last one's function run records it then).
    """
    return versionprofile.record_once(
        db,
        db.document(layout.dataset_version(project, name, version)),
        "validation",
        "checked_at",
        lambda doc: compute(db, project, name, doc, manifests, thresholds, profiles),
    )


def after_commit(
    db: firestore.Client,
    project: str,
    name: str,
    version: str,
    manifests: ManifestLoader,
    profiles: ProfileLoader | None = None,
) -> None:
    """Record the profile and validation of a just-committed version if its files are profiled.

    Never raises: the data is committed either way, and a version whose
    files are still being profiled is profiled and validated by the function.
    """
    try:
        if profiles is not None:
            versionprofile.record(db, project, name, version, manifests, profiles)
        record(db, project, name, version, manifests, profiles=profiles)
    except Exception:  # a validation problem must not fail the add
        log.warning("validation of %s %s not recorded", name, version, exc_info=True)


#: ``sha256 -> {dataset: {versions that introduced it at a path of the dataset's files/}}``,
#: or ``None`` when it cannot say (the collection-group query answers then).
HolderFinder = Callable[[str], "dict[str, set[str]] | None"]


def for_file(
    db: firestore.Client,
    project: str,
    sha256: str,
    manifests: ManifestLoader,
    profiles: ProfileLoader | None = None,
    holders: HolderFinder | None = None,
) -> None:
    """Record the profile and validation of each dataset version these bytes complete.

    These are the versions that introduced the bytes at some path (their
    change is what is validated) and each dataset's latest version. Which
    datasets list the bytes is ``holders``' answer if it has one (the storage
    function reads documents by id: :mod:`aletheia.function.holders`), else
    a collection-group query's.
    """
    versions = holders(sha256) if holders is not None else None
    if versions is None:
        versions = {}
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
            # Most events of a version's files do not complete it: a few reads say so.
            if versionprofile.has_pending(db, project, manifests(name, version), after=sha256):
                continue
            if profiles is not None:
                versionprofile.record(db, project, name, version, manifests, profiles)
            record(db, project, name, version, manifests, profiles=profiles)


def _compare(
    before: Mapping[str, Any], after: Mapping[str, Any], thresholds: drift.Thresholds | None
) -> dict[str, Any]:
    """:func:`aletheia.stats.drift.compare`, whose NumPy is loaded only when there is a pair."""
    from aletheia.stats import drift

    return drift.compare(dict(before), dict(after), thresholds)
