"""Run ids: 16 processes starting runs at once get 16 distinct, consecutive ids."""

from __future__ import annotations

import os
import subprocess
import sys

from google.cloud import firestore

from aletheia.cloud import config, layout

from helpers import GENEROUS_S

STARTERS = 16

# The test's "go" arrives on stdin: the blocking read wakes on it at once, and the ceiling
# only ends a process whose test is gone.
SCRIPT = f"""
import select, sys
from aletheia.tracking.metastore import Metastore
exper = Metastore("ids").exper("concurrent", git_policy="off")
print("ready", flush=True)
if not select.select([sys.stdin], [], [], {GENEROUS_S})[0] or sys.stdin.readline() != "go\\n":
    sys.exit("no go from the test")
with exper.start_run() as run:
    run.add_metric("x", 1.0)
print(run.id, flush=True)
"""


def test_16_processes_get_16_consecutive_ids(stack: config.Settings, db: firestore.Client) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(STARTERS)
    ]
    for proc in procs:  # every process is ready before any starts a run
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:  # all at once: each is already blocked reading its stdin
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.append(int(out.strip()))
    assert sorted(ids) == list(range(1, STARTERS + 1))
    docs = list(db.collection(layout.runs("ids", "concurrent")).stream())
    assert sorted(int(d.id) for d in docs) == list(range(1, STARTERS + 1))
    assert all(d.get("status") == "finished" for d in docs)
    assert all(d.get("number") == int(d.id) for d in docs)
