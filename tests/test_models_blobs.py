"""Deleting model versions and models releases their hold on blobs (the blob registry).

Every version's files are registered under its model (``model:{name}``), so
``datasets rm`` keeps them. Once versions go, the model's hold on the bytes
no remaining version uses must go too, or nothing could ever free them.
"""

from __future__ import annotations

from pathlib import Path

from google.cloud import firestore
from test_datasets import make_tree
from test_models import ms

from aletheia.cloud import layout
from aletheia.data import blobrefs, datasets
from aletheia.tracking.metastore import Metastore

__all__ = ["ms"]  # the fixture, shared with test_models
P = "models"


def _digest(ms: Metastore, name: str, version: str, path: str) -> str:
    files = ms.artifacts.get("train", name, version).files
    return next(f.sha256 for f in files if f.path == path)


def _summary(db: firestore.Client, sha256: str) -> dict:
    return db.document(layout.blob_record(P, sha256)).get().to_dict() or {}


def test_deleted_versions_and_models_release_their_blobs(
    ms: Metastore, db: firestore.Client, tmp_path: Path
) -> None:
    exper = ms.exper("train", git_policy="off")
    with exper.start_run() as run:
        run.log_model("clf", make_tree(tmp_path / "one", {"a.bin": b"A" * 99, "b.bin": b"B" * 99}))
        run.log_model("clf", make_tree(tmp_path / "two", {"b.bin": b"B" * 99, "c.bin": b"C" * 99}))
    a, b = _digest(ms, "clf", "v1", "a.bin"), _digest(ms, "clf", "v1", "b.bin")
    c = _digest(ms, "clf", "v2", "c.bin")
    ms.register_model("copy", run=run, artifact="clf", version="v2")  # another model holds v2
    clf, copy = blobrefs.model_holder("clf"), blobrefs.model_holder("copy")
    assert clf in blobrefs.holders(db, P, a) and {clf, copy} <= set(blobrefs.holders(db, P, c))

    assert ms.model_registry.delete_version("clf", 2) == []  # the artifact still holds them
    assert clf not in blobrefs.holders(db, P, c)  # only version 2 of clf held c
    assert clf in blobrefs.holders(db, P, b)  # version 1 still holds b
    assert _summary(db, c)["holders"] == {"artifact": True, "model": True}  # copy holds c

    ms.model_registry.delete_model("copy")
    assert copy not in blobrefs.holders(db, P, c)
    assert _summary(db, c)["holders"] == {"artifact": True}  # no model holds c any more
    ms.model_registry.delete_model("clf")
    for sha256 in (a, b):
        assert clf not in blobrefs.holders(db, P, sha256)
        assert _summary(db, sha256)["holders"] == {"artifact": True}


def test_gc_frees_a_deleted_models_bytes_once_nothing_else_holds_them(
    ms: Metastore, db: firestore.Client, tmp_path: Path
) -> None:
    """A model registered from an artifact saved before the blob registry is the only
    registered holder of its bytes; once it is deleted, ``datasets rm`` (which frees bytes
    nothing holds) deletes them, as it would not while the model's reference stayed."""
    info = ms.blobstore.put_bytes(b"old weights")  # an artifact from before the registry
    db.document(layout.artifact(P, "train", "old")).set(
        {"name": "old", "kind": "file", "is_dir": False, "uploaded": True, "latest_version": 1}
    )
    db.document(layout.artifact_file(P, "train", "old", "w.bin")).set(
        {"path": "w.bin", "sha256": info.sha256, "size": info.size, "blob": info.uri}
    )
    ms.model_registry.register("legacy", artifact=ms.artifacts.get("train", "old"))
    store = datasets.DatasetStore(db, ms.blobstore, ms.cache, P)
    store.add("same-bytes", make_tree(tmp_path / "d", {"w.bin": b"old weights"}))
    assert set(blobrefs.holders(db, P, info.sha256)) == {
        "dataset:same-bytes",
        blobrefs.model_holder("legacy"),
    }

    assert ms.model_registry.delete_model("legacy") == []  # the dataset still holds them
    removed = store.remove_version("same-bytes", "v1")
    assert removed.blobs_kept == 0 and not ms.blobstore.exists(info.sha256)
