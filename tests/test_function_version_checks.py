"""The storage function's per-event question "did this file complete its version?" stays cheap.

Every file event of a dataset version asks it, so whatever it costs is paid
once per file: anything that grows with the version's size is N² over the
version (10,000 files: 10⁸).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT

from aletheia.cloud import config, layout
from aletheia.data import manifests
from aletheia.function import fileevents, instance

from helpers import add_profiled, dataset_store


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
    instance.decoded_manifests.cache_clear()  # a fresh instance
    for sha in shas:
        ref = layout.parse_blob_name(layout.blob_name(PROJECT, sha))
        assert ref is not None
        fileevents.validate_datasets(db, gcs, stack.bucket, ref)

    assert len(decoded) == 1, decoded
    # Nothing completed: the version carries no validation or profile written by these events.
    doc = db.document(layout.dataset_version(PROJECT, "blobs", version)).get().to_dict() or {}
    assert doc.get("validation") is None
