"""The metric path: 100,000 points, all stored, in few write RPCs and bounded documents."""

from __future__ import annotations

import threading
import time
from array import array

from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import Document

from aletheia.cloud import config, layout
from aletheia.tracking import journal
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.runmodel import CHUNK_POINTS

from helpers import GENEROUS_S, wait_for

PROJECT = "metrics"
POINTS = 100_000


def encoded_bytes(data: dict) -> int:
    """Size of a document as Firestore receives it (the encoded protobuf)."""
    return Document(fields=_helpers.encode_dict(data))._pb.ByteSize()


def test_100k_points_all_stored_in_few_rpcs(stack: config.Settings, db: firestore.Client) -> None:
    ms = Metastore(PROJECT, flush_interval_s=1.0)
    exper = ms.exper("many points", git_policy="off")
    with exper.start_run() as run:
        t0 = time.perf_counter()
        for i in range(POINTS):
            run.add_metric("train/loss", 1.0 / (i + 1))
        per_call_us = (time.perf_counter() - t0) / POINTS * 1e6
    print(f"add_metric: {per_call_us:.1f} us/call, commits: {ms.store.stats.commits}")

    stats = ms.store.stats
    assert stats.failed_commits == 0
    # Every write RPC of the run (chunks, summary, status, results) counted.
    assert stats.commits * 400 <= POINTS
    chunks = list(db.collection(layout.metrics(PROJECT, "many points", run.id)).stream())
    assert len(chunks) == POINTS // CHUNK_POINTS
    steps: list[int] = []
    values: list[float] = []
    for snap in sorted(chunks, key=lambda s: s.id):
        data = snap.to_dict()
        assert encoded_bytes(data) < 256 * 1024
        steps += data["steps"]
        values += data["values"]
    assert steps == list(range(POINTS))
    assert values == [1.0 / (i + 1) for i in range(POINTS)]
    summary = db.document(layout.run(PROJECT, "many points", run.id)).get().get("summary")
    assert summary["train/loss"]["count"] == POINTS
    assert summary["train/loss"]["min"] == 1.0 / POINTS

    # The journal holds every point and says Firestore acknowledged them all.
    state = journal.read(run.journal.path)
    assert state.point_count == POINTS
    assert state.unacked_points() == 0 and state.complete


def test_flush_is_exactly_once_per_chunk(stack: config.Settings, db: firestore.Client) -> None:
    """Flushing again (as a retry or a replay would) rewrites the same documents."""
    ms = Metastore(PROJECT, flush_interval_s=60)
    exper = ms.exper("flushes", git_policy="off")
    run = exper.start_run()
    for i in range(CHUNK_POINTS + 10):
        run.add_metric("acc", float(i), step=i * 2)
    assert run.flush()
    first = {
        s.id: s.to_dict()
        for s in db.collection(layout.metrics(PROJECT, "flushes", run.id)).stream()
    }
    # Only the tail chunk is still pending: a flush now rewrites just it, identically.
    commits = ms.store.stats.commits
    run.writer._series["acc"].dirty.add(1)
    assert run.flush()
    assert ms.store.stats.commits == commits + 1
    again = {
        s.id: s.to_dict()
        for s in db.collection(layout.metrics(PROJECT, "flushes", run.id)).stream()
    }
    assert again == first
    assert [d["count"] for _, d in sorted(first.items())] == [CHUNK_POINTS, 10]
    run.finish()


def test_points_reach_the_disk_without_waiting_for_a_firestore_flush(
    stack: config.Settings,
) -> None:
    """What a SIGKILL would leave: the journal on disk, read by another file handle."""
    ms = Metastore("durable", flush_interval_s=3600)  # no Firestore flush during the test
    run = ms.exper("e", git_policy="off").start_run()
    try:
        for i in range(10):
            run.add_metric("loss", float(i))
        on_disk = wait_for(
            lambda: journal.read(run.journal.path).point_count == 10 or None,
            timeout=10,
            what="10 points in the journal file",
        )
        assert on_disk
    finally:
        run.finish()


def test_add_metric_never_waits_for_the_journal_file(stack: config.Settings) -> None:
    """The caller's path is an append under a lock no I/O is done under: while the journal
    is busy being written (its lock held, as during a flush's write syscall on a slow disk),
    points are still logged; they reach the file once it is free. Before, every
    ``add_metric`` wrote its line under the journal's lock and waited here."""
    ms = Metastore("nowait", flush_interval_s=3600)
    run = ms.exper("e", git_policy="off").start_run()
    logged = threading.Event()

    def train() -> None:
        for i in range(1_000):
            run.add_metric("loss", float(i))
        logged.set()

    try:
        with run.journal._lock:  # the file is busy for as long as the test holds this
            threading.Thread(target=train, daemon=True).start()
            assert logged.wait(GENEROUS_S), "add_metric waited for the journal's file"
            assert run.writer.points_logged == 1_000
        on_disk = wait_for(
            lambda: journal.read(run.journal.path).point_count == 1_000 or None,
            timeout=GENEROUS_S,
            what="1,000 points in the journal file",
        )
        assert on_disk
    finally:
        run.finish()


def test_unflushed_points_are_not_tracked_by_the_garbage_collector(tmp_path) -> None:
    """A run holds every point Firestore has not taken yet (tens of thousands when it is
    behind); as objects the collector tracks, each full collection of the training process
    walked them all (0.2 s stalls of ``add_metric``). Counted: none stays tracked."""
    import gc

    from aletheia.tracking.journal import JournalWriter
    from aletheia.tracking.metrics import MetricWriter
    from aletheia.tracking.runmodel import RunRef
    from aletheia.tracking.store import FirestoreStore

    writer = MetricWriter(
        RunRef("p", "e", "1"), FirestoreStore(lambda: None), JournalWriter(tmp_path / "j.jsonl")
    )
    for i in range(2_500):
        writer.add("loss", float(i), i)
    gc.collect()
    (columns,) = writer._pending.values()  # one buffer per key: 3 arrays of C numbers
    assert len(columns) == 2_500
    writer._drain()  # into the series, as a flush does before encoding
    gc.collect()
    (series,) = writer._series.values()
    assert [len(c) for c in series.chunks.values()] == [1_000, 1_000, 500]
    # Three arrays per chunk, whatever its points: nothing per point for the collector.
    held = [a for c in series.chunks.values() for a in (c.steps, c.values, c.times)]
    assert len(held) == 9 and all(isinstance(a, array) for a in held)
    writer.journal.close()


def test_logging_100k_points_sets_off_no_garbage_collection(tmp_path) -> None:
    """``add_metric`` allocates nothing the collector tracks. A tuple per point set off a
    young collection every 700 points and, every 100 of those, a check for a full one: the
    collection that walks every object of the training process ran on the training thread,
    or held the GIL in another thread while the training thread waited (the ``add_metric``
    stalls of tens of ms). Nor does holding them in the writer's chunks until Firestore has
    them. Counted: 100,000 points, no collection."""
    import gc

    from aletheia.tracking.journal import JournalWriter
    from aletheia.tracking.metrics import MetricWriter
    from aletheia.tracking.runmodel import RunRef
    from aletheia.tracking.store import FirestoreStore

    writer = MetricWriter(
        RunRef("p", "e", "1"), FirestoreStore(lambda: None), JournalWriter(tmp_path / "j.jsonl")
    )
    writer.add("loss", 0.5, 0)  # the key's first point makes its buffer
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        for i in range(1, 100_000):
            writer.add("loss", 1.0 / i, i)
            if not i % 10_000:
                writer._drain()  # into the chunks, as the writer's flushes do
        writer._drain()
    finally:
        gc.callbacks.remove(count)
    assert collections == []
    assert writer.points_logged == 100_000
    (series,) = writer._series.values()
    assert series.received == 100_000 and len(series.chunks) == 100
    last = series.chunks[99]
    assert (last.steps[-1], last.values[-1]) == (99_999, 1.0 / 99_999)
    writer.journal.close()


def test_a_flush_builds_its_chunk_documents_without_an_object_per_point(tmp_path) -> None:
    """Encoding a flush made a ``Point`` (an object the collector tracks) per unsent point,
    100,000 per 100,000-point flush in the writer thread, each a young object that can be
    promoted and bring on the full collection that stalls ``add_metric``. Counted: none now,
    and the documents are the same."""
    import sys

    from aletheia.tracking.journal import JournalWriter
    from aletheia.tracking.metrics import MetricWriter
    from aletheia.tracking.runmodel import Point, RunRef, chunk_doc
    from aletheia.tracking.store import FirestoreStore

    writer = MetricWriter(
        RunRef("p", "e", "1"), FirestoreStore(lambda: None), JournalWriter(tmp_path / "j.jsonl")
    )
    for i in range(2_500):
        writer.add("loss", 1.0 / (i + 1), 2 * i, ts=1.7e9 + i / 3)
    writer._drain()
    points: list[object] = []

    def watch(frame, event: str, arg: object) -> None:
        if event == "call" and isinstance(frame.f_locals.get("self"), Point):
            points.append(frame.f_locals["self"])

    sys.setprofile(watch)
    try:
        writes = writer._writes()
    finally:
        sys.setprofile(None)

    assert points == []
    chunks = [w.data for w in writes if "/Metrics/" in w.path]
    expected = [
        chunk_doc(
            "loss",
            n,
            [
                Point(i, 2 * i, 1.0 / (i + 1), 1.7e9 + i / 3)
                for i in range(n * 1_000, min(2_500, (n + 1) * 1_000))
            ],
        )
        for n in range(3)
    ]
    assert chunks == expected
    writer.journal.close()


def test_full_chunks_are_committed_while_the_run_goes_on(
    stack: config.Settings, db: firestore.Client
) -> None:
    """Every ``EARLY_CHUNKS`` chunks that fill wake the writer, which commits them (and only
    them: no partial chunk, no run document) while the loop goes on, so the run's end has
    little left to send. Before, everything logged within a flush interval waited for it:
    a fast loop's 100 chunks all went in the final flush (2.7 s after a 1 s loop)."""
    from aletheia.tracking.earlyflush import EARLY_CHUNKS

    ms = Metastore(PROJECT, flush_interval_s=3600)  # no flush by the interval in this test
    run = ms.exper("early", git_policy="off").start_run()
    try:
        points = (2 * EARLY_CHUNKS + 0.5) * CHUNK_POINTS
        for i in range(int(points)):
            run.add_metric("loss", 1.0 / (i + 1))
        full = 2 * EARLY_CHUNKS
        wait_for(
            lambda: ms.store.stats.writes >= full,
            timeout=GENEROUS_S,
            what=f"{full} full chunks committed before the run's end",
        )
        assert ms.store.stats.writes == full  # the full chunks alone
        stored = db.collection(layout.metrics(PROJECT, "early", run.id)).stream()
        assert sorted(int(s.get("chunk")) for s in stored) == list(range(full))
        doc = db.document(layout.run(PROJECT, "early", run.id)).get().to_dict() or {}
        assert "loss" not in doc["summary"]  # the run document keeps to the flush interval
        state = journal.read(run.journal.path)  # acknowledged up to the partial chunk
        assert state.acked_metrics == {"loss": full * CHUNK_POINTS}
        before_end = ms.store.stats.writes
    finally:
        run.finish()
    # The end sends the partial chunk and the run's documents, not the full chunks again.
    assert ms.store.stats.writes - before_end <= 3
    assert journal.read(run.journal.path).complete
