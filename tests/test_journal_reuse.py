"""A run id that comes back (Firestore wiped or restored) gets a journal of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import wipe_firestore
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.tracking import journal, runmodel
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.sync import sync_all

PROJECT = "reused-ids"

#: Run "1" again after the wipe: three points reach Firestore, then the process dies
#: without ending the run (no exit hook), as a SIGKILL would leave it.
SECOND_RUN_DIES = """
import os
from aletheia.tracking.metastore import Metastore
ms = Metastore("reused-ids", flush_interval_s=0.1)
run = ms.exper("numbered", git_policy="off", auto_inc_ids=True).start_run()
for i in range(3):
    run.add_metric("loss", float(i))
assert run.flush()
run.journal.flush()
print(run.id, run.journal.path, flush=True)
os._exit(0)
"""


def _points(db: firestore.Client, run: str) -> list[tuple[int, float]]:
    chunks = db.collection(layout.metrics(PROJECT, "numbered", run)).stream()
    return sorted((p.index, p.value) for c in chunks for p in runmodel.chunk_points(c.to_dict()))


def test_a_reused_run_id_never_replays_the_earlier_runs_points(
    stack: config.Settings, db: firestore.Client
) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.1)
    with ms.exper("numbered", git_policy="off", auto_inc_ids=True).start_run() as first:
        for i in range(10):
            first.add_metric("loss", 100.0 + i)
    assert first.id == "1"
    earlier = first.journal.path
    earlier_text = earlier.read_text()

    wipe_firestore(stack)  # the counter starts over: the next run is "1" again
    out = subprocess.run(
        [sys.executable, "-c", SECOND_RUN_DIES],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=True,
    )
    run_id, path = out.stdout.split()
    assert run_id == "1"

    sync_all(stack, project=PROJECT)  # settles the dead run from what its journal holds
    doc = db.document(layout.run(PROJECT, "numbered", "1")).get().to_dict()
    assert doc["status"] == "crashed"
    assert doc["summary"]["loss"]["count"] == 3
    assert _points(db, "1") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    # Each run kept its own journal; the earlier one is as it was.
    assert Path(path) != earlier and earlier.read_text() == earlier_text
    assert journal.parse_journal_name(Path(path)) == (PROJECT, "numbered", "1")
