"""Copying a dataset to another project or bucket: server-side, versions and statistics kept."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from google.cloud import firestore, storage
from test_datasets import make_tree, sha
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.data import blobrefs
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.copy import copy_dataset
from aletheia.data.datasets import DatasetStore
from aletheia.data.scan import scan_tree
from aletheia.errors import AccessDeniedError, ConflictError, NotFoundError

from helpers import lose_a_commits_answer, wait_for_document

runner = CliRunner()

V1 = {"a.csv": b"x,y\n1,2\n3,4\n", "blob.bin": b"\x00\x01" * 100}
V2 = {"a.csv": b"x,y\n1,2\n3,5\n7,8\n", "blob.bin": b"\x00\x01" * 100, "c.csv": b"x,y\n9,9\n"}


def _store(
    db: firestore.Client,
    gcs: storage.Client,
    bucket: str,
    project: str,
    tmp_path: Path,
) -> DatasetStore:
    return DatasetStore(
        db,
        BlobStore(gcs, bucket, project),
        LocalCache(tmp_path / f"cache-{project}-{bucket}"),
        project,
        workdir=tmp_path,
    )


def _two_versions(store: DatasetStore, tmp_path: Path, name: str = "iris") -> Path:
    data = make_tree(tmp_path / "data", V1)
    store.add(name, data, desc="flowers")
    make_tree(data, V2)
    store.add(name, data)
    return data


def _files(root: Path) -> dict[str, bytes]:
    """The data files under ``root`` (aletheia's own pull state left out)."""
    return {rel: path.read_bytes() for rel, path in scan_tree(root)}


def _analysis(db: firestore.Client, project: str, data: bytes) -> dict:
    return wait_for_document(
        db,
        layout.file(project, sha(data)),
        lambda doc: doc.get("status") in ("done", "failed", "unsupported"),
        what=f"the storage function's analysis in {project}",
    )


def test_copy_every_version_to_another_project_keeps_bytes_versions_and_stats(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    source = _store(db, gcs, stack.bucket, "cp-src", tmp_path)
    _two_versions(source, tmp_path)
    target = _store(db, gcs, stack.bucket, "cp-dst", tmp_path)
    before = source.blobs.stats.snapshot()

    result = copy_dataset(source, target, "iris", all_versions=True)

    assert (result.copied, result.skipped) == (["v1", "v2"], [])
    contents = {sha(b) for b in (*V1.values(), *V2.values())}
    assert result.blobs_copied == len(contents) + 2  # each content once, plus two manifests
    assert target.blobs.stats.bytes_uploaded == 0  # nothing went through this machine
    # only the two manifests were read (to know the files), none of the data
    assert source.blobs.stats.downloads - before["downloads"] <= 2
    mine, theirs = source.versions("iris"), target.versions("iris")
    assert [v["version"] for v in theirs] == ["v1", "v2"]
    for a, b in zip(mine, theirs, strict=True):
        for key in ("seq", "manifest_sha256", "file_count", "total_bytes", "changes"):
            assert a[key] == b[key], key
        assert (
            b["copied_from"]["project"] == "cp-src" and b["copied_from"]["version"] == a["version"]
        )
        assert b["manifest_blob"].startswith(f"gs://{stack.bucket}/cp-dst/")
    assert theirs[1]["parent"] == "v1"
    info = target.info("iris")
    assert (info["latest_version"], info["version_count"], info["desc"]) == ("v2", 2, "flowers")
    for version, files in (("v1", V1), ("v2", V2)):
        got = target.get("iris", version, to=tmp_path / f"out-{version}")
        assert got.local_path is not None and _files(got.local_path) == files
    # the target's files/ index and blob registry name the copy
    assert sorted(target.index.shown("iris")) == sorted(V2)
    for digest in {sha(b) for b in V2.values()} | {theirs[1]["manifest_sha256"]}:
        assert blobrefs.holders(db, "cp-dst", digest) == [f"{blobrefs.DATASET}:iris"]

    # the storage function profiles the copies in the target as it did the originals
    for data in (V2["a.csv"], V2["c.csv"]):
        original, copy = _analysis(db, "cp-src", data), _analysis(db, "cp-dst", data)
        assert copy["status"] == original["status"] == "done"
        assert copy["rows"] == original["rows"] and copy["schema"] == original["schema"]

    again = copy_dataset(source, target, "iris", all_versions=True)
    assert (again.copied, again.skipped, again.blobs_copied) == ([], ["v1", "v2"], 0)


def test_copy_the_latest_to_another_bucket_under_a_new_name(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    source = _store(db, gcs, stack.bucket, "cp-b", tmp_path)
    _two_versions(source, tmp_path)
    other = gcs.create_bucket(f"aletheia-copy-{uuid.uuid4().hex[:12]}")
    target = _store(db, gcs, other.name, "cp-b", tmp_path)

    result = copy_dataset(source, target, "iris", new_name="iris-archive")

    assert (result.name, result.copied, result.bucket) == ("iris-archive", ["v2"], other.name)
    (only,) = target.versions("iris-archive")
    assert (only["version"], only["parent"]) == ("v2", None)  # v1 was not copied
    got = target.get("iris-archive", to=tmp_path / "out")
    assert got.local_path is not None and _files(got.local_path) == V2
    names = {b.name for b in gcs.list_blobs(other.name, prefix="cp-b/")}
    assert layout.blob_name("cp-b", sha(V2["c.csv"])) in names
    assert layout.blob_name("cp-b", sha(V1["a.csv"])) not in names  # only v2's bytes
    # the original is untouched
    assert [v["version"] for v in source.versions("iris")] == ["v1", "v2"]


def test_copy_into_a_project_squatted_by_a_user_is_refused(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    source = _store(db, gcs, stack.bucket, "cp-s", tmp_path)
    _two_versions(source, tmp_path)
    # A signed-in user registered the name first: not a project these credentials manage.
    db.document(layout.project("cp-squat")).set({"name": "cp-squat", "members": {"u-eve": "owner"}})
    target = _store(db, gcs, stack.bucket, "cp-squat", tmp_path)

    with pytest.raises(AccessDeniedError):
        copy_dataset(source, target, "iris", all_versions=True)

    assert [c.id for c in db.document(layout.project("cp-squat")).collections()] == []
    assert not list(gcs.list_blobs(stack.bucket, prefix="cp-squat/"))


def test_a_copy_stopped_midway_says_so_and_resumes(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    source = _store(db, gcs, stack.bucket, "cp-r", tmp_path)
    _two_versions(source, tmp_path)
    target = _store(db, gcs, stack.bucket, "cp-r2", tmp_path)
    lost = V2["c.csv"]  # only v2 holds it
    assert source.blobs.delete(sha(lost))

    with pytest.raises(NotFoundError, match=r"stopped at v2.*copied already: v1") as caught:
        copy_dataset(source, target, "iris", all_versions=True)
    assert "run the same copy again" in str(caught.value)
    assert [v["version"] for v in target.versions("iris")] == ["v1"]  # v2 not committed

    source.blobs.put_bytes(lost)  # the cause fixed
    resumed = copy_dataset(source, target, "iris", all_versions=True)
    assert (resumed.copied, resumed.skipped) == (["v2"], ["v1"])
    assert target.info("iris")["latest_version"] == "v2"
    got = target.get("iris", "v2", to=tmp_path / "out")
    assert got.local_path is not None and _files(got.local_path) == V2


def test_copy_refuses_to_overwrite_a_different_version(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    source = _store(db, gcs, stack.bucket, "cp-c", tmp_path)
    _two_versions(source, tmp_path)
    target = _store(db, gcs, stack.bucket, "cp-c2", tmp_path)
    target.add("iris", make_tree(tmp_path / "other", {"z.txt": b"not iris"}))

    with pytest.raises(ConflictError, match="--as"):
        copy_dataset(source, target, "iris", version="v1")
    assert [v["file_count"] for v in target.versions("iris")] == [1]


def test_datasets_copy_cli(stack: config.Settings, db: firestore.Client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = make_tree(tmp_path / "d", V1)
    assert runner.invoke(app, ["datasets", "add", "iris", str(data), "-p", "cp-cli"]).exit_code == 0
    out = runner.invoke(
        app, ["datasets", "copy", "iris", "-p", "cp-cli", "--to-project", "cp-cli2", "--json"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["copied"] == ["v1"]
    shown = runner.invoke(app, ["datasets", "show", "iris", "-p", "cp-cli2"])
    assert shown.exit_code == 0 and "copied from iris in project cp-cli" in shown.output
    same = runner.invoke(app, ["datasets", "copy", "iris", "-p", "cp-cli"])
    assert same.exit_code == 2 and "--to-project" in same.output


def test_a_copy_whose_version_answer_was_lost_copies_it_once(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The version's create lands and its answer is lost: the client library sends it
    # again, which found the version existing, and the copy failed with a raw
    # ALREADY_EXISTS on a version it had made.
    source = _store(db, gcs, stack.bucket, "cp-src", tmp_path)
    _two_versions(source, tmp_path)
    target = _store(db, gcs, stack.bucket, "cp-dst", tmp_path)
    lost = lose_a_commits_answer(target.db, monkeypatch, lambda p: p.endswith("/Versions/v1"))

    result = copy_dataset(source, target, "iris", all_versions=True)

    assert lost and result.copied == ["v1", "v2"]
    assert [v["version"] for v in target.versions("iris")] == ["v1", "v2"]
