"""A worker killed mid-profile leaves ``Files/{sha}`` in ``processing``: it is swept and re-driven.

The state a killed worker leaves behind (status ``processing``, a lease that
has expired, no result) is written onto a file the real function already
profiled; its event is gone, so only a sweep can finish it: the function's
own, riding on a later data-file event (the test stack sweeps on every one;
deployed, an instance sweeps at most once a minute), or ``aletheia datasets
reprofile``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage
from test_function_profiling import upload, wait_terminal
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.function import leases

from helpers import bridge_counters, count_rpcs, wait_for, wait_for_document

PROJECT = "vision"  # the project test_function_profiling.upload writes into
runner = CliRunner()


def leave_as_a_killed_worker_would(
    db: firestore.Client, digest: str, status: str = "processing"
) -> None:
    """No result and an expired lease (or none): the event was lost with the worker."""
    db.document(layout.file(PROJECT, digest)).update(
        {
            "status": status,
            "worker": "killed",
            "lease_until": datetime.now(timezone.utc) - timedelta(minutes=1),
            "rows": firestore.DELETE_FIELD,
            "schema": firestore.DELETE_FIELD,
        }
    )


def test_function_sweeps_a_stale_lease_after_its_next_event(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    stuck = upload(gcs, stack, b"a,b\n1,2\n3,4\n", "stuck.csv")
    assert wait_terminal(db, stuck)["status"] == "done"
    leave_as_a_killed_worker_would(db, stuck)

    # Any later upload wakes the function, which re-drives the stale lease too.
    other = upload(gcs, stack, b"x\n1\n", "other.csv")
    assert wait_terminal(db, other)["status"] == "done"
    doc = wait_terminal(db, stuck)
    assert doc["status"] == "done" and doc["rows"] == 2
    assert doc["worker"] != "killed" and doc["attempts"] == 2


def test_reprofile_stuck_redrives_only_the_files_that_never_finished(
    stack: config.Settings, db: firestore.Client, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repo: nothing is pinned
    data = tmp_path / "d"
    data.mkdir()
    contents = {"a.csv": b"p,q\n1,2\n", "b.csv": b"p,q\n3,4\n5,6\n"}
    for name, content in contents.items():
        (data / name).write_bytes(content)
    added = runner.invoke(app, ["datasets", "add", "tab", str(data), "-p", PROJECT, "--json"])
    assert added.exit_code == 0, added.output
    a, b = (hashlib.sha256(c).hexdigest() for c in contents.values())
    for digest in (a, b):
        assert wait_terminal(db, digest)["status"] == "done"
    # ``seen``: a worker gave the lease back on a transient error and its redelivery was
    # lost. (The function's own sweep, woken by the manifest's upload, takes only expired
    # ``processing`` leases, so it cannot race this command.)
    leave_as_a_killed_worker_would(db, b, status="seen")

    result = runner.invoke(
        app, ["datasets", "reprofile", "tab", "--stuck", "-p", PROJECT, "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 2
    assert [(r["sha256"], r["status"]) for r in report["reprofiled"]] == [(b, "done")]
    doc = wait_for_document(db, layout.file(PROJECT, b), lambda d: d.get("status") == "done")
    assert doc["rows"] == 2 and doc["attempts"] == 2
    assert db.document(layout.file(PROJECT, a)).get().get("attempts") == 1

    # Without --stuck every file is profiled again (a newer profiler, a fixed bug).
    again = runner.invoke(app, ["datasets", "reprofile", "tab", "-p", PROJECT, "--json"])
    assert again.exit_code == 0, again.output
    statuses = {r["sha256"]: r["status"] for r in json.loads(again.stdout)["reprofiled"]}
    assert statuses == {a: "done", b: "done"}
    assert db.document(layout.file(PROJECT, a)).get().get("attempts") == 2


def test_reprofile_stuck_goes_through_the_deployed_function(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path, monkeypatch
) -> None:
    """The command re-sends the bucket's event; the function, not the command, profiles."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    contents = {"a.csv": b"p,q\n1,2\n", "b.csv": b"p,q\n3,4\n5,6\n7,8\n"}
    for name, content in contents.items():
        (data / name).write_bytes(content)
    delivered = _delivered(stack)
    added = runner.invoke(app, ["datasets", "add", "fn", str(data), "-p", PROJECT, "--json"])
    assert added.exit_code == 0, added.output
    a, b = (hashlib.sha256(c).hexdigest() for c in contents.values())
    for digest in (a, b):
        assert wait_terminal(db, digest)["status"] == "done"
    # Every event of the add handled (and the sweep after each done): none can sweep b.
    objects = len(list(gcs.bucket(stack.bucket).list_blobs()))
    wait_for(lambda: _delivered(stack) - delivered >= objects, what="the add's events")
    blob = gcs.bucket(stack.bucket).get_blob(layout.blob_name(PROJECT, b))
    before = blob.generation
    leave_as_a_killed_worker_would(db, b)  # processing, lease expired, no result

    result = runner.invoke(app, ["datasets", "reprofile", "fn", "--stuck", "-p", PROJECT, "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["sha256"], r["status"]) for r in report["reprofiled"]] == [(b, "done")]
    doc = db.document(layout.file(PROJECT, b)).get().to_dict() or {}
    assert doc["status"] == "done" and doc["rows"] == 3 and doc["attempts"] == 2
    # The event the function handled is the bucket's new one: a new generation of the
    # same bytes, finalized by the command's rewrite and delivered by the bucket's path.
    now = gcs.bucket(stack.bucket).get_blob(layout.blob_name(PROJECT, b))
    assert now.generation != before and doc["generation"] == str(now.generation)
    assert now.crc32c == blob.crc32c
    assert db.document(layout.file(PROJECT, a)).get().get("attempts") == 1


def _delivered(settings: config.Settings) -> int:
    """Events the local bridge delivered to the function so far."""
    return bridge_counters(settings)["delivered"]


def test_an_object_the_function_ignores_costs_it_no_firestore_request(
    stack: config.Settings,
) -> None:
    """The function's work is aletheia's data objects; the sweep of stale leases rides on
    their events. Every other object in the bucket (a sample or profile the function wrote
    itself, another tool's file) also ran the sweep's query over every project's Files:
    on the emulator a scan of them all, so a 10,000-object upload beside a large project
    kept the function busy for half an hour."""
    from aletheia.function import instance

    function = load_function()
    foreign = [
        "floor/data/part-0001.bin",  # another tool's file
        layout.sample_blob_name(PROJECT, "ab" * 32),  # what the function writes itself
        layout.profile_blob_name(PROJECT, "ab" * 32),
    ]

    with count_rpcs(instance.db()) as rpcs:
        for name in foreign:
            function.on_object_finalized(finalized(stack.bucket, name))

    assert sum(rpcs.values()) == 0, rpcs


def test_aletheias_own_bytes_cost_the_function_no_firestore_request(
    stack: config.Settings, gcs: storage.Client
) -> None:
    # A version's manifest, a run's diff, package list, snapshot and notebook are stored
    # by put_bytes. Each one's event used to cost the function a tenancy read and a
    # transaction, to record a "Files" entry saying it had no file name.
    from aletheia.function import instance

    members.ensure_project(instance.db(), PROJECT)
    function = load_function()
    info = BlobStore(gcs, stack.bucket, PROJECT).put_bytes(b'{"format": 1}', "application/json")
    name = layout.blob_name(PROJECT, info.sha256)
    resource = gcs.bucket(stack.bucket).get_blob(name)._properties

    with count_rpcs(instance.db()) as rpcs:
        function.on_object_finalized(finalized(stack.bucket, name, resource))

    assert sum(rpcs.values()) == 0, rpcs


@pytest.mark.parametrize(("every_s", "sweeps"), [(None, 1), ("0", 5)])
def test_an_instance_sweeps_at_most_once_a_minute(
    stack: config.Settings, monkeypatch: pytest.MonkeyPatch, every_s: str | None, sweeps: int
) -> None:
    """Each sweep is a query over every project's Files. After every data-file event, a
    10,000-file upload paid 10,000 of them (on the emulator each a scan of every Files
    document). An instance now sweeps once a minute at most (``ALETHEIA_SWEEP_EVERY_S``;
    ``0`` restores a sweep per event, as the test stack runs)."""
    from aletheia.function import instance

    if every_s is None:
        monkeypatch.delenv(leases.SWEEP_EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(leases.SWEEP_EVERY_ENV, every_s)
    function = load_function()
    # Data files of a project that does not exist: the function refuses each after one
    # read, so every query left is a sweep's.
    names = [layout.blob_name("nobody", f"{i:064x}") for i in range(5)]

    with count_rpcs(instance.db()) as rpcs:
        for name in names:
            function.on_object_finalized(finalized(stack.bucket, name))

    assert rpcs["run_query"] == sweeps, rpcs


def test_sweep_pacing_gives_one_slot_per_interval() -> None:
    now = [100.0]
    pacing = leases.SweepPacing(60.0, clock=lambda: now[0])
    assert pacing.claim()  # a fresh instance sweeps on its first event
    now[0] += 59.9
    assert not pacing.claim()
    now[0] += 0.1
    assert pacing.claim()
    assert not pacing.claim()


@pytest.mark.parametrize(("raw", "every_s"), [("15", 15.0), ("-1", 0.0), ("soon", 60.0)])
def test_sweep_pacing_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, every_s: float
) -> None:
    now = [0.0]
    monkeypatch.setenv(leases.SWEEP_EVERY_ENV, raw)
    pacing = leases.SweepPacing.from_env(clock=lambda: now[0])
    assert pacing.claim()
    now[0] = every_s * 0.99  # just short of the interval
    assert pacing.claim() is (every_s == 0.0)


def load_function() -> Any:
    """A fresh copy of the deployed entry points (``functions/main.py``), run in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "aletheia_function_main", Path(__file__).parents[1] / "functions" / "main.py"
    )
    assert spec is not None and spec.loader is not None
    function = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(function)
    return function


def finalized(bucket: str, name: str, resource: dict[str, Any] | None = None) -> Any:
    """The CloudEvent the bucket sends when ``name`` is finalized (``resource``: the object's
    resource, which the event carries; by default only its bucket and name)."""
    from cloudevents.http import CloudEvent

    attributes = {
        "type": "google.cloud.storage.object.v1.finalized",
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
    }
    return CloudEvent(attributes, resource or {"bucket": bucket, "name": name})
