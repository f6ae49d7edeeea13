"""``datasets rm`` and the blob reference registry: nothing a run or another holder uses is lost."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
from test_datasets import make_tree, sha, store_for
from typer.testing import CliRunner

from aletheia import Metastore
from aletheia.cli import app
from aletheia.cloud import layout
from aletheia.data import blobrefs
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.data.lineage import dataset_versions_with_file, runs_using_dataset
from aletheia.errors import ConflictError
from aletheia.integrations.mlflow.artifacts import AletheiaArtifactRepository

from helpers import count_rpcs

P = "p1"
runner = CliRunner()


@pytest.fixture()
def store(stack, db, gcs, cache_dir, tmp_path) -> DatasetStore:
    return store_for(db, gcs, stack, cache_dir, workdir=tmp_path)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_rm_refuses_a_version_a_recorded_run_used(store, tmp_path, monkeypatch):
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n"})
    store.add("ds", data)
    ms = Metastore(P, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "c")
    with ms.exper("train", git_policy="off").start_run() as run:
        run.get_dataset("ds")

    with pytest.raises(ConflictError, match="--force") as refused:
        store.remove_version("ds", "v1")
    assert "train/1" in str(refused.value)
    assert [v["version"] for v in store.versions("ds")] == ["v1"]
    assert store.blobs.exists(sha(b"x\n1\n"))

    monkeypatch.chdir(tmp_path)
    cli = runner.invoke(app, ["datasets", "rm", "ds", "--version", "v1", "-p", P])
    assert cli.exit_code == ConflictError.exit_code
    assert "train/1" in cli.output and "--force" in cli.output
    forced = runner.invoke(app, ["datasets", "rm", "ds", "--version", "v1", "--force", "-p", P])
    assert forced.exit_code == 0, forced.output
    assert "2 blobs deleted, 0 kept" in forced.stdout and "train/1" in forced.stdout
    assert store.versions("ds") == [] and not store.blobs.exists(sha(b"x\n1\n"))


def test_rm_never_deletes_a_blob_anything_else_references(store, db, gcs, stack, tmp_path):
    """Dataset bytes identical to a run's diff and package list, an MLflow artifact file,
    an artifact version and another dataset's file all survive ``rm``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(
        repo,
        "-c",
        "user.email=t@e",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "0",
    )
    (repo / "train.py").write_text("print(1)\n")  # untracked: a dirty tree with a diff
    git(repo, "add", "train.py")
    ms = Metastore(P, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ms.exper("exp", git_policy="warn").start_run(repo_path=repo)
    with run:
        model = make_tree(tmp_path / "m", {"model.pt": b"artifact bytes"})
        run.add_artifact("model", model / "model.pt")
    git_doc, env_doc = run.fields["git"], run.fields["env"]
    diff = store.blobs.get_bytes(git_doc["diff_ref"]["sha256"])
    packages = store.blobs.get_bytes(env_doc["packages_ref"]["sha256"])
    logged = make_tree(tmp_path / "l", {"report.txt": b"mlflow bytes"})
    AletheiaArtifactRepository(f"aletheia-art://{P}/exp/{run.id}").log_artifact(
        str(logged / "report.txt")
    )
    store.add("other", make_tree(tmp_path / "o", {"shared.csv": b"shared\n"}))

    held = {
        "diff.patch": diff,
        "requirements.txt": packages,
        "report.txt": b"mlflow bytes",
        "model.pt": b"artifact bytes",
        "shared.csv": b"shared\n",
    }
    data = make_tree(tmp_path / "d", {**held, "own.bin": b"only here"})
    store.add("ds", data)
    manifest = store.latest_version("ds")["manifest_sha256"]
    assert blobrefs.holders(db, P, sha(b"artifact bytes")) == ["artifact:exp/model", "dataset:ds"]

    result = store.remove_version("ds", "v1")
    for name, content in held.items():
        assert store.blobs.exists(sha(content)), f"{name} was deleted"
    assert not store.blobs.exists(sha(b"only here")) and not store.blobs.exists(manifest)
    assert (result.blobs_deleted, result.blobs_kept, result.blobs_unregistered) == (2, 5, 0)
    # ds no longer holds what it kept; the others still do
    assert blobrefs.holders(db, P, sha(b"shared\n")) == ["dataset:other"]
    assert not db.document(layout.blob_record(P, sha(b"only here"))).get().exists
    # what is kept can still be read by its holders
    assert run.get_artifact("model").download(tmp_path / "back").joinpath("model.pt").exists()


def test_rm_counts_every_blob_once(store, tmp_path):
    """Today a version of two files printed "3 deleted, -1 kept"."""
    data = make_tree(tmp_path / "d", {"a": b"1", "b": b"2", "c": b"2"})
    store.add("ds", data)
    result = store.remove_version("ds", "v1")
    assert (result.blobs_deleted, result.blobs_kept) == (3, 0)  # two contents + the manifest

    store.add("ds", data)
    make_tree(data, {"d": b"4"})
    newer = store.add("ds", data).version
    second = store.remove_version("ds", newer)  # shares 1 and 2 with its parent
    assert (second.blobs_deleted, second.blobs_kept) == (2, 2)


def _populate(db, gcs, settings, tmp_path: Path, project: str, others: int) -> DatasetStore:
    blobs = BlobStore(gcs, settings.bucket, project)
    store = DatasetStore(db, blobs, LocalCache(tmp_path / project), project, workdir=tmp_path)
    data = make_tree(
        tmp_path / project / "t", {f"f{i}": f"{project} {i}".encode() for i in range(5)}
    )
    store.add("target", data)
    make_tree(data, {"f0": b"changed", "f9": b"new"})
    store.add("target", data)
    for d in range(others):
        files = {f"x{i}": f"{project} {d} {i}".encode() for i in range(20)}
        files["common"] = f"{project} 0".encode()  # also in target v1
        root = make_tree(tmp_path / project / f"o{d}", files)
        for v in range(3):
            make_tree(root, {"x0": f"{d} {v}".encode()})
            store.add(f"other{d}", root)
    return store


def test_rm_cost_does_not_grow_with_datasets_versions_or_files(stack, db, gcs, tmp_path):
    small = _populate(db, gcs, stack, tmp_path, "small", others=1)
    big = _populate(db, gcs, stack, tmp_path, "big", others=6)
    with count_rpcs(db) as few:
        small.remove_version("target", "v2")
    with count_rpcs(db) as many:
        big.remove_version("target", "v2")
    assert many == few
    reads = few["batch_get_documents"] + few["run_query"]
    assert reads <= 6 and few["commit"] <= 4, few


def test_blobs_without_a_registry_entry_are_kept(store, db, tmp_path):
    """Projects from before the registry: nothing is known about their blobs, so rm keeps them."""
    data = make_tree(tmp_path / "d", {"a": b"old 1", "b": b"old 2"})
    store.add("legacy", data)
    for snap in db.collection(layout.blobs(P)).stream():
        snap.reference.delete()
    result = store.remove_version("legacy", "v1")
    assert (result.blobs_deleted, result.blobs_kept, result.blobs_unregistered) == (0, 3, 3)
    assert store.blobs.exists(sha(b"old 1")) and store.blobs.exists(sha(b"old 2"))


def test_registry_writes_only_what_is_new(store, db, tmp_path):
    data = make_tree(tmp_path / "d", {f"f{i}": str(i).encode() for i in range(30)})
    store.add("ds", data)
    assert len(list(db.collection(layout.blobs(P)).stream())) == 31  # files + manifest
    before = store.blobs.stats.snapshot()
    with count_rpcs(db) as unchanged:
        store.add("ds", data)
    assert unchanged["commit"] == 0 and store.blobs.stats.snapshot() == before
    make_tree(data, {"f0": b"changed"})
    with count_rpcs(db) as one_change:
        store.add("ds", data)
    assert len(list(db.collection(layout.blobs(P)).stream())) == 33
    assert one_change["commit"] <= 4  # registry, version, files/ index, files_version mark


def test_backfill_registers_holders_recorded_before_the_registry(store, db, tmp_path):
    """An old project: a run's package list, an MLflow file and an artifact hold bytes a
    dataset version added later also holds. After `backfill-refs`, rm keeps them."""
    ms = Metastore(P, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "c")
    with ms.exper("exp", git_policy="off").start_run() as run:
        run.add_artifact("model", make_tree(tmp_path / "m", {"w.bin": b"old model"}) / "w.bin")
    packages = store.blobs.get_bytes(run.fields["env"]["packages_ref"]["sha256"])
    logged = make_tree(tmp_path / "l", {"r.txt": b"old mlflow"}) / "r.txt"
    AletheiaArtifactRepository(f"aletheia-art://{P}/exp/{run.id}").log_artifact(str(logged))
    db.recursive_delete(db.collection(layout.blobs(P)))  # as if recorded before the registry

    held = {"pkgs.txt": packages, "w.bin": b"old model", "r.txt": b"old mlflow"}
    store.add("ds", make_tree(tmp_path / "d", {**held, "own.bin": b"own"}))
    result = runner.invoke(app, ["datasets", "backfill-refs", "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    assert '"mlflow_files": 1' in result.stdout and '"artifacts": 1' in result.stdout

    removed = store.remove_version("ds", "v1")
    for name, content in held.items():
        assert store.blobs.exists(sha(content)), f"{name} was deleted"
    assert not store.blobs.exists(sha(b"own"))
    assert (removed.blobs_deleted, removed.blobs_kept) == (2, 3)


def test_documents_of_another_project_claiming_this_one_are_ignored(store, db, tmp_path):
    """A run and a ``files`` entry stored in Eve's project that name project ``p1`` (server
    credentials bypass the rules) neither join p1's lineage nor keep ``rm`` from deleting."""
    content = b"x\n7\n"
    store.add("ds", make_tree(tmp_path / "d", {"a.csv": content}))
    forged_run = layout.run("eve", "train", "1")
    db.document(forged_run).set(
        {"project": P, "experiment": "train", "status": "finished", "dataset_refs": ["ds@v1"]}
    )
    forged_file = layout.dataset_file("eve", "ds", "a.csv")
    entry = {"project": P, "kind": "dataset", "sha256": sha(content), "dataset": "ds"}
    db.document(forged_file).set(entry | {"path": "a.csv", "version": "v1"})

    assert runs_using_dataset(db, P, "ds", "v1") == []
    assert [e["dataset"] for e in dataset_versions_with_file(db, P, sha(content))] == ["ds"]

    result = store.remove_version("ds", "v1")
    assert result.runs == [] and result.blobs_deleted == 2
    assert not store.blobs.exists(sha(content))
