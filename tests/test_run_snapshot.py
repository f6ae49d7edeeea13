"""A run keeps its untracked source files (bounded), as content-addressed blobs, on real repos."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from google.cloud import firestore, storage

from aletheia.cloud import config, layout
from aletheia.data import blobrefs
from aletheia.errors import ConfigError
from aletheia.tracking import snapshot
from aletheia.tracking.gitinfo import GitPolicyWarning
from aletheia.tracking.metastore import Metastore

from helpers import dataset_store, git_repo, wait_for_document

pytestmark = pytest.mark.filterwarnings(f"ignore::{GitPolicyWarning.__module__}.GitPolicyWarning")

PROJECT = "snap"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A committed repo with an ignored output dir, a dirty file and untracked files."""
    committed = {"train.py": "import helpers\nprint(helpers.LR)\n", ".gitignore": "out/\n"}
    repo = git_repo(tmp_path / "work", committed)
    (repo / "train.py").write_text("import helpers\nprint(helpers.LR * 2)\n")  # dirty
    (repo / "helpers.py").write_text("LR = 0.1\n")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "pkg" / "tool.sh").chmod(0o755)
    (repo / "big.bin").write_bytes(os.urandom(5000))  # over the 4 kB budget below
    (repo / "out").mkdir()
    (repo / "out" / "model.pt").write_bytes(b"ignored")
    return repo


def start(ms: Metastore, repo: Path, experiment: str = "e") -> dict:
    with ms.exper(experiment).start_run(repo_path=repo) as run:
        pass
    return ms.db.document(layout.run(PROJECT, experiment, run.id)).get().to_dict()


def test_untracked_files_are_kept_within_the_budget_and_skips_listed(
    stack: config.Settings, db: firestore.Client, repo: Path
) -> None:
    ms = Metastore(PROJECT, snapshot_max_bytes="4kB", flush_interval_s=0.2)
    doc = start(ms, repo)
    summary = doc["git"]["snapshot"]
    assert summary["files"] == 2 and summary["max_bytes"] == 4096
    assert summary["skipped"] == [
        {"path": "big.bin", "size": 5000, "reason": "over the 4096-byte snapshot budget"}
    ]
    manifest = ms.blobstore.get_bytes(doc["git"]["snapshot_ref"]["sha256"])
    files = {e["path"]: e for e in snapshot.decode_manifest(manifest)}
    assert sorted(files) == ["helpers.py", "pkg/tool.sh"]  # out/ is ignored, big.bin skipped
    assert files["pkg/tool.sh"]["mode"] == "755" and files["helpers.py"]["mode"] == "644"
    assert ms.blobstore.get_bytes(files["helpers.py"]["sha256"]) == b"LR = 0.1\n"
    # The diff is there too (the dirty tracked file), and gc knows the run holds every blob.
    assert doc["git"]["diff_ref"]["sha256"]
    for entry in files.values():
        assert "run:e/" in " ".join(blobrefs.holders(db, PROJECT, entry["sha256"]))
    assert blobrefs.holders(db, PROJECT, doc["git"]["snapshot_ref"]["sha256"])


def test_an_unchanged_tree_stores_nothing_new(stack: config.Settings, repo: Path) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    first = start(ms, repo, "again")
    before = ms.blobstore.stats.snapshot()
    second = start(ms, repo, "again")
    after = ms.blobstore.stats.snapshot()
    assert second["git"]["snapshot_ref"] == first["git"]["snapshot_ref"]
    # Not one byte of code stored again. (The environment's lists may differ: the first
    # run's uploads imported more of the storage library before the second run started.)
    env_changed = sum(
        first["env"][ref] != second["env"][ref] for ref in ("packages_ref", "distributions_ref")
    )
    assert after["uploads"] - before["uploads"] == env_changed
    assert second["git"]["snapshot"]["files"] == 3  # big.bin fits the default 10 MB
    (repo / "helpers.py").write_text("LR = 0.2\n")
    third = start(ms, repo, "again")
    assert third["git"]["snapshot_ref"] != first["git"]["snapshot_ref"]
    # Only the changed file and the new manifest went up.
    assert ms.blobstore.stats.uploads - after["uploads"] == 2


def test_off_policy_and_zero_budget_keep_nothing(stack: config.Settings, repo: Path) -> None:
    ms = Metastore(PROJECT, snapshot_max_bytes="0", flush_interval_s=0.2)
    assert start(ms, repo, "zero")["git"]["snapshot_ref"] is None
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    with ms.exper("off", git_policy="off").start_run(repo_path=repo) as run:
        pass
    doc = ms.db.document(layout.run(PROJECT, "off", run.id)).get().to_dict()
    assert doc["git"]["snapshot_ref"] is None and doc["git"]["dirty"] is True


def test_a_bad_budget_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="snapshot_max_bytes"):
        config.resolve({"snapshot_max_bytes": "lots"})
    assert config.resolve({"snapshot_max_bytes": "3MB"}).snapshot_max_bytes == 3 << 20


def test_manifest_is_deterministic_and_smallest_files_first(repo: Path) -> None:
    # A name that is not UTF-8 (Firestore cannot hold it): bytes, decoded as Python does.
    (repo / os.fsdecode(b"bad\xff.py")).write_bytes(b"x = 1\n")
    snap = snapshot.capture(repo, max_bytes=100)
    assert [f.path for f in snap.files] == ["helpers.py", "pkg/tool.sh"]
    assert {"path": "bad\ufffd.py", "size": None, "reason": "its name is not valid UTF-8"} in (
        snap.summary()["skipped"]
    )
    again = snapshot.capture(repo, max_bytes=100)
    assert hashlib.sha256(snap.manifest()).digest() == hashlib.sha256(again.manifest()).digest()
    assert json.loads(snap.manifest())["format"] == snapshot.MANIFEST_FORMAT


def test_a_run_started_in_jupyter_keeps_its_notebook(
    stack: config.Settings, db: firestore.Client, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = repo / "explore.ipynb"
    content = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    notebook.write_text(content)
    # What Jupyter Server puts in the environment of the kernel it starts for a notebook.
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    doc = start(ms, repo, "nb")
    assert doc["notebook"]["path"] == str(notebook.resolve())
    ref = doc["notebook"]["content_ref"]["sha256"]
    assert ms.blobstore.get_bytes(ref) == content.encode()
    holders = blobrefs.holders(db, PROJECT, ref)
    assert f"run:nb/{doc['run']}:notebook.content_ref" in holders  # and as an untracked file
    monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "gone.ipynb"))  # no such file: no claim
    assert "notebook" not in start(ms, repo, "nb")


def test_a_csv_a_run_kept_and_then_added_as_data_is_profiled(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    repo: Path,
    cache_dir: Path,
) -> None:
    # The run's snapshot stores an untracked CSV first, under its digest and without a
    # name (the function could tell no format: "unsupported"). The add that follows finds
    # the bytes stored and uploads nothing, so no event came to profile them, and the
    # dataset's file was never profiled.
    data = repo / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    start(Metastore(PROJECT, flush_interval_s=0.2), repo)
    sha = hashlib.sha256((data / "train.csv").read_bytes()).hexdigest()
    assert stored(gcs, stack, sha)  # kept by the snapshot

    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    version = store.add("train", data, lock=False).version
    record = wait_for_document(
        db, layout.file(PROJECT, sha), lambda d: d.get("status") in ("done", "failed")
    )
    assert record["status"] == "done" and record["path"] == "train.csv"
    assert record["reason"] is None  # not the nameless verdict's
    assert record["rows"] == 50
    merged = wait_for_document(
        db,
        layout.dataset_version(PROJECT, "train", version),
        lambda d: (d.get("profile") or {}).get("files_merged") == 1,
        what="the version's profile with its table",
    )
    assert merged["profile"]["tables"][0]["rows"] == 50


def stored(gcs: storage.Client, settings: config.Settings, sha: str) -> bool:
    """Whether the project's bucket holds these bytes."""
    return gcs.bucket(settings.bucket).blob(layout.blob_name(PROJECT, sha)).exists()
