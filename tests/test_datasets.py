"""Datasets against the real emulators: versions, dedup, pulls, corruption, bad input."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from google.cloud import firestore, storage

from aletheia.cloud import config, layout
from aletheia.data import lineage
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.data.filesindex import FilesIndex
from aletheia.data.manifests import load_manifest
from aletheia.errors import NotFoundError, ValidationError

PROJECT = "p1"


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write files and date them in the past, so the stat memo trusts them."""
    past = time.time_ns() - 3_600_000_000_000
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(past, past))
    return root


def store_for(
    db: firestore.Client, gcs: storage.Client, settings: config.Settings, cache: Path, **kw
) -> DatasetStore:
    blobs = BlobStore(gcs, settings.bucket, PROJECT)
    kw.setdefault("workdir", cache)  # never the repository the tests run from
    return DatasetStore(db, blobs, LocalCache(cache), PROJECT, **kw)


@pytest.fixture()
def store(stack, db, gcs, cache_dir, tmp_path) -> DatasetStore:
    return store_for(db, gcs, stack, cache_dir, workdir=tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_readd_unchanged_uploads_nothing_and_creates_no_version(store, tmp_path, db):
    files = {f"train/part-{i}.csv": f"a,b\n{i},{i * i}\n".encode() for i in range(20)}
    files["README"] = b"hello"
    data = make_tree(tmp_path / "data", files)

    first = store.add("mnist", data, desc="digits")
    assert (first.version, first.created, first.parent) == ("v1", True, None)
    assert first.files_uploaded == 21
    # The data's bytes, not the manifest's too ("uploaded 21 files, ..." in the CLI).
    assert first.bytes_uploaded == sum(len(b) for b in files.values())
    assert first.bytes_hashed == sum(len(b) for b in files.values())

    before = store.blobs.stats.snapshot()
    second = store.add("mnist", data)
    assert (second.version, second.created) == ("v1", False)
    assert second.bytes_uploaded == 0 and second.files_uploaded == 0
    assert second.bytes_hashed == 0  # every file answered by the stat memo
    assert store.blobs.stats.snapshot() == before  # not even a HEAD request
    assert [v["version"] for v in store.versions("mnist")] == ["v1"]
    info = store.info("mnist")
    assert info["desc"] == "digits" and info["partitions"] == ["train"]
    assert info["latest_version"] == "v1"


def test_unchanged_readd_with_a_description_or_source_records_them(store, tmp_path, db):
    # Description and source describe the dataset, not a version: a re-add of unchanged data
    # that names new ones must record them, not drop them silently.
    data = make_tree(tmp_path / "data", {"a.csv": b"x\n1\n"})
    store.add("notes", data, desc="first words", source="s3://old")
    again = store.add("notes", data, desc="better words", source="https://example.org/data")
    assert (again.version, again.created) == ("v1", False)
    info = store.info("notes")
    assert (info["desc"], info["source"]) == ("better words", "https://example.org/data")
    assert [v["version"] for v in store.versions("notes")] == ["v1"]
    store.add("notes", data)  # naming neither keeps both
    info = store.info("notes")
    assert (info["desc"], info["source"]) == ("better words", "https://example.org/data")


def test_identical_content_is_stored_once(store, tmp_path, gcs, stack):
    data = make_tree(tmp_path / "d", {"a.bin": b"same", "b/c.bin": b"same", "d.bin": b"other"})
    result = store.add("dups", data)
    assert result.files_uploaded == 2
    # Only content-addressed objects: the storage function adds samples elsewhere.
    prefix = f"{PROJECT}/sha256/"
    names = sorted(b.name for b in gcs.bucket(stack.bucket).list_blobs(prefix=prefix))
    assert len(names) == 3  # two contents + the manifest


def test_changing_one_file_of_1000_uploads_only_that_file(store, tmp_path, db):
    files = {f"shard-{i // 100}/f{i:04d}.txt": f"row {i}\n".encode() for i in range(1000)}
    data = make_tree(tmp_path / "big", files)
    assert store.add("big", data).files_uploaded == 1000

    make_tree(data, {"shard-3/f0333.txt": b"changed\n"})
    before = store.blobs.stats.snapshot()
    result = store.add("big", data)
    after = store.blobs.stats.snapshot()
    assert (result.version, result.parent, result.created) == ("v2", "v1", True)
    assert result.files_uploaded == 1
    assert result.bytes_hashed == len(b"changed\n")
    # one upload for the file, one for the manifest; small blobs need no HEAD first
    assert after["uploads"] - before["uploads"] == 2
    assert after["head_requests"] - before["head_requests"] == 0
    assert after["bytes_uploaded"] - before["bytes_uploaded"] < 200_000
    assert result.changes == {"added": 0, "removed": 0, "changed": 1}

    diff = store.diff("big", "v1", "v2")
    assert diff.added == [] and diff.removed == []
    assert [(o.path, n.sha256) for o, n in diff.changed] == [
        ("shard-3/f0333.txt", sha(b"changed\n"))
    ]
    v1 = load_manifest(db, store.blobs, PROJECT, "big", "v1")
    v2 = load_manifest(db, store.blobs, PROJECT, "big", "v2")
    assert {p for p in v1 if v1[p] != v2[p]} == {"shard-3/f0333.txt"}
    # files/ (latest manifest) moved one entry to v2
    entry = db.document(layout.dataset_file(PROJECT, "big", "shard-3/f0333.txt")).get()
    assert entry.get("version") == "v2" and entry.get("sha256") == sha(b"changed\n")
    version_doc = db.document(layout.dataset_version(PROJECT, "big", "v2")).get().to_dict()
    assert version_doc["parent"] == "v1" and version_doc["file_count"] == 1000


def test_removed_and_added_files_make_a_version(store, tmp_path):
    data = make_tree(tmp_path / "d", {"a": b"1", "b": b"2"})
    store.add("ds", data)
    (data / "a").unlink()
    make_tree(data, {"c": b"3"})
    result = store.add("ds", data)
    assert result.changes == {"added": 1, "removed": 1, "changed": 0}
    diff = store.diff("ds", "v1", "v2")
    assert [e.path for e in diff.added] == ["c"] and [e.path for e in diff.removed] == ["a"]


def test_pull_into_empty_cache_is_byte_identical(stack, db, gcs, tmp_path):
    files = {f"x/{i}.bin": os.urandom(10_000 + i) for i in range(30)}
    files["big.bin"] = os.urandom(9 << 20)  # above the resumable threshold
    data = make_tree(tmp_path / "data", files)
    store_for(db, gcs, stack, tmp_path / "cache-a").add("rand", data)

    fresh = store_for(db, gcs, stack, tmp_path / "cache-b")
    handle = fresh.get("rand", to=tmp_path / "out")
    assert handle.version == "v1" and handle.local_path == (tmp_path / "out").resolve()
    assert fresh.blobs.stats.downloads == 31 + 1  # 31 files + the manifest
    for rel, blob in files.items():
        assert sha((tmp_path / "out" / rel).read_bytes()) == sha(blob)
    # default get: a read-only checkout inside the cache
    checkout = fresh.get("rand")
    assert checkout.local_path is not None
    assert (checkout.local_path / "big.bin").read_bytes() == files["big.bin"]
    assert fresh.blobs.stats.downloads == 32  # nothing downloaded twice


def test_corrupted_cache_file_is_detected_and_downloaded_again(stack, db, gcs, tmp_path):
    data = make_tree(tmp_path / "data", {"a.txt": b"good bytes", "b.txt": b"other"})
    store_for(db, gcs, stack, tmp_path / "cache-a").add("c", data)
    reader = store_for(db, gcs, stack, tmp_path / "cache-b")
    reader.get("c", to=tmp_path / "out")
    downloads = reader.blobs.stats.downloads

    obj = reader.cache.path(sha(b"good bytes"))
    obj.chmod(0o644)
    obj.write_bytes(b"evil bytes")  # same size, different content
    handle = reader.get("c", to=tmp_path / "out2")
    assert reader.cache.stats.corrupt_removed == 1
    assert reader.blobs.stats.downloads == downloads + 1
    assert (handle.local_path / "a.txt").read_bytes() == b"good bytes"

    # silent bit rot (mtime restored) is caught by a full verification
    st = obj.stat()
    obj.chmod(0o644)
    obj.write_bytes(b"rott bytes")
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    reader.get("c", to=tmp_path / "out3", verify="full")
    assert reader.cache.stats.corrupt_removed == 2
    assert (tmp_path / "out3" / "a.txt").read_bytes() == b"good bytes"


def test_pull_to_dir_replaces_files_of_the_previous_version(store, tmp_path):
    data = make_tree(tmp_path / "d", {"keep": b"k", "old": b"o"})
    store.add("ds", data)
    (data / "old").unlink()
    make_tree(data, {"new": b"n"})
    store.add("ds", data)
    out = tmp_path / "out"
    store.get("ds", "v1", to=out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["keep", "old"]
    store.get("ds", "v2", to=out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["keep", "new"]


def test_remove_version_keeps_blobs_used_elsewhere(store, tmp_path, gcs, stack):
    data = make_tree(tmp_path / "d", {"shared": b"shared", "only1": b"only in v1"})
    store.add("ds", data)
    (data / "only1").unlink()
    make_tree(data, {"only2": b"only in v2"})
    store.add("ds", data)
    result = store.remove_version("ds", "v2")
    assert result.latest_version == "v1"
    assert store.blobs.exists(sha(b"shared")) and store.blobs.exists(sha(b"only in v1"))
    assert not store.blobs.exists(sha(b"only in v2"))
    assert store.info("ds")["latest_version"] == "v1"
    # a removed id is never reused
    make_tree(data, {"only3": b"three"})
    assert store.add("ds", data).version == "v3"


@pytest.mark.parametrize("name", ["a/b", "..", "", " x"])
def test_bad_names_are_refused_before_any_write(store, tmp_path, db, name):
    data = make_tree(tmp_path / "d", {"a": b"1"})
    with pytest.raises(ValidationError):
        store.add(name, data)
    assert list(db.collection(layout.datasets(PROJECT)).stream()) == []


def test_bad_trees_give_clear_errors_and_register_nothing(store, tmp_path, db):
    with pytest.raises(ValidationError, match="does not exist"):
        store.add("ds", tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValidationError, match="no files"):
        store.add("ds", tmp_path / "empty")
    loop = make_tree(tmp_path / "loop", {"f": b"1"})
    (loop / "again").symlink_to(loop)
    with pytest.raises(ValidationError, match="symlink loop"):
        store.add("ds", loop)
    dangling = make_tree(tmp_path / "dangling", {"f": b"1"})
    (dangling / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValidationError, match="dangling"):
        store.add("ds", dangling)
    assert list(db.collection(layout.datasets(PROJECT)).stream()) == []
    assert store.blobs.stats.uploads == 0


def test_failed_upload_leaves_no_version(stack, db, gcs, tmp_path):
    data = make_tree(tmp_path / "d", {"a": b"1"})
    broken = DatasetStore(
        db, BlobStore(gcs, "no-such-bucket", PROJECT), LocalCache(tmp_path / "c"), PROJECT
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever storage says, nothing is registered
        broken.add("ds", data)
    assert list(db.collection(layout.datasets(PROJECT)).stream()) == []
    assert list(db.collection(layout.dataset_versions(PROJECT, "ds")).stream()) == []


def test_unknown_dataset_and_version(store):
    with pytest.raises(NotFoundError):
        store.get("nope")
    with pytest.raises(NotFoundError):
        store.manifest("nope", "v1")


def test_checkout_refuses_to_write_through_a_symlink(store, tmp_path):
    data = make_tree(tmp_path / "d", {"sub/f": b"1"})
    store.add("ds", data)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValidationError, match="outside"):
        store.get("ds", to=out)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_file_rewritten_with_its_mtime_put_back_is_hashed_again(store, tmp_path, db):
    data = make_tree(tmp_path / "d", {"a.bin": b"original", "b.bin": b"stays"})
    store.add("first", data)  # memoises both digests
    path = data / "a.bin"
    st = path.stat()
    path.write_bytes(b"tampered")  # same size, same inode, mtime put back (cp -p, touch -d):
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells
    result = store.add("first", data)
    assert (result.version, result.created) == ("v2", True)
    assert result.bytes_hashed == len(b"tampered")  # b.bin still answered by the memo
    assert store.manifest("first", "v2")["a.bin"].sha256 == sha(b"tampered")
    assert store.blobs.exists(sha(b"tampered"))


def test_memo_trusts_only_files_older_than_the_racy_window(store, tmp_path):
    data = make_tree(tmp_path / "d", {"old.bin": b"old"})
    fresh = data / "fresh.bin"
    fresh.write_bytes(b"new")  # written just now: a same-tick rewrite would keep its stat
    store.add("racy", data)
    again = store.add("racy", data)
    assert again.created is False
    assert again.bytes_hashed == len(b"new")  # hashed again; old.bin came from the memo


def test_upload_records_relpath_and_content_type(store, tmp_path, gcs, stack):
    data = make_tree(tmp_path / "d", {"t/x.csv": b"a,b\n"})
    store.add("typed", data)
    blob = gcs.bucket(stack.bucket).get_blob(layout.blob_name("p1", sha(b"a,b\n")))
    assert blob.metadata == {"relpath": "t/x.csv"} and blob.content_type == "text/csv"


def test_files_index_left_stale_by_a_crash_is_repaired_by_the_next_add(
    store: DatasetStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_tree(tmp_path / "d", {"a.csv": b"1\n", "b.csv": b"2\n"})
    store.add("crashy", data)
    make_tree(data, {"b.csv": b"changed\n", "c.csv": b"3\n"})

    def crash(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies right after the version commit

    with monkeypatch.context() as patched:
        patched.setattr(FilesIndex, "sync", crash)
        with pytest.raises(KeyboardInterrupt):
            store.add("crashy", data)
    assert store.latest_version("crashy")["version"] == "v2"
    assert lineage.dataset_versions_with_file(store.db, PROJECT, sha(b"3\n")) == []  # stale

    again = store.add("crashy", data)  # nothing new to add, but files/ gets repaired
    assert (again.version, again.created) == ("v2", False)
    shown = {
        d["path"]: d["sha256"]
        for d in (
            s.to_dict()
            for s in store.db.collection(layout.dataset_files(PROJECT, "crashy")).stream()
        )
    }
    assert shown == {"a.csv": sha(b"1\n"), "b.csv": sha(b"changed\n"), "c.csv": sha(b"3\n")}
    assert store.info("crashy")["files_version"] == "v2"
    hits = lineage.dataset_versions_with_file(store.db, PROJECT, sha(b"3\n"))
    assert [(h["dataset"], h["path"]) for h in hits] == [("crashy", "c.csv")]
