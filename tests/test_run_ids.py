"""Run ids: 16 processes starting runs at once get 16 distinct, consecutive ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from google.cloud import firestore

from aletheia.cloud import config, layout

STARTERS = 16

SCRIPT = """
import sys, time
from pathlib import Path
from aletheia.tracking.metastore import Metastore
go = Path(sys.argv[1])
exper = Metastore("ids").exper("concurrent", git_policy="off")
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
with exper.start_run() as run:
    run.add_metric("x", 1.0)
print(run.id, flush=True)
"""


def test_16_processes_get_16_consecutive_ids(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(go)],
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
    go.touch()
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
