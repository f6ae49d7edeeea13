"""The storage function's per-event question "did this file complete its version?" stays cheap.

Every file event of a dataset version asks it, so whatever it costs is paid
once per file: anything that grows with the version's size is N² over the
version (10,000 files: 10⁸).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT

from aletheia.cloud import config, layout, queries
from aletheia.data import manifests
from aletheia.function import fileevents, instance
from aletheia.stats import digestindex, versionprofile

from helpers import add_profiled, count_documents_read, dataset_store, version_field


def test_the_events_of_one_version_decode_its_manifest_once(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Decoding a 10,000-file manifest took ~60 ms, and each of its 10,000 events decoded it:
    most of the function's CPU after a large add. A manifest is content-addressed, so the
    instance decodes it once and every later event of the version reuses it."""
    files = 30
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "blobs"
    data.mkdir()
    for i in range(files):
        (data / f"part-{i:03}.bin").write_bytes(b"\x00\x01" + i.to_bytes(4, "big"))
    version = add_profiled(store, db, "blobs", data)
    shas = sorted(e.sha256 for e in store.manifest("blobs", version).values())
    # As while the add's events arrive: the files are on their way, no event completes it.
    for sha in shas:
        db.document(layout.file(PROJECT, sha)).update({"status": "seen"})

    decoded: list[str] = []
    real = manifests.decode_manifest

    def counting(data: bytes, what: str = "manifest") -> dict[str, manifests.FileEntry]:
        decoded.append(what)
        return real(data, what)

    monkeypatch.setattr(manifests, "decode_manifest", counting)
    walks = _count_manifest_walks(monkeypatch)
    group_queries = _count_group_queries(monkeypatch)
    instance.decoded_manifests.cache_clear()  # a fresh instance
    with count_documents_read(db) as read:
        for sha in shas:
            ref = layout.parse_blob_name(layout.blob_name(PROJECT, sha))
            assert ref is not None
            fileevents.validate_datasets(db, gcs, stack.bucket, ref)

    assert len(decoded) == 1, decoded
    # Which paths hold each file, and which files come after it: one walk of the manifest
    # for the version's events, not a walk and a sort per event.
    assert walks == [files], walks
    # Per event, by id: the blob's registry entry, its dataset, the version files/ shows
    # (read once though asked twice), the files/ entries at its paths, one probe of the files
    # after this one; and one query, the dataset's newest version.
    assert read["batch_get_documents calls"] == 5 * files, read
    assert read["run_query calls"] == files, read
    # Which versions hold each file came from documents read by id, not from a query that the
    # emulator answers by scanning every dataset's files/ (143 ms at 3,000 entries).
    assert group_queries == [], group_queries
    # Nothing completed: the version carries no validation or profile written by these events.
    doc = db.document(layout.dataset_version(PROJECT, "blobs", version)).get().to_dict() or {}
    assert doc.get("validation") is None


def _count_manifest_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each manifest walked whole to index or list its digests from now on."""
    walked: list[int] = []
    build, listing = digestindex.DigestIndex.build, versionprofile.digests

    def counting_build(manifest: Mapping[str, Any]) -> digestindex.DigestIndex:
        walked.append(len(manifest))
        return build(manifest)

    def counting_listing(manifest: Mapping[str, Any]) -> dict[str, str]:
        walked.append(len(manifest))
        return listing(manifest)

    monkeypatch.setattr(digestindex.DigestIndex, "build", counting_build)
    monkeypatch.setattr(versionprofile, "digests", counting_listing)
    return walked


def _count_group_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sha256 of each collection-group query of datasets' files/ made from now on."""
    asked: list[str] = []
    real = queries.dataset_versions_with_file

    def counting(db: firestore.Client, p: str, sha256: str) -> firestore.Query:
        asked.append(sha256)
        return real(db, p, sha256)

    monkeypatch.setattr(queries, "dataset_versions_with_file", counting)
    return asked


def test_the_last_event_of_a_version_records_its_validation_from_documents_read_by_id(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event of a version's last file finds the version (it introduced the bytes) and
    records its validation, with no collection-group query."""
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "parts"
    data.mkdir()
    for i in range(5):
        (data / f"part-{i}.bin").write_bytes(b"\x00first %d" % i)
    add_profiled(store, db, "parts", data)
    (data / "part-3.bin").write_bytes(b"\x00second")
    version = add_profiled(store, db, "parts", data)
    version_field(db, PROJECT, "parts", version, "validation")
    changed = store.manifest("parts", version)["part-3.bin"].sha256
    # As if the changed file's event were still to come: the version not yet validated.
    db.document(layout.dataset_version(PROJECT, "parts", version)).update(
        {"validation": firestore.DELETE_FIELD, "checked_at": firestore.DELETE_FIELD}
    )
    group_queries = _count_group_queries(monkeypatch)

    ref = layout.parse_blob_name(layout.blob_name(PROJECT, changed))
    assert ref is not None
    fileevents.validate_datasets(db, gcs, stack.bucket, ref)

    doc = db.document(layout.dataset_version(PROJECT, "parts", version)).get().to_dict() or {}
    assert doc["validation"]["parent"] == doc["parent"]
    assert doc["validation"]["ok"] is True
    assert group_queries == []
