"""What ``start_run`` costs the training thread, and that what a run records is the tree at start.

Counted, never timed: the Firestore RPCs, Cloud Storage requests and processes
the *calling* thread makes during ``start_run`` (the code and environment are
captured beside it, :mod:`aletheia.tracking.runcapture`). Real emulator,
real git repositories, real processes; an audit hook and a wrapper around
the client's transport only count what really happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.tracking.gitinfo import GitPolicyWarning
from aletheia.tracking.metastore import Metastore

from helpers import git_repo

pytestmark = pytest.mark.filterwarnings(f"ignore::{GitPolicyWarning.__module__}.GitPolicyWarning")

PROJECT = "runstart"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A committed repository with a changed tracked file and an untracked one."""
    repo = git_repo(tmp_path / "work", {"train.py": "LR = 0.1\n"})
    (repo / "train.py").write_text("LR = 0.2  # at start\n")
    (repo / "helpers.py").write_text("SEED = 1  # at start\n")
    return repo


@dataclass
class Calls:
    """What one thread did while counting: RPC attempts, HTTP requests, processes."""

    thread: int
    rpcs: list[str] = field(default_factory=list)
    http: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)


_counting: list[Calls] = []
RPCS = ("batch_get_documents", "commit", "get_document", "run_query", "batch_write")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    for calls in list(_counting):
        if threading.get_ident() != calls.thread:
            continue
        if event == "subprocess.Popen":
            calls.processes.append(" ".join(map(str, args[1] or ()))[:80])
        elif event == "http.client.send":
            calls.http.append(bytes(args[1][:60]).decode("latin-1").split("\r\n")[0])


sys.addaudithook(_audit)  # audit hooks cannot be removed: it counts only inside `counting`


@contextmanager
def counting(db: firestore.Client) -> Iterator[Calls]:
    """Count what this thread does inside the block (every RPC attempt the client makes)."""
    calls = Calls(threading.get_ident())
    wrapped = db._firestore_api._transport._wrapped_methods
    saved = {gapic: gapic._target for gapic in wrapped.values()}

    def recorder(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == calls.thread:
                calls.rpcs.append(name)
            return target(*args, **kwargs)

        return attempt

    transport = db._firestore_api._transport
    names = {wrapped[getattr(transport, n)]: n for n in RPCS if getattr(transport, n) in wrapped}
    for gapic in wrapped.values():
        gapic._target = recorder(names.get(gapic, "other"), gapic._target)
    _counting.append(calls)
    try:
        yield calls
    finally:
        _counting.remove(calls)
        for gapic, target in saved.items():
            gapic._target = target


def read_run(db: firestore.Client, experiment: str, run_id: str) -> dict[str, Any]:
    return db.document(layout.run(PROJECT, experiment, run_id)).get().to_dict() or {}


def test_start_run_costs_the_caller_one_rpc_no_upload_and_no_process(
    stack: config.Settings, repo: Path
) -> None:
    """Before: the caller read the experiment, created the run, moved the hint, registered
    the blobs (4 RPCs), uploaded four blobs and spawned every git process itself."""
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    exper = ms.exper("cost")
    ids = []
    for _ in range(2):  # the first run of a process and a later one
        with counting(ms.db) as calls:
            run = exper.start_run(repo_path=repo)
        ids.append(run.id)
        assert calls.rpcs == ["commit"], calls.rpcs  # the create: the run's id is its lock
        assert calls.http == [], calls.http
        assert calls.processes == [], calls.processes
        run.finish()
    assert ids == ["1", "2"]

    doc = read_run(ms.db, "cost", "2")
    assert doc["capture"]["state"] == "complete"
    assert doc["git"]["dirty"] is True and doc["git"]["changed"] == 1
    assert doc["git"]["untracked"] == ["helpers.py"]
    assert (
        "+LR = 0.2  # at start" in ms.blobstore.get_bytes(doc["git"]["diff_ref"]["sha256"]).decode()
    )
    assert doc["env"]["package_count"] > 0 and doc["env"]["packages_ref"]
    assert ms.db.document(exper.path).get().to_dict()["next_run_id"] == 3


def test_an_edit_right_after_start_run_is_not_recorded_as_what_ran(
    stack: config.Settings, repo: Path
) -> None:
    """Whether the background read the files before or after these edits, the run records
    the tree as it started, or names what it could not read as it was; never the edit."""
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    run = ms.exper("edit").start_run(repo_path=repo)
    (repo / "train.py").write_text("LR = 9.9  # after start\n")
    (repo / "helpers.py").write_text("SEED = 9  # after start\n")
    (repo / "later.py").write_text("print('created after start')\n")
    run.finish()

    git_doc = read_run(ms.db, "edit", run.id)["git"]
    assert git_doc["untracked"] == ["helpers.py"] and git_doc["changed"] == 1
    if git_doc["diff_ref"] is not None:
        diff = ms.blobstore.get_bytes(git_doc["diff_ref"]["sha256"]).decode()
        assert "after start" not in diff and "+LR = 0.2  # at start" in diff
    else:
        assert git_doc["changed_after_start"] == ["train.py"]
    kept = {}  # no manifest when nothing could be kept as it was
    if git_doc["snapshot_ref"] is not None:
        manifest = json.loads(ms.blobstore.get_bytes(git_doc["snapshot_ref"]["sha256"]))
        kept = {f["path"]: ms.blobstore.get_bytes(f["sha256"]) for f in manifest["files"]}
    skipped = {s["path"]: s["reason"] for s in git_doc["snapshot"]["skipped"]}
    assert "later.py" not in kept and "later.py" not in skipped  # it did not exist at start
    if "helpers.py" in kept:
        assert kept["helpers.py"] == b"SEED = 1  # at start\n"
    else:
        assert skipped["helpers.py"] == "changed after the run started"


CRASH = """
import os, sys
from aletheia.tracking.metastore import Metastore
run = Metastore(sys.argv[1], flush_interval_s=3600).exper("crash").start_run(repo_path=sys.argv[2])
print(run.id, flush=True)
os._exit(0)  # before the capture's fields could be flushed
"""


def test_a_process_that_dies_before_its_capture_landed_says_capture_incomplete(
    stack: config.Settings, db: firestore.Client, repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "ALETHEIA_CACHE_DIR": str(tmp_path / "c")}
    done = subprocess.run(
        [sys.executable, str(script), PROJECT, str(repo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = read_run(db, "crash", done.stdout.split()[0])
    assert doc["status"] == "running"
    assert doc["capture"] == {"state": "incomplete", "error": None}
    assert doc["env"] is None  # no environment claimed that was not captured


def test_a_git_warning_made_an_error_leaves_no_running_run(
    stack: config.Settings, db: firestore.Client, repo: Path
) -> None:
    """The policy is applied after the document was created (beside it): a warning the
    caller's filters turn into an error ends the run ``failed``, never orphaned ``running``."""
    import warnings

    exper = Metastore(PROJECT).exper("strictish")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GitPolicyWarning)
        with pytest.raises(GitPolicyWarning):
            exper.start_run(repo_path=repo)
    runs = [s.to_dict() for s in db.collection(layout.runs(PROJECT, "strictish")).stream()]
    assert [r["status"] for r in runs if r["status"] == "running"] == []
    assert exper.active_run is None
