"""Faults in the journal and in sync: tracking never crashes training, sync never loses data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.errors import ConfigError
from aletheia.tracking import journal
from aletheia.tracking.metastore import Metastore

PROJECT = "faultsj"

#: A training script whose journal stops fitting on the disk after its first point.
DISK_FULL = """
import logging, resource, signal, sys
from aletheia.tracking.metastore import Metastore
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails (EFBIG)
overrides = {"firestore_emulator_host": sys.argv[2]} if len(sys.argv) > 2 else {}
ms = Metastore("faultsj", flush_interval_s=0.1, final_retry_s=1.0, **overrides)
if overrides:
    ms.store.commit_timeout_s = 0.5
with ms.exper(sys.argv[1], git_policy="off").start_run(params={"seed": 7}) as run:
    print("run", run.id, flush=True)
    run.add_metric("loss", 0.0)
    run.flush()
    run.journal.flush()
    limit = run.journal.path.stat().st_size + 4096
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    for i in range(1, 20_000):
        run.add_metric("loss", float(i))
        if i % 4 == 0:
            run.add_metric("acc", i / 20_000)
    run.set_params({"lr": 0.1})
print("logged", run.writer.points_logged, flush=True)
"""


#: The same, SIGKILLed-like (no end, no exit hook) once everything reached Firestore.
DISK_FULL_THEN_KILLED = DISK_FULL.replace(
    '    run.set_params({"lr": 0.1})\n',
    '    run.set_params({"lr": 0.1})\n    assert run.flush()\n    import os; os._exit(0)\n',
)


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


def stored_values(db: firestore.Client, exper: str, run: str, key: str) -> list[float]:
    values: list[float] = []
    chunks = db.collection(layout.metrics(PROJECT, exper, run)).stream()
    for snap in sorted(chunks, key=lambda s: int(s.get("chunk"))):
        if snap.get("key") == key:
            values += snap.get("values")
    return values


def test_disk_full_journal_never_crashes_the_run_and_sync_never_rewinds_it(
    stack: config.Settings, db: firestore.Client
) -> None:
    done = run_script(DISK_FULL, "disk full")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    run_id = done.stdout.split()[1]
    assert "logged 24999" in done.stdout
    disk = [w for w in done.stderr.splitlines() if "cannot write the journal" in w]
    assert len(disk) == 1, done.stderr  # once per kind of failure, not per point

    def check() -> None:
        doc = db.document(layout.run(PROJECT, "disk full", run_id)).get().to_dict()
        assert doc["status"] == "finished" and doc["error"] is None
        assert doc["params"] == {"seed": 7, "lr": 0.1}
        assert doc["summary"]["loss"]["count"] == 20_000
        assert doc["summary"]["acc"]["count"] == 4_999
        assert stored_values(db, "disk full", run_id, "loss") == [float(i) for i in range(20_000)]
        assert len(stored_values(db, "disk full", run_id, "acc")) == 4_999
        result = db.document(layout.result(PROJECT, "disk full", run_id)).get().to_dict()
        assert result["status"] == "finished"
        assert result["metrics"] == {"loss": 19_999.0, "acc": 19_996 / 20_000}

    check()
    # The journal is truncated: replaying it must not rewind Firestore to what it holds.
    path = journal.journal_path(root_of(stack), PROJECT, "disk full", run_id)
    state = journal.read(path)
    assert state.ended is None and state.point_count < 1000
    synced = CliRunner().invoke(app, ["sync", "--json", "-p", PROJECT])
    assert synced.exit_code == 0, synced.output
    check()
    again = CliRunner().invoke(app, ["sync", "--json", "--force", "-p", PROJECT])
    assert again.exit_code == 0, again.output
    check()


def test_disk_full_and_firestore_down_says_exactly_what_was_lost(
    stack: config.Settings,
) -> None:
    with socket.socket() as sock:  # a port where no Firestore answers
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    done = run_script(DISK_FULL, "disk full offline", dead)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    run_id = done.stdout.split()[1]
    path = journal.journal_path(root_of(stack), PROJECT, "disk full offline", run_id)
    state = journal.read(path)
    kept = {key: len(points) for key, points in state.points.items()}
    lost_loss, lost_acc = 20_000 - kept.get("loss", 0), 4_999 - kept.get("acc", 0)
    assert lost_loss > 0 and lost_acc > 0
    lost = [w for w in done.stderr.splitlines() if "could not be kept" in w]
    assert len(lost) == 1, done.stderr
    assert f"{lost_loss + lost_acc:,} of 24,999 points" in lost[0], lost[0]
    assert f"loss: {lost_loss:,}" in lost[0] and f"acc: {lost_acc:,}" in lost[0], lost[0]
    assert "its end (finished) is recorded nowhere" in lost[0]  # sync will say crashed
    assert "holds everything" not in done.stderr


def root_of(settings: config.Settings) -> Path:
    return journal.journal_root(settings.cache_dir, settings.cloud_project)


def test_unwritable_journal_dir_refuses_the_run_before_creating_it(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be")  # even root cannot
    ms = Metastore(PROJECT, cache_dir=str(blocked))
    exper = ms.exper("nowhere", git_policy="off")
    with pytest.raises(ConfigError) as err:
        exper.start_run()
    assert str(blocked) in str(err.value) and "cache_dir" in str(err.value)
    assert "ALETHEIA_CACHE_DIR" in str(err.value)
    runs = list(db.collection(layout.runs(PROJECT, "nowhere")).stream())
    assert runs == []  # no orphan `running` run


def test_a_poisoned_journal_does_not_stop_sync_of_the_others(
    stack: config.Settings, db: firestore.Client
) -> None:
    root = root_of(stack)
    root.mkdir(parents=True, exist_ok=True)
    offline = Metastore(PROJECT, firestore_emulator_host="127.0.0.1:9", final_retry_s=0.5)
    offline.store.commit_timeout_s = 0.3
    # Three journals: corrupt bytes mid-file, an unreadable "file", and a good one after them.
    bad_header = journal.journal_path(root, PROJECT, "bad", "r1")
    bad_header.write_bytes(b'{"t":"run","project":"faultsj"\xff\xfe}\n{"t":"m","k":"x"}\n')
    unreadable = journal.journal_path(root, "other", "bad", "r2")
    unreadable.mkdir()
    with offline.exper("good", git_policy="off").start_run() as run:
        for i in range(1500):
            run.add_metric("loss", float(i))
    good = journal.journal_path(root, PROJECT, "good", run.id)
    os.utime(good, (2e9, 2e9))  # the newest: synced after the bad ones
    try:
        result = CliRunner().invoke(app, ["sync", "--json"])
    finally:  # the journal directory is shared by the whole session
        bad_header.unlink()
        unreadable.rmdir()
    assert result.exit_code != 0, result.output
    rows = {r["run"]: r for r in json.loads(result.output)}
    assert rows[run.id]["action"] == "synced"
    assert stored_values(db, "good", run.id, "loss") == [float(i) for i in range(1500)]
    assert rows["r2"]["action"].startswith("failed:") and str(unreadable) in rows["r2"]["action"]
    assert rows["r1"]["action"].startswith("failed:") and "line 1" in rows["r1"]["action"]
    assert "aletheia sync" in rows["r1"]["action"]  # what to do once it is fixed


def test_sync_merges_a_gapped_journal_with_firestore_by_point_index(
    stack: config.Settings, db: firestore.Client
) -> None:
    ms = Metastore(PROJECT, sync_on_start=False)
    with ms.exper("gaps", git_policy="off").start_run() as run:
        for i in range(1500):
            run.add_metric("loss", float(i))
    assert stored_values(db, "gaps", run.id, "loss") == [float(i) for i in range(1500)]
    # The journal lost points 200..1199 (disk full) and the end of the run, and holds
    # points Firestore never got: 1500..1599, then 1700..1749 after a gap nobody holds.
    lines = run.journal.path.read_text().splitlines()
    kept = [
        line
        for line in lines
        if json.loads(line)["t"] == "run"
        or (json.loads(line)["t"] == "m" and not 200 <= json.loads(line)["i"] < 1200)
    ]
    extra = [*range(1500, 1600), *range(1700, 1750)]
    kept += [
        json.dumps({"t": "m", "k": "loss", "i": i, "s": i, "v": float(i), "ts": 1.0}) for i in extra
    ]
    run.journal.path.write_text("\n".join(kept) + "\n")

    result = CliRunner().invoke(app, ["sync", "--json", "-p", PROJECT])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["experiment"] == "gaps")
    assert row["action"] == "synced" and row["unplaced"] == 50 and row["chunks_written"] == 1
    assert stored_values(db, "gaps", run.id, "loss") == [float(i) for i in range(1600)]
    doc = db.document(layout.run(PROJECT, "gaps", run.id)).get().to_dict()
    assert doc["status"] == "finished"  # the journal's missing end rewinds nothing
    assert doc["summary"]["loss"]["count"] == 1600 and doc["summary"]["loss"]["last"] == 1599.0
    result_doc = db.document(layout.result(PROJECT, "gaps", run.id)).get().to_dict()
    assert result_doc["status"] == "finished" and result_doc["metrics"] == {"loss": 1599.0}


def test_a_journal_that_cannot_be_opened_after_creation_leaves_no_running_orphan(
    stack: config.Settings, db: firestore.Client
) -> None:
    ms = Metastore(PROJECT, sync_on_start=False)
    # The directory is writable, but this run's journal file cannot be opened: its name is
    # free (a link to nowhere does not exist), and opening it fails (the link's directory
    # does not exist either).
    taken = journal.journal_path(ms.journal_root, PROJECT, "taken", "r7")
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.symlink_to(ms.journal_root / "no such directory" / "r7.jsonl")
    try:
        with pytest.raises(ConfigError):
            ms.exper("taken", git_policy="off").start_run(run_id="r7")
    finally:  # the journal directory is shared by the whole session
        taken.unlink()
    doc = db.document(layout.run(PROJECT, "taken", "r7")).get().to_dict()
    assert doc["status"] == "failed" and "journal" in doc["error"]


def test_sync_of_a_disk_full_journal_marks_a_dead_run_crashed_and_keeps_every_point(
    stack: config.Settings, db: firestore.Client
) -> None:
    done = run_script(DISK_FULL_THEN_KILLED, "disk full then gone")
    assert done.returncode == 0, done.stderr
    path = journal.journal_path(
        root_of(stack), PROJECT, "disk full then gone", done.stdout.split()[1]
    )
    state = journal.read(path)
    assert state.ended is None and state.point_count < 1000
    synced = CliRunner().invoke(app, ["sync", "--json", "-p", PROJECT])
    assert synced.exit_code == 0, synced.output
    row = next(r for r in json.loads(synced.output) if r["experiment"] == "disk full then gone")
    assert row["action"] == "crashed"
    doc = db.document(layout.run(PROJECT, "disk full then gone", state.run)).get().to_dict()
    assert doc["status"] == "crashed" and "aletheia sync" in doc["error"]
    assert doc["params"] == {"seed": 7, "lr": 0.1}
    assert doc["summary"]["loss"]["count"] == 20_000
    assert doc["ended_at"] >= doc["heartbeat_at"]
    assert stored_values(db, "disk full then gone", state.run, "loss") == [
        float(i) for i in range(20_000)
    ]
    result = db.document(layout.result(PROJECT, "disk full then gone", state.run)).get().to_dict()
    assert result["status"] == "crashed" and result["metrics"]["loss"] == 19_999.0
