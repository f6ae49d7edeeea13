"""What a dataset add costs the tool per file in Firestore writes it encodes.

An add writes two documents per new file (its blob's registry entry, its
``files/`` entry). Encoded value by value through the library's proto-plus
wrappers they were about a quarter of the tool's CPU on 10,000 small files;
they are built as the same raw protobuf messages instead.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage
from google.cloud.firestore_v1 import _helpers

from aletheia.cloud import config, layout

from helpers import dataset_store

PROJECT = "addwrites"


def test_an_adds_per_file_documents_bypass_the_librarys_encoding(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = 40
    data = tmp_path / "data"
    data.mkdir()
    for i in range(files):
        (data / f"f-{i:03}.bin").write_bytes(b"bytes of file %d" % i)
    encoded: Counter[str] = Counter()
    for name in ("pbs_for_set_with_merge", "pbs_for_set_no_merge"):
        real = getattr(_helpers, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            encoded[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(_helpers, name, counting)

    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    version = store.add("blobs", data, lock=False).version

    # The version, the dataset and the project's few documents, not two per file.
    assert sum(encoded.values()) < 10, encoded
    # What is stored is what the library wrote: each file's entry and its blob's registry.
    manifest = store.manifest("blobs", version)
    assert len(manifest) == files
    for entry in manifest.values():
        registry = db.document(layout.blob_record(PROJECT, entry.sha256)).get().to_dict()
        assert registry is not None
        assert registry["sha256"] == entry.sha256
        assert registry["datasets"] == {"blobs": True}
        assert registry["updated_at"] is not None  # the server's time
        listed = db.document(layout.dataset_file(PROJECT, "blobs", entry.path)).get().to_dict()
        assert listed == {
            "path": entry.path,
            "sha256": entry.sha256,
            "size": entry.size,
            "blob": store.blobs.uri(entry.sha256),
            "version": version,
            "project": PROJECT,
            "dataset": "blobs",
            "kind": "dataset",
        }
