"""What a cold ``datasets add`` of many small files costs, counted: requests and documents."""

from __future__ import annotations

from test_datasets import make_tree, store_for


def test_a_cold_add_writes_two_documents_per_file_and_downloads_nothing(
    stack, db, gcs, cache_dir, tmp_path
):
    """Per new file: one upload (no HEAD for small files), one blob registry entry and one
    ``files/`` entry, in batches; the manifest it just wrote is not downloaded back to
    profile the version."""
    store = store_for(db, gcs, stack, cache_dir, workdir=tmp_path)
    n = 450
    data = make_tree(tmp_path / "d", {f"p{i % 9}/f{i}.bin": b"%05d" % i for i in range(n)})
    api = db._firestore_api
    writes: list[int] = []
    commit = api.commit

    def counted(*args, **kwargs):
        request = kwargs.get("request", args[0] if args else None)
        writes.append(len(request["writes"]))
        return commit(*args, **kwargs)

    api.commit = counted
    try:
        added = store.add("small", data)
    finally:
        del api.commit
    assert added.created and added.files_uploaded == n
    stats = store.blobs.stats.snapshot()
    assert stats["uploads"] == n + 1  # the files and the manifest
    assert stats["head_requests"] == 0 and stats["downloads"] == 0
    # The project's document (its first add), n registry entries + the manifest's, n files/
    # entries, the version and dataset documents, the files/ mark: up to 400 per batch.
    assert sum(writes) == 2 * n + 5, writes
    batches = -(-(n + 1) // 400) + -(-n // 400)  # registry, files/
    assert len(writes) == batches + 3, writes  # and the project, the commit, the mark
