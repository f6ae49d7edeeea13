"""Which dataset versions hold some bytes: answered by reading documents, not by a query.

At every file event the storage function asks which dataset versions the
file may complete (:func:`aletheia.stats.versioncheck.for_file`): those
whose latest manifest (``Datasets/*/files``) lists the bytes. The
collection-group query that answers it directly scans every dataset's
``files/`` on the local Firestore emulator (143 ms per event with 3,000
entries, growing with every add: N² over a large add, most of the
emulator's CPU). The same answer comes from documents read by id:

* the blob's registry entry (``Blobs/{sha256}``, :mod:`aletheia.data.blobrefs`)
  names the datasets holding the bytes; it is written before a version's
  commit, so it names every dataset whose ``files/`` can list them;
* in each, the paths that hold the bytes come from the manifest of the
  version ``files/`` shows (``files_version``, marked once ``files/`` is
  written), through its digest index (:mod:`aletheia.stats.digestindex`,
  built once per manifest);
* the ``files/`` entries at those paths, read together, say which version
  introduced the bytes there, exactly what the query returns.

A blob without a registry entry (stored before the registry existed) or a
dataset without a ``files_version`` mark is answered by the query, as before.
An event that lands while an add is still writing ``files/`` finds the
version before it (the query would find a part of ``files/``); the add
itself records the version's profile and validation after the mark when
its files are through (``DatasetStore.add``), as it does for the events
that land before ``files/`` is written at all.
"""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.data import blobrefs
from aletheia.data.filesindex import FILES_VERSION
from aletheia.errors import NotFoundError, ValidationError
from aletheia.stats import digestindex

#: ``(dataset, version) -> {relative path: entry with .sha256}``.
ManifestLoader = Any


def dataset_versions(
    db: firestore.Client, project: str, sha256: str, manifests: ManifestLoader
) -> dict[str, set[str]] | None:
    """``{dataset: {versions that introduced sha256 at a path of its files/}}``.

    ``None`` when documents cannot answer (see the module doc): the caller
    asks the collection-group query instead.
    """
    summary = blobrefs.lookup(db, project, [sha256])[sha256]
    if summary is None:
        return None
    named = summary.get("datasets") or {}
    if not isinstance(named, dict):
        return None  # not the registry's shape: the query decides
    names = sorted(n for n, held in named.items() if held)
    try:
        refs = [db.document(layout.dataset(project, n)) for n in names]
    except ValidationError:
        return None  # a name no add writes: the query decides
    if not refs:
        return {}
    found: dict[str, set[str]] = {}
    for snap in db.get_all(refs):
        doc = snap.to_dict() or {}
        name = snap.id
        if not snap.exists:
            continue  # removed: nothing of it lists the bytes
        shown = doc.get(FILES_VERSION)
        if not shown:
            return None
        try:
            paths = digestindex.index_of(manifests(name, str(shown))).paths.get(sha256, [])
        except NotFoundError:
            return None  # the version files/ shows was removed meanwhile: ask the query
        if not paths:
            continue
        entries = db.get_all([db.document(layout.dataset_file(project, name, p)) for p in paths])
        for entry in entries:
            data = entry.to_dict() or {}
            if data.get("sha256") == sha256 and data.get("version"):
                found.setdefault(name, set()).add(str(data["version"]))
    return found
