"""What a cold ``datasets add`` of many small files costs, counted: requests and documents."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


class _Bars:
    """A progress reporter that keeps each bar's total and how far it got."""

    def __init__(self) -> None:
        self.bars: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        bar = self.bars.setdefault(description, [total, 0])

        def advance(n: int) -> None:
            with self.lock:
                bar[1] += n

        yield advance


def test_the_add_bar_counts_the_datas_bytes_once(stack, db, gcs, cache_dir, tmp_path):
    # The bar showed every byte twice (read to hash, then sent): "200 MB" and twice the
    # speed for 100 MB of data.
    bars = _Bars()
    store = store_for(db, gcs, stack, cache_dir, workdir=tmp_path, reporter=bars)
    files = {f"f{i}.bin": os.urandom(1_000 + 37 * i) for i in range(30)}
    files["copy.bin"] = files["f3.bin"]  # the same bytes twice: sent once, counted as data
    data = make_tree(tmp_path / "d", files)
    size = sum(len(b) for b in files.values())

    store.add("bars", data)
    assert bars.bars["adding"] == [size, size]

    make_tree(data, {"new.bin": b"x" * 5_001})  # the memo answers for the rest
    bars.bars.clear()
    store.add("bars", data)
    assert bars.bars["adding"] == [5_001, 5_001]
