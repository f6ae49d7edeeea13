"""A run belongs to the one live process that started it.

A second process starting the same explicit run id while Firestore is frozen
starts offline; when Firestore answers again it must not write over the
first process's run: it is kept under a new id with ``conflict_of``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_faults import stored_points

from aletheia.cloud import config, layout
from aletheia.devstack import local
from aletheia.tracking import direct, metastore, sync
from aletheia.tracking.metastore import Metastore

from helpers import PrivateFirestore

PROJECT = "faults"


def _private(part: local.PartState, cache: Path) -> config.Settings:
    return config.resolve({"firestore_emulator_host": part.address, "cache_dir": str(cache)})


def test_second_offline_start_of_the_same_run_id_takes_over_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    private_firestore: PrivateFirestore,
) -> None:
    # A start gives up on Firestore after 2 s here (30 s by default) so the freeze stays short.
    monkeypatch.setattr(direct, "CREATE_TIMEOUT_S", 2.0)
    with private_firestore.fresh() as part:
        first_ms = Metastore(PROJECT, settings=_private(part, tmp_path / "a"), flush_interval_s=0.2)
        # Another machine: its own cache and journal directory.
        second_ms = Metastore(
            PROJECT, settings=_private(part, tmp_path / "b"), flush_interval_s=0.2
        )
        first_exper = first_ms.exper("shared", git_policy="off")
        second_exper = second_ms.exper("shared", git_policy="off")
        first = first_exper.start_run(run_id="r1", params={"who": "first"})
        for i in range(20_000):
            first.add_metric("loss", float(i))
        assert first.flush()

        local.suspend_part(part)
        started: list[metastore.Run] = []
        starter = threading.Thread(
            target=lambda: started.append(
                second_exper.start_run(run_id="r1", params={"who": "second"})
            )
        )
        starter.start()
        starter.join()  # it gave up on Firestore: the run started offline
        second = started[0]
        second_ms.store.commit_timeout_s = 1.0
        for i in range(5_000):
            second.add_metric("loss", -float(i))
        local.resume_part(part)

        with caplog.at_level("WARNING"):
            second.finish()
        for i in range(20_000, 21_000):
            first.add_metric("loss", float(i))
        first.finish()

        db = first_ms.db
        assert stored_points(db, "shared", "r1", "loss") == [float(i) for i in range(21_000)]
        doc = db.document(layout.run(PROJECT, "shared", "r1")).get().to_dict() or {}
        assert doc["params"] == {"who": "first"} and doc["status"] == "finished"
        assert doc["summary"]["loss"]["count"] == 21_000

        assert second.id != "r1"
        kept = db.document(layout.run(PROJECT, "shared", second.id)).get().to_dict() or {}
        assert kept["conflict_of"] == "r1" and kept["run"] == second.id
        assert kept["params"] == {"who": "second"} and kept["status"] == "finished"
        assert stored_points(db, "shared", second.id, "loss") == [-float(i) for i in range(5_000)]
        assert any("conflict_of" in r.getMessage() for r in caplog.records)


OFFLINE_TRAINING = """
import sys
from aletheia.tracking import direct
from aletheia.tracking.metastore import Metastore
direct.CREATE_TIMEOUT_S = 1.0  # nothing answers: give up quickly
ms = Metastore("faults", flush_interval_s=0.2)
ms.store.commit_timeout_s = 0.5
run = ms.exper("shared", git_policy="off").start_run(run_id="r1", params={"who": "offline"})
for i in range(3000):
    run.add_metric("loss", -float(i))
run.journal.flush()
print("logged", flush=True)
sys.stdin.read()  # killed here
"""


def test_sync_of_an_offline_start_keeps_both_runs(
    tmp_path: Path, private_firestore: PrivateFirestore
) -> None:
    with private_firestore.fresh() as part:
        # A process on a machine that cannot reach Firestore starts r1 and is killed.
        env = {
            **os.environ,
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{local.free_port()}",  # nothing listens
            "ALETHEIA_CACHE_DIR": str(tmp_path / "b"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", OFFLINE_TRAINING],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
        proc.kill()
        proc.wait()
        # Meanwhile another process owns r1.
        owner_ms = Metastore(PROJECT, settings=_private(part, tmp_path / "a"))
        with owner_ms.exper("shared", git_policy="off").start_run(run_id="r1") as owned:
            for i in range(2_000):
                owned.add_metric("loss", float(i))

        results = sync.sync_all(_private(part, tmp_path / "b"))

        db = owner_ms.db
        assert stored_points(db, "shared", "r1", "loss") == [float(i) for i in range(2_000)]
        (result,) = results
        assert result.conflict_of == "r1" and result.run != "r1" and result.action == "crashed"
        assert db.document(layout.run(PROJECT, "shared", "r1")).get().get("status") == "finished"
        kept = db.document(layout.run(PROJECT, "shared", result.run)).get().to_dict() or {}
        assert kept["conflict_of"] == "r1" and kept["params"] == {"who": "offline"}
        assert stored_points(db, "shared", result.run, "loss") == [-float(i) for i in range(3_000)]
        # Settled: a second sync does nothing more.
        again = sync.sync_all(_private(part, tmp_path / "b"))
        assert [r.action for r in again] == ["skipped: already synced"]
