"""Faults: Firestore goes away mid-run; the training process is SIGKILLed. Nothing is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.devstack import local
from aletheia.tracking import journal
from aletheia.tracking.metastore import Metastore

from helpers import wait_for

PROJECT = "faults"


def stored_points(db: firestore.Client, exper: str, run: str, key: str) -> list[float]:
    """Every value of a metric, in index order, as Firestore holds it."""
    values: list[float] = []
    chunks = db.collection(layout.metrics(PROJECT, exper, run)).stream()
    for snap in sorted(chunks, key=lambda s: s.id):
        if snap.get("key") == key:
            values += snap.get("values")
    return values


def test_part_helpers_start_suspend_resume_stop(tmp_path: Path) -> None:
    cfg = local.StackConfig(stack_dir=tmp_path, ports=local.free_ports())
    part = local.start_part(cfg, "firestore")
    try:
        assert local.status_of(part) == "healthy"
        local.suspend_part(part)
        assert local.status_of(part) == "unhealthy"  # alive, silent
        local.resume_part(part)
        assert local.status_of(part) == "healthy"
    finally:
        assert local.stop_part(part)
    assert local.status_of(part) == "stopped"


def test_firestore_stops_mid_run_and_nothing_is_lost(
    settings: config.Settings, tmp_path: Path
) -> None:
    # A private Firestore emulator: the session stack is never touched.
    cfg = local.StackConfig(stack_dir=tmp_path / "stack", ports=local.free_ports())
    part = local.start_part(cfg, "firestore")
    try:
        private = config.resolve(
            {"firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "cache")}
        )
        ms = Metastore(PROJECT, settings=private, flush_interval_s=0.2)
        ms.store.commit_timeout_s = 1.0
        exper = ms.exper("outage", git_policy="off")
        with exper.start_run() as run:
            for i in range(2000):
                run.add_metric("loss", float(i))
            assert run.flush()
            local.suspend_part(part)
            for i in range(2000, 5000):  # logging goes on while Firestore is gone
                run.add_metric("loss", float(i))
            wait_for(lambda: run.writer.offline, what="the writer to notice")
            for i in range(5000, 6000):
                run.add_metric("loss", float(i))
            local.resume_part(part)
            wait_for(lambda: run.writer.caught_up, what="the writer to catch up")
            for i in range(6000, 7000):
                run.add_metric("loss", float(i))
        assert ms.store.stats.failed_commits >= 1
        db = ms.db
        assert stored_points(db, "outage", run.id, "loss") == [float(i) for i in range(7000)]
        doc = db.document(layout.run(PROJECT, "outage", run.id)).get()
        assert doc.get("status") == "finished"
        assert doc.get("summary")["loss"]["count"] == 7000
        assert journal.read(run.journal.path).complete
    finally:
        local.stop_part(part)


TRAINING = """
import sys
from aletheia.tracking.metastore import Metastore
exper = Metastore("faults", flush_interval_s=0.2).exper("killed", git_policy="off")
run = exper.start_run(fold=3, params={"seed": 1})
run.set_model("mlp")
i = 0
while True:
    run.add_metric("loss", float(i))
    if i % 1000 == 999:
        print(i + 1, flush=True)
    i += 1
"""


def test_sigkill_then_sync_loses_nothing_and_marks_crashed(
    stack: config.Settings, db: firestore.Client
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINING], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    while int(proc.stdout.readline() or 0) < 5000:
        assert proc.poll() is None
    root = journal.journal_root(stack.cache_dir, stack.cloud_project)
    path = next(p for p in journal.list_journals(root) if "killed" in p.name)
    # Killed mid-loop, once the journal holds 5,000 points (it gets them every flush). Only the
    # file's head is counted: the loop journals faster than the whole file could be re-read.
    wait_for(lambda: _points_in_head(path, 5000), what="5,000 journaled points")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = journal.read(path)
    logged = state.point_count
    assert logged >= 5000 and state.ended is None

    # This project's journals: the session's cache also holds other tests' (refused ones too).
    result = CliRunner().invoke(app, ["sync", "--json", "-p", PROJECT])
    assert result.exit_code == 0, result.output
    assert '"action": "crashed"' in result.output
    doc = db.document(layout.run(PROJECT, "killed", state.run)).get().to_dict()
    assert doc["status"] == "crashed" and "aletheia sync" in doc["error"]
    assert doc["fold"] == 3 and doc["params"] == {"seed": 1} and doc["model"] == {"name": "mlp"}
    assert doc["ended_at"] >= doc["started_at"]
    assert doc["summary"]["loss"]["count"] == logged
    values = stored_points(db, "killed", state.run, "loss")
    assert values == [float(i) for i in range(logged)]
    result_doc = db.document(layout.result(PROJECT, "killed", state.run)).get()
    assert result_doc.get("status") == "crashed"

    # (c) sync twice: nothing to do; forced: the same documents, no duplicates.
    before = {
        s.id: s.to_dict()
        for s in db.collection(layout.metrics(PROJECT, "killed", state.run)).stream()
    }
    again = CliRunner().invoke(app, ["sync", "--json", "-p", PROJECT])
    assert again.exit_code == 0 and "already synced" in again.output
    forced = CliRunner().invoke(app, ["sync", "--force", "-p", PROJECT])
    assert forced.exit_code == 0, forced.output
    after = {
        s.id: s.to_dict()
        for s in db.collection(layout.metrics(PROJECT, "killed", state.run)).stream()
    }
    assert after == before
    assert stored_points(db, "killed", state.run, "loss") == [float(i) for i in range(logged)]
    assert db.document(layout.run(PROJECT, "killed", state.run)).get().get("status") == "crashed"


def _points_in_head(path: Path, wanted: int) -> bool:
    """Whether the journal's first lines hold ``wanted`` complete metric records."""
    found = 0
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return False  # a line still being written
            found += line.startswith(b'{"t":"m"')
            if found >= wanted:
                return True
    return False


JOURNAL_FULL = """
import logging, os, resource, signal, sys
from aletheia.tracking.metastore import Metastore
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails (EFBIG)
ms = Metastore("faults", flush_interval_s=0.1, firestore_emulator_host=sys.argv[1])
ms.store.commit_timeout_s = 0.5
run = ms.exper("disk full", git_policy="off").start_run()
run.add_metric("loss", 0.0)
assert not run.flush()  # nothing listens there: the outage is reported
limit = run.journal.path.stat().st_size + 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
for i in range(20_000):
    run.add_metric("loss", float(i))
run.set_params({"lr": 0.1})
run.flush()
print("logged", run.writer.points_logged, flush=True)
os._exit(0)  # what matters is what the run reported while it ran
"""


def test_journal_failures_during_an_outage_are_reported_once_each(
    stack: config.Settings,
) -> None:
    with socket.socket() as sock:  # a port where no Firestore answers
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    done = subprocess.run(
        [sys.executable, "-c", JOURNAL_FULL, dead],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    assert "logged 20001" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    outage = [w for w in warnings if "unreachable" in w]
    disk = [w for w in warnings if "cannot write the journal" in w]
    assert len(outage) >= 1 and len(disk) == 1, done.stderr
    assert "File too large" in disk[0] and "memory" in disk[0]
