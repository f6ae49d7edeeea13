"""Batched commits stay within Firestore's per-request limits."""

from __future__ import annotations

from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.cloud.limits import encoded_size
from aletheia.tracking.store import MAX_BATCH_BYTES, FirestoreStore, Write, split_batches

# About the size of a full metric chunk (1,000 points with steps and times).
BIG = {"values": [0.123456789012345] * 2000, "steps": list(range(2000))}


def _writes(n: int, data: dict) -> list[Write]:
    return [Write(layout.metadata_doc("store", f"doc-{i}"), data) for i in range(n)]


def test_batches_respect_both_the_write_count_and_the_byte_budget() -> None:
    small = split_batches(_writes(1234, {"x": 1}))
    assert [len(b) for b in small] == [500, 500, 234]

    big = split_batches(_writes(300, BIG))
    assert sum(len(b) for b in big) == 300
    for batch in big:
        assert sum(encoded_size(w.data) for w in batch) <= MAX_BATCH_BYTES
    assert [w.path for b in big for w in b] == [w.path for w in _writes(300, BIG)]


def test_an_oversized_write_travels_alone() -> None:
    huge = {"blob": "x" * (MAX_BATCH_BYTES + 1)}
    writes = [*_writes(2, {"x": 1}), Write("Projects/store/Metadata/huge", huge)]
    assert [len(b) for b in split_batches(writes)] == [2, 1]


def test_a_flush_larger_than_the_emulators_request_limit_is_stored(
    stack: config.Settings, db: firestore.Client
) -> None:
    writes = _writes(300, BIG)  # ~14 MB: over 4 MiB (emulator) and 10 MiB (Firestore)
    store = FirestoreStore(lambda: db)

    store.commit(writes)

    assert store.stats.failed_commits == 0
    assert store.stats.writes == 300
    assert store.stats.commits == len(split_batches(writes)) > 1
    stored = list(db.collection(layout.metadata("store")).stream())
    assert len(stored) == 300
    assert stored[0].to_dict()["values"] == BIG["values"]
