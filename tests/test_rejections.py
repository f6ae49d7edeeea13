"""Permanent refusals are not outages: checked before I/O where possible, else reported once.

Firestore refuses a document over 1 MiB, an id or field name over 1,500
bytes, an integer outside int64; real Firestore also refuses more than
20,000 fields in a document (the emulator does not check that one, so the
tests count fields themselves). A refused write fails the same way on every
retry: the run must still be recorded, the cause reported once, nothing
re-sent in a loop, and every point kept in the journal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout, limits, transient
from aletheia.errors import ValidationError
from aletheia.tracking import journal, sync
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.store import FirestoreStore, Write, WritesRejectedError

from helpers import GENEROUS_S

PROJECT = "rejections"
KB = 1000


def run_doc(db: firestore.Client, exper: str, run: str) -> dict[str, Any]:
    return db.document(layout.run(PROJECT, exper, run)).get().to_dict() or {}


def count_fields(doc: Mapping[str, Any]) -> int:
    """Fields as Firestore counts them: every key of every map, nested ones included."""
    return sum(1 + (count_fields(v) if isinstance(v, Mapping) else 0) for v in doc.values())


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_run_document_over_1_mib_is_refused_before_any_write(
    stack: config.Settings, db: firestore.Client
) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    run = ms.exper("big fields", git_policy="off").start_run(params={"a": "p" * 500 * KB})
    with pytest.raises(ValidationError, match="run document") as refused:
        run.set_hyper_params({"b": "h" * 500 * KB})  # each under its own limit, not both
    assert "artifact" in str(refused.value)  # says what to do
    run.set_model("mlp", notes="m" * 100 * KB)
    with pytest.raises(ValidationError, match="64-bit"):
        run.set_params({"seed": 2**64})
    with pytest.raises(ValidationError, match="64-bit"):
        run.add_metric("loss", 1.0, step=2**63)
    # Real Firestore refuses over 20,000 fields or 40,000 index entries (the emulator does
    # not check): a grid of 13,000 settings, or a list of 60,000 weights.
    other = ms.exper("big fields", git_policy="off").start_run()
    with pytest.raises(ValidationError, match=r"13,0\d\d fields"):
        other.set_hyper_params({"grid": {f"g{i}": i for i in range(13_000)}})
    with pytest.raises(ValidationError, match=r"60,\d{3} index entries"):
        other.set_params({"class_weights": [0.5] * 60_000})
    assert other.finish()
    with pytest.raises(ValidationError, match="document id"):
        run.add_metric("é" * 250, 1.0)  # 1,507 bytes percent-encoded (at most 1,500)
    run.add_metric("loss", 1.0)
    assert run.finish()
    doc = run_doc(db, "big fields", run.id)
    assert doc["status"] == "finished"
    assert doc["params"] == {"a": "p" * 500 * KB} and doc["hyper_params"] == {}
    assert doc["model"] == {"name": "mlp", "notes": "m" * 100 * KB}
    assert doc["summary"]["loss"]["count"] == 1
    assert ms.store.stats.failed_commits == 0
    assert journal.read(run.journal.path).complete


def test_too_many_metric_keys_cap_the_summary_and_the_run_is_still_recorded(
    stack: config.Settings, db: firestore.Client, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [f"layer{i:04d}/" + "g" * 230 for i in range(4000)]  # a 1.3 MB summary, 28k fields
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    with ms.exper("many keys", git_policy="off").start_run() as run:
        for step in range(2):
            run.log_metrics({k: float(step) for k in keys}, step=step)
    doc = run_doc(db, "many keys", run.id)
    assert doc["status"] == "finished"
    assert count_fields(doc) <= limits.MAX_DOCUMENT_FIELDS
    assert limits.encoded_size(doc) <= limits.MAX_DOCUMENT_BYTES
    kept = list(doc["summary"])
    assert 0 < len(kept) < len(keys) and set(kept) <= set(keys)
    assert doc["summary"][keys[0]] == {
        "count": 2, "last": 1.0, "last_step": 1, "min": 0.0, "max": 1.0, "nonfinite": 0
    }  # fmt: skip
    assert doc["summary_capped"]["kept"] == len(kept)
    # Every series is stored in full, summarised or not.
    chunks = list(db.collection(layout.metrics(PROJECT, "many keys", run.id)).stream())
    assert len(chunks) == len(keys) and all(c.get("values") == [0.0, 1.0] for c in chunks)
    result = db.document(layout.result(PROJECT, "many keys", run.id)).get().to_dict() or {}
    assert result["status"] == "finished" and len(result["metrics"]) == len(kept)
    assert ms.store.stats.failed_commits == 0
    assert journal.read(run.journal.path).complete
    capped = [m for m in warnings_of(caplog) if "summary" in m]
    assert len(capped) == 1 and str(len(kept)) in capped[0]
    # Replaying the journal summarises the same names.
    assert sync.sync_journal(run.journal.path, ms.store, force=True).action == "synced"
    assert list(run_doc(db, "many keys", run.id)["summary"]) == kept


def test_a_refused_write_is_reported_once_not_resent_and_kept_in_the_journal(
    stack: config.Settings, db: firestore.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Integrations (the MLflow store) hand points and fields to the writer directly; should
    # one ever carry something Firestore refuses, the writer must not take it for an outage.
    ms = Metastore(PROJECT, flush_interval_s=3600)  # flushes only when told
    run = ms.exper("refused", git_policy="off").start_run()
    # The environment the run captures in the background lands with a later flush: let
    # it land first, so the flushes below have nothing new to send.
    assert run.capture is not None and run.capture.join(GENEROUS_S)
    run.add_metric("ok", 1.0)
    bad = "é" * 250  # percent-encoded, a document id of 1,507 bytes (at most 1,500)
    run.writer.add(bad, 1.0, 0)
    run.writer.set_fields(run.ref, {"notes": "n" * 1_100_000})  # over 1 MiB
    assert not run.flush()
    stored = db.document(layout.metric_chunk(PROJECT, "refused", run.id, "ok", 0)).get()
    assert stored.get("values") == [1.0]  # what was acceptable went through
    found = warnings_of(caplog)
    assert not any("unreachable" in m for m in found), found
    refused = [m for m in found if m.startswith("aletheia: Firestore refused")]
    assert len(refused) == 2, found
    assert any(layout.metric_chunk(PROJECT, "refused", run.id, bad, 0) in m for m in refused)
    assert any("notes" in m and "InvalidArgument" in m for m in refused)

    before = ms.store.stats.commits
    for _ in range(3):
        run.flush()
    assert ms.store.stats.commits == before  # nothing re-sent
    run.add_metric("ok", 2.0)
    assert run.flush()  # new data flows again
    assert not run.finish()  # Firestore does not hold everything ...
    doc = run_doc(db, "refused", run.id)
    assert doc["status"] == "finished" and "notes" not in doc
    assert doc["summary"]["ok"]["count"] == 2 and doc["summary"][bad]["count"] == 1
    later = warnings_of(caplog)
    assert [m for m in later if m.startswith("aletheia: Firestore refused")] == refused
    state = journal.read(run.journal.path)  # ... and the journal keeps all of it
    assert not state.complete and not state.synced
    assert [p.value for p in state.points[bad]] == [1.0] and state.acked_metrics[bad] == 0
    assert any("notes" in s for s in state.sets[state.acked_sets :])
    # `aletheia sync` sends what it can and leaves the journal for a later try.
    replay = sync.sync_journal(run.journal.path, ms.store)
    assert replay.action.startswith("refused: ") and not journal.read(run.journal.path).synced


def test_store_commits_what_it_can_and_names_what_was_refused(
    stack: config.Settings, db: firestore.Client
) -> None:
    store = FirestoreStore(lambda: db)
    ok = [Write(layout.metadata_doc(PROJECT, f"ok-{i}"), {"i": i}) for i in range(8)]
    big = Write(layout.metadata_doc(PROJECT, "big"), {"x": "b" * 600_000, "y": "c" * 600_000})
    with pytest.raises(WritesRejectedError) as refused:
        store.commit([*ok[:5], big, *ok[5:]], retry_for_s=5)
    assert [r.write.path for r in refused.value.rejections] == [big.path]
    assert "maximum entity size" in str(refused.value)
    assert all(db.document(w.path).get().exists for w in ok)
    assert not db.document(big.path).get().exists
    assert store.stats.rejected == 1
    assert store.stats.commits <= 8  # isolated by halving: no retries of a refusal


def test_a_request_over_the_servers_size_limit_is_not_retried(
    stack: config.Settings, db: firestore.Client
) -> None:
    # The emulator answers RESOURCE_EXHAUSTED ("exceeds maximum size"): a refusal, not load.
    store = FirestoreStore(lambda: db)
    huge = Write(layout.metadata_doc(PROJECT, "huge"), {f"f{i}": "h" * 900_000 for i in range(5)})
    with pytest.raises(WritesRejectedError):
        store.commit([huge], retry_for_s=10)
    assert store.stats.commits == 1


def test_one_list_of_transient_errors() -> None:
    from google.api_core import exceptions as gexc

    from aletheia.data import blobstore
    from aletheia.function import fileevents
    from aletheia.tracking import store

    assert transient.is_transient(gexc.ServiceUnavailable("down"))
    assert transient.is_transient(gexc.RetryError("gave up", gexc.DeadlineExceeded("slow")))
    assert not transient.is_transient(gexc.RetryError("gave up", gexc.InvalidArgument("no")))
    assert not transient.is_transient(gexc.InvalidArgument("maximum entity size"))
    assert not transient.is_transient(gexc.PermissionDenied("rules"))
    assert not transient.is_transient(ValueError("Value out of range"))
    assert store.is_transient is transient.is_transient
    assert fileevents._TRANSIENT is transient.TRANSIENT
    assert blobstore.is_transient is transient.is_transient
