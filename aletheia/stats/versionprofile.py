"""A dataset version's own profile: its files' profiles grouped into tables and merged.

A dataset of 500 Parquet parts is one table, not 500: once every file of a
version is profiled, the done files' stored profiles are grouped by schema
(:func:`aletheia.stats.merge.schema_key`) and each group is merged into one
profile per table (:func:`aletheia.stats.merge.merge_profiles`), without
reading any data again. Each table is named after where its files are (a
lone file's path, or the folder the parts share followed by ``/*``).

It is recorded on the version document, field ``profile``, like the
validation (:mod:`aletheia.stats.versioncheck`) and by the same writers: the
storage function when a version's last file is profiled, and
``DatasetStore.add`` right after a commit whose files were all profiled
already. A precondition on the document's update time makes the first
write win; the rules allow this one edit of an otherwise immutable version.
The document keeps the tables' statistics within 64 KB (every listing of
versions reads it whole; a cut table says ``truncated``); the mergeable
sketches stay in the files' profile blobs, from which readers merge every
column again when they need them (:func:`recorded_or_computed`).
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.stats import digestindex
from aletheia.stats.formats import ProfileMergeError

log = logging.getLogger("aletheia.stats.versionprofile")

#: ``(dataset, version) -> {relative path: entry}``; entries are sha256 strings or have ``.sha256``.
ManifestLoader = Callable[[str, str], Mapping[str, Any]]
#: ``sha256 -> the file's stored full profile`` (``None`` when there is none).
ProfileLoader = Callable[[str], dict[str, Any] | None]

_TERMINAL = ("done", "failed", "unsupported")
_ATTEMPTS = 3
#: Paths listed per table and files listed as not merged (the counts cover all).
MAX_PATHS = 20
#: Budget for all tables' statistics on the version document. Every listing of a
#: dataset's versions reads these documents whole: the budget stays small, and
#: readers that need every column merge them again (:func:`recorded_or_computed`).
DOC_BUDGET_BYTES = 64_000
#: Files' profiles read side by side when a version's are merged.
LOAD_THREADS = 16
_TABLE_FIELDS = ("format", "rows", "columns_total", "columns_profiled", "warnings", "parts")


def compute(
    db: firestore.Client,
    project: str,
    name: str,
    version: str,
    manifests: ManifestLoader,
    profiles: ProfileLoader,
    budget: int | None = None,
) -> dict[str, Any] | None:
    """The version's profile, without writing anything; ``None`` while a file is unprofiled.

    Files that are not tables (``failed``, ``unsupported``) and files whose
    stored profile has no sketches (profiled by an older version) are
    counted, not merged. ``budget``: bytes the tables' columns may take
    (the rest are cut, ``truncated``); ``None`` keeps every column.
    """
    paths = digests(manifests(name, version))
    docs = file_docs(db, project, sorted(set(paths.values())))
    if any(docs.get(s, {}).get("status") not in _TERMINAL for s in paths.values()):
        return None
    # The profiler's libraries only once there is something to merge: the function
    # completes versions of images or models without loading them.
    if any(docs[s].get("status") == "done" for s in paths.values()):
        from aletheia.stats.merge import merge_profiles, schema_key
    loaded = _load_all(
        profiles, sorted({s for s in paths.values() if docs[s].get("status") == "done"})
    )
    groups: dict[tuple[tuple[str, str], ...], list[tuple[str, dict[str, Any]]]] = {}
    not_merged: list[str] = []
    not_tables = 0
    for path, sha in sorted(paths.items()):
        if docs[sha].get("status") != "done":
            not_tables += 1
            continue
        found = loaded[sha]
        if not found or not isinstance(found.get("sketches"), list):
            not_merged.append(path)
            continue
        groups.setdefault(schema_key(found), []).append((path, found))
    tables = []
    for members in groups.values():
        try:
            merged = merge_profiles([p for _, p in members])
        except ProfileMergeError:
            log.warning("profiles of %s %s did not merge", name, version, exc_info=True)
            not_merged += [p for p, _ in members]
            continue
        table_paths = [p for p, _ in members]
        tables.append(
            {
                "table": _table_name(table_paths),
                "files": len(table_paths),
                "paths": table_paths[:MAX_PATHS],
                **{k: merged[k] for k in _TABLE_FIELDS},
                "schema": merged["schema"],
                "stats": merged["stats"],
            }
        )
    tables.sort(key=lambda t: (t["table"], -t["rows"]))
    _unique_names(tables)
    if budget is not None:
        _within_budget(tables, budget)
    return {
        "tables": tables,
        "files": len(paths),
        "files_merged": sum(t["files"] for t in tables),
        "files_not_tables": not_tables,
        "files_not_merged": len(not_merged),
        "not_merged": sorted(not_merged)[:MAX_PATHS],
    }


def _load_all(profiles: ProfileLoader, shas: list[str]) -> dict[str, dict[str, Any] | None]:
    """Every file's stored profile, read side by side: one at a time, a version of 1,000
    files waits for 1,000 round trips to the bucket before anything merges."""
    if len(shas) <= 1:
        return {s: profiles(s) for s in shas}
    with ThreadPoolExecutor(min(LOAD_THREADS, len(shas)), "aletheia-profile-load") as pool:
        return dict(zip(shas, pool.map(profiles, shas), strict=True))


def record(
    db: firestore.Client,
    project: str,
    name: str,
    version: str,
    manifests: ManifestLoader,
    profiles: ProfileLoader,
) -> dict[str, Any] | None:
    """Write the version's profile unless it has one; the recorded profile, or ``None``.

    ``None`` while the version does not exist or has files not yet
    profiled (the last one's function run records it then). A profile
    missing files whose stored profiles have no sketches is returned, not
    written: it is recorded once they are profiled again.
    """
    return record_once(
        db,
        db.document(layout.dataset_version(project, name, version)),
        "profile",
        "computed_at",
        lambda _doc: compute(db, project, name, version, manifests, profiles, DOC_BUDGET_BYTES),
        # Files profiled before profiles had sketches: recorded once they are profiled
        # again (`datasets reprofile`); readers merge what there is meanwhile.
        keep=lambda computed: not computed["files_not_merged"],
    )


def record_once(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    field: str,
    stamp: str,
    compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    keep: Callable[[dict[str, Any]], bool] = lambda _value: True,
) -> dict[str, Any] | None:
    """Write ``field`` of a version document once: the first writer wins, the others read it.

    ``compute(document)`` gives the value (``None``: not yet, nothing is
    written); ``keep(value)`` says whether it may be recorded or only
    returned. The update carries a precondition on the document as read, so
    of two writers racing (the function's instances, an add) one writes and
    the other reads what it wrote; the rules allow this one edit of an
    otherwise immutable version. Returns the recorded (or computed) value.
    """
    for _ in range(_ATTEMPTS):
        snap = ref.get()
        if not snap.exists:
            return None
        doc = snap.to_dict() or {}
        if doc.get(field) is not None:
            return dict(doc[field])
        value = compute(doc)
        if value is None or not keep(value):
            return value
        try:
            # Only onto the document as read, i.e. still without this field.
            ref.update(
                {field: {**value, stamp: firestore.SERVER_TIMESTAMP}},
                option=db.write_option(last_update_time=snap.update_time),
            )
        except gexc.FailedPrecondition:
            continue  # another writer got there first (or wrote another field): read again
        except gexc.PermissionDenied:
            # The rules refuse a second value to a signed-in writer before the
            # precondition is looked at: the same race, unless nothing was recorded.
            recorded = (ref.get().to_dict() or {}).get(field)
            if recorded is None:
                raise
            return dict(recorded)
        return value
    return None


def recorded_or_computed(
    db: firestore.Client,
    project: str,
    name: str,
    version_doc: Mapping[str, Any],
    manifests: ManifestLoader,
    profiles: ProfileLoader,
) -> dict[str, Any] | None:
    """The version's profile with every column: as recorded unless a table was cut to fit
    the document, else merged in memory (readers never write)."""
    found = version_doc.get("profile")
    if found is not None and not any(t.get("truncated") for t in found.get("tables") or []):
        return dict(found)
    return compute(db, project, name, str(version_doc["version"]), manifests, profiles)


def profile_loader(read: Callable[[str], bytes | None]) -> ProfileLoader:
    """A :data:`ProfileLoader` from ``read(sha256)``, the stored profile's bytes or ``None``."""

    def load(sha256: str) -> dict[str, Any] | None:
        data = read(sha256)
        if data is None:
            return None
        try:
            loaded = json.loads(data)
        except ValueError:
            return None
        return loaded if isinstance(loaded, dict) else None

    return load


def _table_name(paths: list[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    folder = posixpath.commonpath([posixpath.dirname(p) for p in paths])
    return f"{folder}/*" if folder else "*"


def _unique_names(tables: list[dict[str, Any]]) -> None:
    """Tables of one folder with different schemas: ``train/*``, ``train/* (2)``."""
    seen: dict[str, int] = {}
    for table in tables:
        count = seen.get(table["table"], 0) + 1
        seen[table["table"]] = count
        if count > 1:
            table["table"] = f"{table['table']} ({count})"


def _within_budget(tables: list[dict[str, Any]], budget: int) -> None:
    """Cut each table's listed columns to its share of the budget."""
    if not tables:
        return
    share = budget // len(tables)
    for table in tables:
        used, kept = 0, 0
        for column in table["stats"]:
            used += len(json.dumps(column, default=str)) + 100  # its schema entry: ~100 bytes
            if used > share:
                break
            kept += 1
        table["columns_in_doc"] = kept
        table["truncated"] = kept < table["columns_total"]
        table["schema"] = table["schema"][:kept]
        table["stats"] = table["stats"][:kept]


def digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``{path: sha256}`` of a manifest."""
    return {p: digestindex.sha256_of(e) for p, e in manifest.items()}


#: Files read by the first step of :func:`has_pending`; each further step reads ten times more.
FIRST_PENDING_PROBE = 10


def has_pending(
    db: firestore.Client, project: str, manifest: Mapping[str, Any], after: str | None = None
) -> bool:
    """Whether some file of ``manifest`` has no terminal status yet, reading as few as it can.

    Every file event of a version asks whether it completed the version;
    reading all N files each time would cost N² reads for a version of N
    files. The files listed after ``after`` (this event's file) are likely
    still on their way, so they are read first, in steps of 10, 100, 1,000
    ..., and the first pending one ends the search: usually one step, and
    every file only for the events that may complete the version.
    """
    ordered = digestindex.index_of(manifest).after(after)
    start, step = 0, FIRST_PENDING_PROBE
    while start < len(ordered):
        chunk = ordered[start : start + step]
        docs = file_docs(db, project, chunk)
        if any(docs.get(s, {}).get("status") not in _TERMINAL for s in chunk):
            return True
        start, step = start + step, step * 10
    return False


def still_nameless(db: firestore.Client, project: str, shas: Collection[str]) -> bool:
    """Whether some of ``shas`` (bytes an add found stored without a file name and named)
    are not yet profiled under their name: their record is not terminal, or is still the
    nameless one, whose event the function has yet to see again. No read without any."""
    docs = file_docs(db, project, sorted(shas)) if shas else {}
    return any(
        docs.get(s, {}).get("status") not in _TERMINAL or not docs.get(s, {}).get("path")
        for s in shas
    )


def file_docs(db: firestore.Client, project: str, shas: list[str]) -> dict[str, dict]:
    """The ``Files`` documents of ``shas`` that exist, by sha256."""
    refs = [db.document(layout.file(project, s)) for s in shas]
    return {snap.id: snap.to_dict() or {} for snap in db.get_all(refs) if snap.exists}
