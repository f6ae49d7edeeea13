"""The runs table's ``crashed`` filter in a real browser, on runs whose processes were
really killed: a crash ``aletheia sync`` recorded, and one nobody recorded (the run is
still stored as ``running``; only its silent heartbeat says it crashed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from google.cloud import firestore
from playwright.sync_api import Page, expect
from test_webui import as_owner, reads, shown_runs, sign_in, sign_up

from aletheia.cloud import config, layout
from aletheia.tracking import sync
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.runmodel import effective_status

from helpers import GENEROUS_S, wait_for

# The fixtures of the dashboard's browser tests (pytest finds them in this module's namespace).
from test_webui import browser, page, ui_url, web  # noqa: F401  isort: skip

TRAINING = """
import sys, time
from aletheia.tracking.metastore import Metastore

ms = Metastore("vision", heartbeat_s=float(sys.argv[1]))
run = ms.exper("crashes", git_policy="off").start_run()
run.add_metric("loss", 1.0)
run.flush()
print(run.id, flush=True)
while True:  # training, until the test kills this process
    time.sleep(0.1)
"""


def _train(env: dict[str, str], heartbeat_s: float) -> tuple[subprocess.Popen[str], str]:
    """A training process with a running run; the process and the run's id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINING, str(heartbeat_s)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id, f"the training process exited with {proc.poll()}"
    return proc, run_id


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=GENEROUS_S)


def test_the_crashed_filter_finds_recorded_crashes_and_runs_whose_heartbeat_stopped(
    web: config.Settings,  # noqa: F811
    db: firestore.Client,
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
) -> None:
    uid = sign_up(web, "ana@example.com")
    owner = as_owner(web, uid)
    with Metastore("vision", settings=owner).exper("crashes", git_policy="off").start_run() as done:
        done.add_metric("loss", 0.5)
    env = {**os.environ, "ALETHEIA_OWNER": uid, "ALETHEIA_IDENTITY": "server"}
    alive, alive_id = _train(env, heartbeat_s=5.0)  # beats every 5 s: crashed only after 15 s
    try:
        # A crash recorded: the process is killed, then `aletheia sync` settles its journal.
        recorded_proc, recorded_id = _train(env, heartbeat_s=1.0)
        _kill(recorded_proc)
        results = sync.sync_all(owner, project="vision")
        # (Other tests' journals share the session's cache: this experiment is this test's.)
        mine = [r.action for r in results if (r.experiment, r.run) == ("crashes", recorded_id)]
        assert mine == ["crashed"]
        # A crash nobody recorded: killed, and no sync; Firestore still says running.
        silent_proc, silent_id = _train(env, heartbeat_s=1.0)
        _kill(silent_proc)
        silent_path = layout.run("vision", "crashes", silent_id)
        wait_for(
            lambda: effective_status(db.document(silent_path).get().to_dict() or {}) == "crashed",
            what="the killed run's heartbeat to go stale",
        )
        assert db.document(silent_path).get().get("status") == "running"

        sign_in(page, ui_url, "ana@example.com")
        page.goto(f"{ui_url}#/p/vision/e/crashes?f=status&op=%3D%3D&v=crashed&sort=run&dir=asc")
        rows = page.locator("table[data-testid=runs] tr[data-run]")
        expect(rows).to_have_count(2)
        assert shown_runs(page) == sorted([recorded_id, silent_id], key=str)
        expect(rows.locator("td[data-col=status]")).to_have_text(["crashed", "crashed"])
        expect(page.locator("[data-testid=table-status]")).to_contain_text(
            "1 recorded, 1 with a stale heartbeat"
        )
        # One read per recorded crash, and per running run silent for 3 s or more (the
        # live one beats every 5 s, so it may be read and then left out: at most one more).
        assert 2 <= reads(page) <= 3
        assert alive.poll() is None and alive_id not in shown_runs(page)

        # `status == running` lists the live run, not the one whose heartbeat stopped.
        page.goto(f"{ui_url}#/p/vision/e/crashes?f=status&op=%3D%3D&v=running&sort=run&dir=asc")
        expect(page.locator("[data-testid=table-status]")).to_contain_text(
            "1 stored as running left out"
        )
        assert shown_runs(page) == [alive_id]
        expect(rows.locator("td[data-col=status]")).to_have_text(["running"])
    finally:
        alive.kill()
        alive.wait(timeout=GENEROUS_S)
