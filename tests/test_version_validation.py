"""A version's validation is recorded where its data is written, never by a reader.

Signed-in users go through the real Auth emulator and Firestore enforcing
``firestore.rules``; the storage function is the real one behind the bucket.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage
from test_auth import as_user, rules_stack, uid_of  # noqa: F401  (rules_stack is a fixture)
from test_drift_versions import _write
from test_function_profiling import PROJECT, wait_terminal
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import clients, config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.stats import versioncheck

from helpers import GENEROUS_S, wait_for

runner = CliRunner()


def _store(settings: config.Settings, gcs: storage.Client, cache: Path) -> DatasetStore:
    return DatasetStore(
        clients.firestore_client(settings),
        BlobStore(gcs, settings.bucket, PROJECT),
        LocalCache(cache),
        PROJECT,
    )


def _profiled(store: DatasetStore, db: firestore.Client, name: str, version: str) -> None:
    for entry in store.manifest(name, version).values():
        assert wait_terminal(db, entry.sha256)["status"] == "done"


def _version(db: firestore.Client, version: str) -> dict[str, Any]:
    return db.document(layout.dataset_version(PROJECT, "clicks", version)).get().to_dict() or {}


def _update_times(db: firestore.Client) -> dict[str, Any]:
    """Every document of the project with its last update time (server credentials)."""
    out: dict[str, Any] = {}

    def walk(ref: Any) -> None:
        snap = ref.get()
        if snap.exists:
            out[ref.path] = snap.update_time
        for sub in ref.collections():
            for child in sub.list_documents():
                walk(child)

    walk(db.document(layout.project(PROJECT)))
    return out


def test_the_commit_records_the_validation_when_every_file_is_already_profiled(
    rules_stack: config.Settings,  # noqa: F811
    gcs: storage.Client,
    db: firestore.Client,
    tmp_path: Path,
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    members.create_project(db, PROJECT, "owner-uid")
    members.add_member(db, PROJECT, uid_of(ana), "writer")
    store = _store(ana, gcs, tmp_path / "cache")
    v1 = store.add("clicks", _write(tmp_path / "v1", seed=1), lock=False).version
    _profiled(store, db, "clicks", v1)
    shifted = _write(tmp_path / "v2", seed=3, shift=6.0, extra=True)
    # The same bytes, profiled before they become a version of clicks.
    staged = store.add("staging", shifted, lock=False).version
    _profiled(store, db, "staging", staged)

    v2 = store.add("clicks", shifted, lock=False).version

    validation = _version(db, v2).get("validation")  # at once: nothing else will write it
    assert validation is not None and validation["parent"] == v1
    found = validation["files"]["train.csv"]["anomalies"]
    assert {(a["kind"], a["column"]) for a in found} == {("new_column", "score"), ("drift", "age")}


def test_the_function_records_the_validation_when_the_last_file_is_profiled(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client, tmp_path: Path
) -> None:
    store = _store(stack, gcs, tmp_path / "cache")
    store.add("clicks", _write(tmp_path / "v1", seed=1), lock=False)
    v2 = store.add("clicks", _write(tmp_path / "v2", seed=2), lock=False).version

    validation = wait_for(lambda: _version(db, v2).get("validation"), what="validation of v2")

    assert validation["ok"] is True and validation["files_compared"] == 1


def test_recording_twice_writes_once(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client, tmp_path: Path
) -> None:
    store = _store(stack, gcs, tmp_path / "cache")
    v1 = store.add("clicks", _write(tmp_path / "v1", seed=1), lock=False).version
    v2 = store.add("clicks", _write(tmp_path / "v2", seed=2, extra=True), lock=False).version
    _profiled(store, db, "clicks", v1)
    _profiled(store, db, "clicks", v2)
    first = wait_for(lambda: _version(db, v2).get("validation"), what="validation")
    ref = db.document(layout.dataset_version(PROJECT, "clicks", v2))
    stamp = ref.get().update_time

    again = versioncheck.record(db, PROJECT, "clicks", v2, store.manifest)

    assert again is not None and again["anomalies"] == first["anomalies"] == 1
    assert ref.get().update_time == stamp


def test_writers_racing_to_record_it_all_get_the_one_validation(
    rules_stack: config.Settings,  # noqa: F811
    gcs: storage.Client,
    db: firestore.Client,
    tmp_path: Path,
) -> None:
    members.create_project(db, PROJECT, "owner-uid")
    store = _store(rules_stack, gcs, tmp_path / "cache")
    store.add("clicks", _write(tmp_path / "v1", seed=1), lock=False)
    v2 = store.add("clicks", _write(tmp_path / "v2", seed=2, extra=True), lock=False).version
    wait_for(lambda: _version(db, v2).get("validation"), what="validation")
    ref = db.document(layout.dataset_version(PROJECT, "clicks", v2))
    ref.update({"validation": firestore.DELETE_FIELD})
    racers = []
    for k in range(3):
        user = as_user(rules_stack, tmp_path, f"w{k}@example.com")
        members.add_member(db, PROJECT, uid_of(user), "writer")
        racers.append(_store(user, gcs, tmp_path / f"cache{k}"))
    # Everyone has read the version without a validation before anyone writes one.
    barrier = threading.Barrier(len(racers))

    def race(racer: DatasetStore) -> dict[str, Any] | None:
        def manifest(name: str, version: str) -> Any:
            found = racer.manifest(name, version)
            if version == v2:
                barrier.wait(timeout=GENEROUS_S)
            return found

        return versioncheck.record(racer.db, PROJECT, "clicks", v2, manifest)

    with ThreadPoolExecutor(len(racers)) as pool:
        results = list(pool.map(race, racers))

    assert all(r is not None and r["anomalies"] == 1 for r in results), results
    assert ref.get().to_dict()["validation"]["anomalies"] == 1


@pytest.mark.parametrize("role", ["viewer", "writer"])
def test_read_commands_of_a_signed_in_member_write_nothing(
    rules_stack: config.Settings,  # noqa: F811
    gcs: storage.Client,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    role: str,
) -> None:
    members.create_project(db, PROJECT, "owner-uid")
    store = _store(rules_stack, gcs, tmp_path / "cache")
    v1 = store.add("clicks", _write(tmp_path / "v1", seed=1), lock=False).version
    v2 = store.add("clicks", _write(tmp_path / "v2", seed=3, shift=6.0), lock=False).version
    _profiled(store, db, "clicks", v1)
    _profiled(store, db, "clicks", v2)
    # A version whose validation is not recorded (yet, or from before it existed).
    wait_for(lambda: _version(db, v2).get("validation"), what="validation")
    db.document(layout.dataset_version(PROJECT, "clicks", v2)).update(
        {"validation": firestore.DELETE_FIELD}
    )
    reader = as_user(rules_stack, tmp_path, "vic@example.com")
    members.add_member(db, PROJECT, uid_of(reader), role)
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(reader.user_credentials))
    before = _update_times(db)

    commands = [["show", "clicks"], ["stats", "clicks"], ["show", "clicks", "--json"]]
    results = [runner.invoke(app, ["datasets", *args, "-p", PROJECT]) for args in commands]

    for args, result in zip(commands, results, strict=True):
        assert result.exit_code == 0, (args, result.output)
    assert _update_times(db) == before
    for args, result in zip(commands, results, strict=True):
        assert "anomalies" in result.stdout, args  # computed for display: drift in age
    assert '"recorded": false' in results[2].stdout
