"""How a run opened without ``with`` ends when its process ends: real scripts, real exits.

Each case runs a real Python process against the session stack and reads the
run document it leaves behind: the status must say how the process ended,
exactly as leaving a ``with`` block would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout

PROJECT = "runexit"

PRELUDE = """
import sys, threading
from aletheia.tracking.metastore import Metastore
exper = Metastore("runexit", flush_interval_s=0.2).exper("exits", git_policy="off")
run = exper.start_run(run_id=sys.argv[1])
run.add_metric("loss", 0.5)
"""

# (case, body after the prelude, expected status, substrings of `error`, process exit code;
# a Ctrl-C'd process ends by SIGINT, as Python ends it: 130 in a shell, -2 here)
CASES = [
    ("clean end", "pass", "finished", [], 0),
    (
        "uncaught exception",
        "raise ValueError('labels and images differ in length')",
        "failed",
        ["Traceback", "ValueError: labels and images differ in length"],
        1,
    ),
    (
        "exception raised in a function",
        "def train():\n    return 1 / 0\ntrain()",
        "failed",
        ["ZeroDivisionError", "in train"],
        1,
    ),
    (
        "keyboard interrupt",
        "raise KeyboardInterrupt",
        "interrupted",
        ["KeyboardInterrupt"],
        -signal.SIGINT,
    ),
    (
        "ctrl-c (a real SIGINT)",
        # Python's own handler, as a script started from a terminal has it (a background job
        # of a non-interactive shell, as some CI runners start, inherits SIGINT ignored).
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "signal.raise_signal(signal.SIGINT)",
        "interrupted",
        ["KeyboardInterrupt"],
        -signal.SIGINT,
    ),
    ("sys.exit(0)", "sys.exit(0)", "finished", [], 0),
    ("sys.exit()", "sys.exit()", "finished", [], 0),
    ("sys.exit(3)", "sys.exit(3)", "failed", ["SystemExit: 3"], 3),
    ("sys.exit(message)", "sys.exit('bad config')", "failed", ["SystemExit: bad config"], 1),
    (
        "exception in a worker thread, main ends cleanly",
        "t = threading.Thread(target=lambda: 1 / 0)\nt.start()\nt.join()\n"
        "run.add_metric('loss', 0.4)",
        "finished",
        [],
        0,
    ),
    (
        "sys.exit in a worker thread ends only that thread",
        "t = threading.Thread(target=sys.exit, args=(5,))\nt.start()\nt.join()",
        "finished",
        [],
        0,
    ),
    (
        "an error printed through sys.excepthook and survived",
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    sys.excepthook(*sys.exc_info())",
        "finished",
        [],
        0,
    ),
    (
        "SystemExit caught by the script",
        "try:\n    sys.exit(4)\nexcept SystemExit:\n    pass",
        "finished",
        [],
        0,
    ),
]


def run_script(body: str, run_id: str, prelude: str = PRELUDE) -> subprocess.CompletedProcess[str]:
    script = prelude + textwrap.dedent(body) + "\n"
    return subprocess.run(
        [sys.executable, "-c", script, run_id],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def run_doc(db: firestore.Client, run_id: str) -> dict:
    return db.document(layout.run(PROJECT, "exits", run_id)).get().to_dict() or {}


@pytest.mark.parametrize(
    ("body", "status", "errors", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_run_without_with_ends_as_its_process_did(
    stack: config.Settings,
    db: firestore.Client,
    body: str,
    status: str,
    errors: list[str],
    code: int,
) -> None:
    done = run_script(body, "r1")
    assert done.returncode == code, done.stderr
    doc = run_doc(db, "r1")
    assert doc["status"] == status, (doc.get("error"), done.stderr)
    assert doc["ended_at"] >= doc["started_at"]
    assert doc["summary"]["loss"]["count"] >= 1
    for text in errors:
        assert text in doc["error"], doc["error"]
    if not errors:
        assert doc["error"] is None
    result = db.document(layout.result(PROJECT, "exits", "r1")).get().to_dict() or {}
    assert result["status"] == status


def test_uncaught_exception_still_reaches_the_hook_installed_before(
    stack: config.Settings, db: firestore.Client
) -> None:
    # A hook installed before aletheia (as IPython or a crash reporter does) keeps working,
    # and Python's own traceback is still printed.
    prelude = "import sys\nsys.excepthook = lambda t, v, tb: print('custom hook saw', t.__name__)\n"
    done = run_script("raise RuntimeError('boom')", "r2", prelude + PRELUDE)
    assert done.returncode == 1
    assert "custom hook saw RuntimeError" in done.stdout
    assert run_doc(db, "r2")["status"] == "failed"
    default = run_script("raise RuntimeError('boom')", "r3")
    assert "RuntimeError: boom" in default.stderr and "Traceback" in default.stderr
    # A hook installed later that does not chain (a crash reporter set up after the run).
    late = "sys.excepthook = lambda t, v, tb: print('late hook saw', t.__name__)\n"
    done = run_script(late + "raise RuntimeError('boom')", "r5")
    assert done.returncode == 1 and "late hook saw RuntimeError" in done.stdout
    doc = run_doc(db, "r5")
    assert doc["status"] == "failed" and "RuntimeError: boom" in doc["error"]


def test_inside_with_exit_codes_match_the_exit_hook(
    stack: config.Settings, db: firestore.Client
) -> None:
    body = "run.finish()\nwith exper.start_run(run_id='w1'):\n    sys.exit(3)"
    done = run_script(body, "r4")
    assert done.returncode == 3
    doc = run_doc(db, "w1")
    assert doc["status"] == "failed" and "SystemExit: 3" in doc["error"]


MLFLOW_CRASH = """
import mlflow
mlflow.set_tracking_uri("aletheia://runexit")
mlflow.set_experiment("mlflow-crash")
mlflow.start_run(run_name="no-with")
mlflow.log_metric("loss", 0.5, step=0)
raise ValueError("diverged at step 1")
"""

MLFLOW_WITH = """
import mlflow
mlflow.set_tracking_uri("aletheia://runexit")
mlflow.set_experiment("mlflow-with")
with mlflow.start_run(run_name="with"):
    mlflow.log_metric("loss", 0.5, step=0)
    raise ValueError("diverged at step 1")
"""


@pytest.mark.parametrize(
    ("script", "exper"),
    [
        # MLflow ends its active run at exit as FINISHED, whatever killed the process.
        pytest.param(MLFLOW_CRASH, "mlflow-crash", id="no with: MLflow's exit hook"),
        # MLflow's `with` ends the run FAILED, but passes no reason.
        pytest.param(MLFLOW_WITH, "mlflow-with", id="with: MLflow's __exit__"),
    ],
)
def test_a_crashed_mlflow_run_records_failed_with_the_exception(
    stack: config.Settings, db: firestore.Client, script: str, exper: str
) -> None:
    env = {**os.environ, "ALETHEIA_GIT_POLICY": "off"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 1 and "ValueError: diverged at step 1" in done.stderr
    runs = [r.to_dict() for r in db.collection(layout.runs(PROJECT, exper)).stream()]
    assert len(runs) == 1
    assert runs[0]["status"] == "failed"
    assert "ValueError: diverged at step 1" in runs[0]["error"]
    assert runs[0]["summary"]["loss"]["count"] == 1
