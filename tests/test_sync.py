"""``aletheia sync``: a run that never reached Firestore arrives later, exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.devstack import local
from aletheia.tracking import journal
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.sync import sync_all

from helpers import wait_for

PROJECT = "offline"


def test_run_started_offline_is_synced_later(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{local.free_port()}"  # nothing listens here
    offline = config.resolve({"firestore_emulator_host": dead})
    assert offline.cache_dir == stack.cache_dir  # same machine, same journals
    ms = Metastore(PROJECT, settings=offline, flush_interval_s=0.2, final_retry_s=0.5)
    ms.store.commit_timeout_s = 0.5
    exper = ms.exper("train", git_policy="off")
    assert not exper.online
    with exper.start_run(fold=2, hyper_params={"lr": 0.1}) as run:
        run.set_model("mlp")
        for i in range(2500):
            run.add_metric("loss", 1.0 / (i + 1))
        run.add_metric("acc", 0.5)
    assert run.id[8] == "T"  # no counter without Firestore: a sortable unique id
    assert not journal.read(run.journal.path).complete
    assert not db.document(layout.run(PROJECT, "train", run.id)).get().exists

    first = sync_all(stack, project=PROJECT)
    assert [(r.run, r.action, r.points_sent) for r in first] == [(run.id, "synced", 2501)]
    doc = db.document(layout.run(PROJECT, "train", run.id)).get().to_dict()
    assert doc["status"] == "finished" and doc["fold"] == 2
    assert doc["hyper_params"] == {"lr": 0.1} and doc["model"] == {"name": "mlp"}
    assert doc["summary"]["loss"]["count"] == 2500
    assert doc["summary"]["acc"] == {
        "count": 1, "last": 0.5, "last_step": 0, "min": 0.5, "max": 0.5, "nonfinite": 0
    }  # fmt: skip
    chunks = list(db.collection(layout.metrics(PROJECT, "train", run.id)).stream())
    assert sorted(c.id for c in chunks) == [
        "acc~000000",
        "loss~000000",
        "loss~000001",
        "loss~000002",
    ]
    assert sum(c.get("count") for c in chunks) == 2501
    assert db.document(layout.result(PROJECT, "train", run.id)).get().get("metrics")["acc"] == 0.5

    # Twice: nothing to send. The CLI says so too.
    assert [r.action for r in sync_all(stack, project=PROJECT)] == ["skipped: already synced"]
    out = CliRunner().invoke(app, ["sync", "-p", PROJECT, "--json"])
    assert out.exit_code == 0 and "already synced" in out.output
    assert len(list(db.collection(layout.metrics(PROJECT, "train", run.id)).stream())) == 4


def test_sync_leaves_live_runs_alone(stack: config.Settings, db: firestore.Client) -> None:
    ms = Metastore(PROJECT, flush_interval_s=60)
    run = ms.exper("live", git_policy="off").start_run()
    run.add_metric("loss", 1.0)
    results = [r for r in sync_all(stack, project=PROJECT) if r.run == run.id]
    assert [r.action for r in results] == ["skipped: still running"]
    assert db.document(layout.run(PROJECT, "live", run.id)).get().get("status") == "running"
    assert run.finish()
    assert db.document(layout.run(PROJECT, "live", run.id)).get().get("status") == "finished"


def test_journal_survives_a_torn_line_and_long_names(tmp_path: Path) -> None:
    long_exper = "é" * 128  # percent-encoded far beyond a file name's 255 bytes
    path = journal.journal_path(tmp_path, "p", long_exper, "1")
    assert len(path.name.encode()) <= 255
    assert path != journal.journal_path(tmp_path, "p", long_exper, "2")
    writer = journal.JournalWriter(path)
    writer.header(
        project="p", experiment=long_exper, run="1", cloud_project="c",
        created=True, fields={"fold": 1}, heartbeat_s=30.0,
    )  # fmt: skip
    for i in range(3):
        writer.metric("loss", i, i, float("nan") if i == 1 else i / 2, 1.5 + i)
    writer.close()
    with path.open("a") as f:
        f.write('{"t":"m","k":"loss","i":3,')  # a write cut short by SIGKILL
    state = journal.read(path)
    assert state.experiment == long_exper and state.initial == {"fold": 1}
    assert state.point_count == 3 and state.torn_lines == 1
    assert journal.list_journals(tmp_path) == [path]


def test_next_start_replays_earlier_offline_runs(
    stack: config.Settings, db: firestore.Client
) -> None:
    dead = config.resolve({"firestore_emulator_host": f"127.0.0.1:{local.free_port()}"})
    ms = Metastore(PROJECT, settings=dead, flush_interval_s=0.2, final_retry_s=0.5)
    ms.store.commit_timeout_s = 0.5
    with ms.exper("resume", git_policy="off").start_run() as offline_run:
        for i in range(1500):
            offline_run.add_metric("loss", float(i))
    old = db.document(layout.run(PROJECT, "resume", offline_run.id))
    assert not old.get().exists

    online = Metastore(PROJECT, flush_interval_s=0.2)
    with online.exper("resume", git_policy="off").start_run() as run:
        run.add_metric("loss", 0.0)
        wait_for(lambda: old.get().exists, what="the earlier run to be replayed")
    wait_for(lambda: journal.read(offline_run.journal.path).synced, what="its journal settled")
    doc = old.get().to_dict()
    assert doc["status"] == "finished" and doc["summary"]["loss"]["count"] == 1500
    chunks = db.collection(layout.metrics(PROJECT, "resume", offline_run.id)).stream()
    assert sum(c.get("count") for c in chunks) == 1500


def test_sync_prunes_old_settled_journals_and_never_unsettled_ones(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    root = journal.journal_root(stack.cache_dir, stack.cloud_project)
    for stale in journal.list_journals(root):  # other tests' journals
        stale.unlink()
    ms = Metastore("prune", flush_interval_s=60)
    exper = ms.exper("e", git_policy="off")
    with exper.start_run() as old_run:
        old_run.add_metric("loss", 1.0)
    with exper.start_run() as recent_run:
        recent_run.add_metric("loss", 1.0)
    # An old journal of a run that died before reaching Firestore: it holds the only copy.
    unsettled = journal.journal_path(root, "prune", "e", "offline-run")
    script = (
        "import sys\nfrom aletheia.tracking import journal\n"
        "w = journal.JournalWriter(journal.Path(sys.argv[1]))\n"
        "w.header(project='prune', experiment='e', run='offline-run', cloud_project='x',"
        " created=False, fields={'status': 'running'}, heartbeat_s=1.0)\n"
        "w.metric('loss', 0, 0, 1.0, 0.0)\nw.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(unsettled)], check=True)
    month_ago = time.time() - 40 * 86_400
    for path in (old_run.journal.path, unsettled):
        os.utime(path, (month_ago, month_ago))

    out = CliRunner().invoke(app, ["sync", "-p", "prune", "--json"])
    assert out.exit_code == 0, out.output
    actions = {r["run"]: r["action"] for r in json.loads(out.output)}
    assert actions == {
        old_run.id: "pruned",
        recent_run.id: "skipped: already synced",
        "offline-run": "crashed",
    }
    assert not old_run.journal.path.exists()
    assert recent_run.journal.path.exists() and unsettled.exists()
    assert db.document(layout.run("prune", "e", "offline-run")).get().get("status") == "crashed"


def test_sync_leaves_a_journal_this_process_still_writes_alone(
    stack: config.Settings, db: firestore.Client
) -> None:
    """The next run's background sync can read a journal between its run's ``end`` and
    ``synced`` records; the run's own writer settles it, so nobody else may replay it."""
    from aletheia.tracking.sync import sync_journal

    ms = Metastore("sync-live", flush_interval_s=3600.0, sync_on_start=False)
    run = ms.exper("e", git_policy="off").start_run()
    run.add_metric("loss", 1.0)
    path = run.journal.path
    run.journal.end("finished")  # what the writer has written when the other thread reads
    assert sync_journal(path, ms.store).action == "skipped: still running"
    before = path.read_bytes()
    assert run.finish()
    state = journal.read(path)
    assert state.synced and path.read_bytes().startswith(before)
    assert path.read_bytes().count(b'{"t":"synced"}') == 1
    # Once its writer has closed it, a journal is anyone's to settle again.
    assert sync_journal(path, ms.store).action == "skipped: already synced"
