"""A run records the dataset version it used; both lineage queries answer."""

from __future__ import annotations

from test_datasets import make_tree, sha

from aletheia.data import datasets, lineage
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.tracking.metastore import Metastore


def test_run_records_version_and_both_queries_work(stack, db, gcs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = datasets.DatasetStore(
        db, BlobStore(gcs, stack.bucket, "lin"), LocalCache(tmp_path / "c"), "lin"
    )
    data = make_tree(tmp_path / "d", {"x.csv": b"1\n"})
    store.add("ds", data)
    make_tree(data, {"x.csv": b"2\n"})
    store.add("ds", data)

    ms = Metastore("lin", settings=stack)
    ms.set_downloader(tmp_path / "cache")
    exper = ms.exper("e1")
    with exper.start_run() as run:
        handle = run.get_dataset("ds", version="v1")
        run_id = run.id
    assert handle.version == "v1" and (handle.local_path / "x.csv").read_bytes() == b"1\n"
    with exper.start_run() as other:
        other.get_dataset("ds")  # latest

    assert lineage.datasets_used_by_run(db, "lin", "e1", run_id) == [
        {"name": "ds", "version": "v1"}
    ]
    users = lineage.runs_using_dataset(db, "lin", "ds", "v1")
    assert users == [f"Projects/lin/Experiments/e1/Runs/{run_id}"]
    assert len(lineage.runs_using_dataset(db, "lin", "ds", "v2")) == 1
    # another project using the same name@version is not mixed in
    ms2 = Metastore("other", settings=stack)
    ms2.set_downloader(tmp_path / "cache2")
    with ms2.exper("e1").start_run() as r:
        r.record_dataset("ds", "v1")
    assert lineage.runs_using_dataset(db, "lin", "ds", "v1") == users

    # which dataset versions hold some bytes (for the storage function)
    hits = lineage.dataset_versions_with_file(db, "lin", sha(b"2\n"))
    assert hits == [{"dataset": "ds", "path": "x.csv", "version": "v2", "size": 2}]
    assert lineage.dataset_versions_with_file(db, "lin", sha(b"1\n")) == []
