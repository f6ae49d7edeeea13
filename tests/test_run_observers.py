"""One run write-store interface, two Firestore backends; a run's lifecycle as observable events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.tracking import journal, ownership
from aletheia.tracking.direct import DirectWrites, RunExistsError
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.metrics import MetricWriter
from aletheia.tracking.runmodel import FINISHED, RunRef, chunk_points, now
from aletheia.tracking.store import FirestoreStore
from aletheia.tracking.writing import MetricPoint, RunEvent, RunObserver, RunWriteStore

from helpers import wait_for

PROJECT = "observers"


class Recorder(RunObserver):
    """A user's observer: remembers every event it is told of."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def on_event(self, event: RunEvent) -> None:
        self.events.append(event)
        super().on_event(event)  # the per-kind methods must exist for every kind

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def test_a_custom_observer_sees_a_runs_lifecycle(stack: config.Settings) -> None:
    seen = Recorder()
    ms = Metastore(PROJECT, flush_interval_s=0.05, heartbeat_s=0.2, observers=[seen])
    exper = ms.exper("watched", git_policy="off")
    with exper.start_run(params={"lr": 0.1}) as run:
        run.add_metric("loss", 1.0)
        wait_for(lambda: "heartbeat" in seen.kinds(), what="a heartbeat event")
    kinds = seen.kinds()
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert set(kinds[1:-1]) == {"heartbeat"}
    started, completed = seen.events[0], seen.events[-1]
    assert started.ref == run.ref and started.fields["params"] == {"lr": 0.1}
    assert started.info["created"] is True
    assert completed.status == FINISHED and completed.error is None
    assert completed.at == run.fields["ended_at"]

    with pytest.raises(RuntimeError), exper.start_run() as failing:
        raise RuntimeError("diverged")
    assert seen.events[-1].kind == "failed" and seen.events[-1].ref == failing.ref
    assert "diverged" in (seen.events[-1].error or "")

    with pytest.raises(KeyboardInterrupt), exper.start_run():
        raise KeyboardInterrupt
    assert seen.events[-1].kind == "interrupted" and seen.events[-1].status == "interrupted"


class Broken(RunObserver):
    def started_event(self, event: RunEvent) -> None:
        raise OSError("the observer's disk is full")

    completed_event = started_event


def test_a_failing_observer_never_stops_the_run(
    stack: config.Settings, db: firestore.Client, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()
    ms = Metastore(PROJECT, flush_interval_s=0.05, observers=[Broken(), seen])
    with ms.exper("broken observer", git_policy="off").start_run() as run:
        run.add_metric("acc", 0.5)
    assert seen.kinds() == ["started", "completed"]  # the observer after it was told
    doc = db.document(run.ref.path).get().to_dict() or {}
    assert doc["status"] == FINISHED and doc["summary"]["acc"]["count"] == 1
    assert sum("the observer's disk is full" in r.getMessage() for r in caplog.records) == 2


def test_the_journal_observes_start_and_end(stack: config.Settings) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.05)
    with pytest.raises(ValueError), ms.exper("journaled", git_policy="off").start_run() as run:
        raise ValueError("bad batch")
    state = journal.read(run.journal.path)
    assert (state.project, state.experiment, state.run) == (PROJECT, "journaled", run.id)
    assert state.created and state.ended == "failed"


def _buffered(ref: RunRef, tmp_path: Path, stack: config.Settings) -> MetricWriter:
    """The buffered writer of a run started offline: its first flush claims the id."""
    from aletheia.cloud import clients

    store = FirestoreStore(lambda: clients.firestore_client(stack))
    path = journal.journal_path(tmp_path, ref.project, ref.experiment, ref.run)
    writer = MetricWriter(
        ref, store, journal.JournalWriter(path), owner=ownership.new_token(), claimed=False
    )
    writer.start()
    return writer


@pytest.mark.parametrize("backend", ["buffered", "direct"])
def test_both_backends_honour_the_store_interface(
    backend: str, stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    """The same calls give the same run, whichever backend writes it."""
    ref = RunRef(PROJECT, "contract", f"run-{backend}")
    store: RunWriteStore = (
        _buffered(ref, tmp_path, stack) if backend == "buffered" else (DirectWrites(db))
    )
    start = {"project": PROJECT, "experiment": "contract", "run": ref.run, "status": "running"}
    if isinstance(store, DirectWrites):  # it writes runs no process buffers: a resumed one
        store.create_run(ref, {**start, "status": FINISHED})
        assert store.resume(ref, heartbeat_s=30.0)
    else:
        store.create_run(ref, start)
    store.log_batch(
        ref,
        [MetricPoint("loss", 0.5, 0, 1.0), MetricPoint("loss", 0.25, 1, 2.0)],
        params={"lr": "0.1"},
        tags={"mlflow.runName": "named"},
    )
    store.set_fields(ref, {"note": "n"})
    store.log_batch(ref, [MetricPoint("loss", 0.125)])
    ended = now()
    assert store.end_run(ref, FINISHED, ended_at=ended) is True

    doc = db.document(ref.path).get().to_dict() or {}
    assert doc["params"] == {"lr": "0.1"} and doc["note"] == "n"
    assert doc["mlflow_tags"] == {"mlflow.runName": "named"} and doc["run_name"] == "named"
    assert doc["status"] == FINISHED and doc["ended_at"] == ended
    assert doc["summary"]["loss"]["count"] == 3 and doc["summary"]["loss"]["last"] == 0.125
    chunk = db.document(ref.chunk_path("loss", 0)).get().to_dict()
    points = chunk_points(chunk)
    assert [(p.index, p.step, p.value) for p in points] == [
        (0, 0, 0.5),
        (1, 1, 0.25),
        (2, 2, 0.125),
    ]
    assert points[0].ts == 1.0 and points[2].ts > dt.datetime(2026, 1, 1).timestamp()


def test_direct_create_is_the_lock_on_the_id(stack: config.Settings, db: firestore.Client) -> None:
    writes = DirectWrites(db)
    ref = RunRef(PROJECT, "lock", "r1")
    writes.create_run(ref, {"run": "r1", "who": "first"})
    with pytest.raises(RunExistsError, match="already exists"):
        writes.create_run(ref, {"run": "r1", "who": "second"})
    assert (db.document(layout.run(PROJECT, "lock", "r1")).get().to_dict() or {})["who"] == "first"


def test_integrations_and_the_cli_write_runs_only_through_the_interface() -> None:
    """No caller above the tracker reaches into a run's writer or its unchecked ``_set``."""
    import ast

    package = Path(__file__).resolve().parents[1] / "aletheia"
    reaching = [
        f"{path.relative_to(package)}:{node.lineno} .{node.attr}"
        for area in ("integrations", "cli")
        for path in sorted((package / area).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in {"writer", "_set", "journal"}
    ]
    assert reaching == []
