"""Faults: Firestore comes back without what it had acknowledged; the writer notices and replays.

A local Firestore emulator killed mid-run and started again (from an older
export, or empty) has forgotten writes it acknowledged. The run's writer
checks what Firestore holds after every reconnect and writes the rest again
from its journal.
"""

from __future__ import annotations

from pathlib import Path

from test_faults import stored_points

from aletheia.cloud import config, layout
from aletheia.devstack import local
from aletheia.tracking import journal, sync
from aletheia.tracking.metastore import Metastore

from helpers import wait_for

PROJECT = "faults"


def test_firestore_restarted_without_acknowledged_data_gets_it_back(tmp_path: Path) -> None:
    # A private Firestore emulator: the session stack is never touched.
    cfg = local.StackConfig(stack_dir=tmp_path / "stack", ports=local.free_ports())
    part = local.start_part(cfg, "firestore")
    try:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        ms = Metastore(PROJECT, settings=private, flush_interval_s=0.2)
        exper = ms.exper("restart", git_policy="off")
        with exper.start_run(params={"lr": 0.1}) as run:
            run.set_model("mlp")
            for i in range(25_000):
                run.add_metric("loss", float(i))
            assert run.flush()  # acknowledged: 25 chunks and the run's fields are stored
            ms.store.commit_timeout_s = 1.0  # the outage is noticed quickly

            local.stop_part(part)  # killed: everything it held is gone
            for i in range(25_000, 26_000):
                run.add_metric("loss", float(i))
            wait_for(lambda: run.writer.offline, what="the writer to notice")
            part = local.start_part(cfg, "firestore")  # back, empty (no export was made)
            wait_for(lambda: run.writer.caught_up, what="the writer to catch up")
            for i in range(26_000, 27_000):
                run.add_metric("loss", float(i))
        db = ms.db
        assert stored_points(db, "restart", run.id, "loss") == [float(i) for i in range(27_000)]
        doc = db.document(layout.run(PROJECT, "restart", run.id)).get().to_dict() or {}
        assert doc["status"] == "finished"
        assert doc["params"] == {"lr": 0.1} and doc["model"]
        assert doc["summary"]["loss"]["count"] == 27_000
        assert journal.read(run.journal.path).complete
    finally:
        local.stop_part(part)


def test_sync_verify_rewrites_a_synced_run_that_firestore_lost(tmp_path: Path) -> None:
    cfg = local.StackConfig(stack_dir=tmp_path / "stack", ports=local.free_ports())
    part = local.start_part(cfg, "firestore")
    try:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        ms = Metastore(PROJECT, settings=private)
        with ms.exper("lost", git_policy="off").start_run(params={"lr": 0.1}) as run:
            for i in range(3_000):
                run.add_metric("loss", float(i))
        assert journal.read(run.journal.path).synced

        local.stop_part(part)  # restarted empty: the settled run is gone
        part = local.start_part(cfg, "firestore")
        assert [r.action for r in sync.sync_all(private)] == ["skipped: already synced"]

        (result,) = sync.sync_all(private, verify=True)

        assert result.action == "synced"
        db = ms.db
        assert stored_points(db, "lost", run.id, "loss") == [float(i) for i in range(3_000)]
        doc = db.document(layout.run(PROJECT, "lost", run.id)).get().to_dict() or {}
        assert doc["params"] == {"lr": 0.1} and doc["status"] == "finished"
        (again,) = sync.sync_all(private, verify=True)
        assert again.action == "verified"
    finally:
        local.stop_part(part)
