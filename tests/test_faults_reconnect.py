"""Faults: Firestore comes back without what it had acknowledged; the writer notices and replays.

A local Firestore emulator killed mid-run and started again (from an older
export, or empty) has forgotten writes it acknowledged. The run's writer
checks what Firestore holds after every reconnect and writes the rest again
from its journal.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from google.cloud import firestore
from test_faults import stored_points

from aletheia.cloud import config, layout
from aletheia.devstack import autoexport, local
from aletheia.tracking import journal, sync
from aletheia.tracking.metastore import Metastore

from helpers import PrivateFirestore, count_rpcs, wait_for

PROJECT = "faults"


def test_firestore_restarted_without_acknowledged_data_gets_it_back(
    tmp_path: Path, private_firestore: PrivateFirestore
) -> None:
    # A private Firestore emulator: the session stack is never touched.
    with private_firestore.fresh() as part:
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
            part = private_firestore.restart()  # back, empty (no export was made)
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


def test_sync_verify_rewrites_a_synced_run_that_firestore_lost(
    tmp_path: Path, private_firestore: PrivateFirestore
) -> None:
    with private_firestore.fresh() as part:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        ms = Metastore(PROJECT, settings=private)
        with ms.exper("lost", git_policy="off").start_run(params={"lr": 0.1}) as run:
            for i in range(3_000):
                run.add_metric("loss", float(i))
        assert journal.read(run.journal.path).synced

        local.stop_part(part)  # restarted empty: the settled run is gone
        part = private_firestore.restart()
        assert [r.action for r in sync.sync_all(private)] == ["skipped: already synced"]

        (result,) = sync.sync_all(private, verify=True)

        assert result.action == "synced"
        db = ms.db
        assert stored_points(db, "lost", run.id, "loss") == [float(i) for i in range(3_000)]
        doc = db.document(layout.run(PROJECT, "lost", run.id)).get().to_dict() or {}
        assert doc["params"] == {"lr": 0.1} and doc["status"] == "finished"
        (again,) = sync.sync_all(private, verify=True)
        assert again.action == "verified"


def test_firestore_reloaded_from_an_older_copy_between_flushes_is_noticed_at_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, private_firestore: PrivateFirestore
) -> None:
    """No commit fails: the restart falls between two flushes, so only the end's check sees it."""
    cfg = private_firestore.cfg
    with private_firestore.fresh() as part:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        # Flushes only when asked, so the restart certainly falls between two of them.
        ms = Metastore(PROJECT, settings=private, flush_interval_s=3600)
        run = ms.exper("reload", git_policy="off").start_run(params={"lr": 0.1})
        for i in range(5_000):
            run.add_metric("loss", float(i))
        assert run.flush()
        autoexport.export_firestore(cfg.stack_dir, part.address, private.cloud_project)
        for i in range(5_000, 10_000):
            run.add_metric("loss", float(i))
        assert run.flush()  # acknowledged, and lost with the restart below

        local.stop_part(part)
        part = private_firestore.restart()  # loads the older copy: 5,000 points
        # The writer had nothing to send meanwhile (a quiet phase of training: no points,
        # no heartbeat due), so no commit of it failed; its channel reconnects on next use.
        wait_for(lambda: _answers(ms.store.client, run.ref.path), what="the channel back")
        for i in range(10_000, 11_000):
            run.add_metric("loss", float(i))
        with caplog.at_level("WARNING"):
            assert run.flush()  # a commit that succeeds: nothing tells the writer
            assert stored_points(ms.db, "reload", run.id, "loss") != [
                float(i) for i in range(11_000)
            ]
            chunks = 11
            with count_rpcs(ms.store.client) as rpcs:
                assert run.finish()

        assert not run.writer.offline and "unreachable" not in caplog.text
        assert "without 5,000 points in 5 chunk(s)" in caplog.text
        # The end's check reads the run document and every chunk's count once: O(chunks)
        # documents in 1 + ceil(chunks / 300) batched reads, and no query.
        assert rpcs["batch_get_documents"] <= 1 + math.ceil(chunks / 300)
        assert rpcs["run_query"] == 0 and rpcs["get_document"] == 0
        db = ms.db
        assert stored_points(db, "reload", run.id, "loss") == [float(i) for i in range(11_000)]
        doc = db.document(layout.run(PROJECT, "reload", run.id)).get().to_dict() or {}
        assert doc["status"] == "finished" and doc["summary"]["loss"]["count"] == 11_000
        assert journal.read(run.journal.path).synced  # and that is true


def test_sync_verify_compares_values_not_only_presence(
    tmp_path: Path, private_firestore: PrivateFirestore
) -> None:
    """An older copy with every chunk and field, but the run still `running`, is not verified."""
    cfg = private_firestore.cfg
    with private_firestore.fresh() as part:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        ms = Metastore(PROJECT, settings=private, flush_interval_s=3600)
        with ms.exper("values", git_policy="off").start_run(params={"lr": 0.1}) as run:
            for i in range(2_000):
                run.add_metric("loss", float(i))
            assert run.flush()  # every chunk and field is stored; the run is still running
            autoexport.export_firestore(cfg.stack_dir, part.address, private.cloud_project)
        assert journal.read(run.journal.path).synced

        local.stop_part(part)
        part = private_firestore.restart()  # the copy made before the run ended
        path = layout.run(PROJECT, "values", run.id)
        assert ms.db.document(path).get().get("status") == "running"

        (result,) = sync.sync_all(private, verify=True)

        assert result.action == "synced"
        doc = ms.db.document(path).get().to_dict() or {}
        assert doc["status"] == "finished" and doc["ended_at"] is not None
        result_doc = ms.db.document(layout.result(PROJECT, "values", run.id)).get()
        assert result_doc.get("status") == "finished"
        (again,) = sync.sync_all(private, verify=True)
        assert again.action == "verified"


def _answers(db: firestore.Client, path: str) -> bool:
    try:
        db.document(path).get(retry=None, timeout=2)
    except Exception:
        return False
    return True
