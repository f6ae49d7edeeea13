"""Batched commits stay within Firestore's per-request limits."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import Any

from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.cloud.limits import encoded_size
from aletheia.tracking.store import (
    MAX_BATCH_BYTES,
    PARALLEL_COMMITS,
    FirestoreStore,
    Write,
    split_batches,
    write_cost,
)

from helpers import GENEROUS_S

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


def test_metric_chunks_are_sized_without_encoding_them_as_json() -> None:
    """Sizing a flush's chunks into batches encodes none of them: ``json.dumps`` of a chunk
    is one C call of milliseconds holding the GIL, which the training thread sat through
    whole at every flush (an ``add_metric`` stall per chunk). The count stays an upper bound
    of the JSON size, so batches still fit the request limits."""
    from aletheia.tracking.runmodel import Point, chunk_doc

    extremes = [1e-308 * -2.2250738585072014, float("nan"), float("-inf"), -(2**63) / 3]
    chunks = [
        Write(
            layout.metadata_doc("store", f"loss~{n}"),
            chunk_doc(
                'lé"ss',
                n,
                [Point(i, -(2**63) + i, extremes[i % 4], 1.7e9 + i / 7) for i in range(1_000)],
            ),
        )
        for n in range(20)
    ]
    encoded: list[Any] = []  # what json.dumps was asked to encode

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is json.dumps.__code__:
            encoded.append(frame.f_locals["obj"])

    sys.setprofile(watch)
    try:
        batches = split_batches(chunks, parts=PARALLEL_COMMITS)
    finally:
        sys.setprofile(None)

    assert encoded == []
    assert [w.path for b in batches for w in b] == [w.path for w in chunks]
    for w in chunks[:2]:
        assert write_cost(w.data) >= encoded_size(w.data)


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


def test_chunk_writes_are_built_byte_for_byte_as_the_library_builds_them() -> None:
    """The fast path (raw protobuf) sends exactly what ``batch.set`` would have sent."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import write

    from aletheia.cloud import pbwrite
    from aletheia.tracking.runmodel import Point, chunk_doc

    points = [Point(i, 3 * i - 7, 1.0 / (i + 1), 1.7e9 + i / 3) for i in range(1_000)]
    mixed = {
        "none": None,
        "flag": True,
        "n": -(2**63),
        "text": "é",
        "raw": b"\x00\xff",
        "map": {"list": [1, 2.5, "s", None, dt.datetime(2020, 1, 1), {"in": [dt.datetime.now()]}]},
        "empty": [],
        "empty_map": {},
        "nan": float("nan"),
        "floats": [0.5, float("nan"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308],
    }
    path = "projects/p/databases/(default)/documents/Projects/x/Metrics/loss~0"
    for data in (chunk_doc("loss", 0, points), mixed):
        assert pbwrite.encodable(data)
        ours = write.Write.pb(pbwrite.set_write(path, data)).SerializeToString(deterministic=True)
        theirs = write.Write.pb(_helpers.pbs_for_set_no_merge(path, data)[0])
        assert ours == theirs.SerializeToString(deterministic=True)
    assert not pbwrite.encodable({"at": firestore.SERVER_TIMESTAMP})  # the library's path
    assert not pbwrite.encodable({"nested": [[1]]})


def test_a_flush_of_several_batches_commits_them_side_by_side(
    stack: config.Settings, db: firestore.Client
) -> None:
    """Two of the batches must be in flight at once to pass the barrier (one at a time, as
    before, the first waits alone and the barrier breaks); the batch holding the last write
    (a flush puts the run document last) is sent after every other one has returned."""
    writes = _writes(1_200, {"x": 1})
    commit = db._firestore_api._transport._wrapped_methods[db._firestore_api._transport.commit]
    target = commit._target
    barrier = threading.Barrier(2, timeout=GENEROUS_S)
    lock = threading.Lock()
    in_flight: list[int] = [0]
    seen: list[tuple[int, bool]] = []  # (commits in flight when one started, holds the last)

    def attempt(request: Any, *args: Any, **kwargs: Any) -> Any:
        last = any(w.update.name.endswith(writes[-1].path) for w in request.writes)
        with lock:
            seen.append((in_flight[0], last))
            in_flight[0] += 1
        try:
            if len(seen) <= 2:
                barrier.wait()
            return target(request, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    commit._target = attempt
    try:
        store = FirestoreStore(lambda: db)
        store.commit(writes)
    finally:
        commit._target = target

    assert store.stats.commits == len(seen) == PARALLEL_COMMITS
    assert store.stats.writes == 1_200
    assert [last for _, last in seen] == [False] * (PARALLEL_COMMITS - 1) + [True]
    assert seen[-1][0] == 0  # nothing else in flight when the last batch went
    assert len(list(db.collection(layout.metadata("store")).stream())) == 1_200


def test_raw_merge_writes_are_the_librarys() -> None:
    """A dataset add writes a registry entry per new blob with ``set(merge=True)``; building
    those writes as raw protobuf must give the library's exact message (mask, transforms)."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import write

    from aletheia.cloud import pbwrite

    path = "projects/p/databases/(default)/documents/Projects/p/Blobs/abc"
    cases = [
        {"sha256": "ab" * 32, "updated_at": firestore.SERVER_TIMESTAMP, "datasets": {"d": True}},
        {"sha256": "x", "datasets": {"my-data.v2": True, "b c": True}, "holders": {"run": True}},
        {"z": firestore.SERVER_TIMESTAMP, "a": {"x": {"q": [1, 2.5, "s"]}, "b c": None}, "m": 1},
        {"kind": "run", "at": dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), "n": b"\x00"},
    ]
    for data in cases:
        assert pbwrite.merge_encodable(data), data
        (theirs,) = _helpers.pbs_for_set_with_merge(path, data, merge=True)
        ours = pbwrite.merge_write(path, data)
        assert write.Write.pb(ours).SerializeToString(deterministic=True) == write.Write.pb(
            theirs
        ).SerializeToString(deterministic=True), data
    # What the library decides by its own rules stays with it.
    assert not pbwrite.merge_encodable({"at": firestore.SERVER_TIMESTAMP})
    assert not pbwrite.merge_encodable({"a": {"at": firestore.SERVER_TIMESTAMP}, "b": 1})
    assert not pbwrite.merge_encodable({"a": {}, "b": 1})
