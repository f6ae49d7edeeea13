"""Artifacts: versioned per save, files/directories/remote URIs, through content-addressed blobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_datasets import make_tree
from typer.testing import CliRunner

from aletheia import Metastore
from aletheia.cli import app
from aletheia.cloud import layout
from aletheia.data.artifacts import ArtifactStore, add_artifact
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.errors import IntegrityError, NotFoundError, ValidationError

P, E = "p1", "exp"
runner = CliRunner()


@pytest.fixture()
def blobs(stack, gcs) -> BlobStore:
    return BlobStore(gcs, stack.bucket, P)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_each_fold_keeps_its_own_artifact_version(stack, db, tmp_path: Path) -> None:
    """Seed 001: the model saved by fold 1 must not be replaced by fold 2's."""
    ms = Metastore(P, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "cache")
    exper = ms.exper(E, git_policy="off")
    saved = {}
    for fold in (1, 2):
        out = make_tree(tmp_path / f"out{fold}", {"model.pt": f"weights {fold}".encode()})
        with exper.start_run(fold=fold) as run:
            record = run.add_artifact("model", out / "model.pt")
            assert (record["version"], record["run"]) == (f"v{fold}", run.id)
            mine = run.get_artifact("model")  # before the background flush
            assert (mine.version, mine.run) == (f"v{fold}", run.id)
        saved[fold] = run

    for fold, run in saved.items():
        doc = db.document(layout.run(P, E, run.id)).get().to_dict()
        assert doc["artifacts"] == [{"name": "model", "version": f"v{fold}"}]
        got = run.get_artifact("model")
        assert got.run == run.id and [f.sha256 for f in got.files] == [
            sha(f"weights {fold}".encode())
        ]
        where = got.download(tmp_path / f"back{fold}")
        assert (where / "model.pt").read_bytes() == f"weights {fold}".encode()

    art = db.document(layout.artifact(P, E, "model")).get().to_dict()
    assert (art["latest_version"], art["version_count"], art["run"]) == ("v2", 2, saved[2].id)
    assert exper.get_artifact("model").version == "v2"
    assert exper.get_artifact("model", version="v1").run == saved[1].id
    with pytest.raises(NotFoundError, match="v2"):
        saved[1].get_artifact("model", version="v2")  # v2 is not run 1's


def test_a_run_saving_twice_lists_both_versions(stack, db, tmp_path: Path) -> None:
    ms = Metastore(P, flush_interval_s=0.2)
    exper = ms.exper(E, git_policy="off")
    with exper.start_run() as run:
        f = make_tree(tmp_path, {"ckpt.bin": b"epoch 1"}) / "ckpt.bin"
        run.add_artifact("ckpt", f)
        f.write_bytes(b"epoch 2")
        exper.add_artifact("ckpt", f)  # the experiment's active run saves it
        assert run.get_artifact("ckpt").version == "v2"
        assert run.get_artifact("ckpt", version="v1").files[0].sha256 == sha(b"epoch 1")
    doc = db.document(layout.run(P, E, run.id)).get().to_dict()
    assert doc["artifacts"] == [
        {"name": "ckpt", "version": "v1"},
        {"name": "ckpt", "version": "v2"},
    ]
    # outside a run: an experiment-level version with no run
    loose = exper.add_artifact("ckpt", f)
    assert (loose["version"], loose["run"]) == ("v3", None)
    # a run that has ended still lists what it saves afterwards
    assert run.add_artifact("notes", f)["version"] == "v1"
    doc = db.document(layout.run(P, E, run.id)).get().to_dict()
    assert doc["artifacts"][-1] == {"name": "notes", "version": "v1"} and len(doc["artifacts"]) == 3


def test_directory_artifact_is_uploaded_once_and_versioned(stack, db, blobs, tmp_path):
    out = make_tree(tmp_path / "out", {"model.pt": b"weights", "plots/loss.png": b"png"})
    doc = add_artifact(db, blobs, P, E, "model", out, run_id="3", is_dir=True)
    assert (doc["kind"], doc["is_dir"], doc["run"], doc["version"]) == ("dir", True, "3", "v1")
    assert {f["path"] for f in doc["files"]} == {"model.pt", "plots/loss.png"}
    assert blobs.exists(sha(b"png"))
    assert blobs.stats.uploads == 3  # two files and the manifest

    (out / "plots" / "loss.png").unlink()
    again = add_artifact(
        db, blobs, P, E, "model", out, run_id="4", is_dir=True, cache=LocalCache(tmp_path / "c")
    )
    assert (again["version"], again["run"]) == ("v2", "4")
    assert blobs.stats.uploads == 4  # only the new manifest: the weights are stored already
    store = ArtifactStore(db, blobs, LocalCache(tmp_path / "c2"), P)
    v1, v2 = store.versions(E, "model")
    assert (v1["run"], v1["file_count"], v2["run"], v2["file_count"]) == ("3", 2, "4", 1)
    first = store.get(E, "model", "v1")  # nothing earlier is unreachable
    assert [f.path for f in first.files] == ["model.pt", "plots/loss.png"]
    back = first.download(tmp_path / "v1")
    assert (back / "plots" / "loss.png").read_bytes() == b"png"


def test_download_is_verified_through_the_cache(stack, db, blobs, tmp_path):
    f = make_tree(tmp_path, {"w.bin": b"good bytes"}) / "w.bin"
    add_artifact(db, blobs, P, E, "w", f, run_id="1")
    cache = LocalCache(tmp_path / "cache")
    got = ArtifactStore(db, blobs, cache, P).get(E, "w")
    got.download(tmp_path / "a")
    cache.path(sha(b"good bytes")).chmod(0o644)
    cache.path(sha(b"good bytes")).write_bytes(b"evil bytes")  # corrupted on disk
    assert (got.download(tmp_path / "b") / "w.bin").read_bytes() == b"good bytes"
    # bytes in the bucket that do not match the manifest are refused
    blobs._blob(sha(b"good bytes")).upload_from_string(b"tampered!!")
    with pytest.raises(IntegrityError):
        ArtifactStore(db, blobs, LocalCache(tmp_path / "fresh"), P).get(E, "w").download(
            tmp_path / "c"
        )


def test_record_without_upload_and_remote_uri(stack, db, blobs, tmp_path):
    f = make_tree(tmp_path, {"metrics.json": b"{}"}) / "metrics.json"
    doc = add_artifact(db, blobs, P, E, "metrics", f, run_id="1", upload_file=False)
    assert doc["files"][0]["blob"] is None and not blobs.exists(sha(b"{}"))
    store = ArtifactStore(db, blobs, LocalCache(tmp_path / "c"), P)
    with pytest.raises(NotFoundError, match="upload_file=False"):
        store.get(E, "metrics").download(tmp_path / "x")
    remote = add_artifact(
        db, blobs, P, E, "ckpt", "gs://elsewhere/ckpt/", run_id="1", is_local=False, is_dir=True
    )
    assert remote["kind"] == "remote" and remote["uri"] == "gs://elsewhere/ckpt/"
    got = store.get(E, "ckpt")
    assert got.uri == "gs://elsewhere/ckpt/" and got.files == []
    with pytest.raises(ValidationError, match="gs://elsewhere/ckpt/"):
        got.download(tmp_path / "y")


def test_bad_artifact_input(stack, db, blobs, tmp_path):
    with pytest.raises(ValidationError, match="is_dir=True"):
        add_artifact(db, blobs, P, E, "x", tmp_path, run_id="1")
    with pytest.raises(ValidationError):
        add_artifact(db, blobs, P, E, "../x", tmp_path, run_id="1", is_dir=True)
    with pytest.raises(ValidationError, match="not a URI"):
        add_artifact(db, blobs, P, E, "x", "some/path", run_id="1", is_local=False)
    assert list(db.collection(layout.artifacts(P, E)).stream()) == []
    store = ArtifactStore(db, blobs, LocalCache(tmp_path / "c"), P)
    with pytest.raises(NotFoundError, match="artifacts list"):
        store.get(E, "ghost")


def cli(*args: str) -> dict | list:
    result = runner.invoke(app, ["artifacts", *args, "-p", P, "-e", E, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_list_versions_show_pull(stack, db, blobs, tmp_path):
    out = make_tree(tmp_path / "out", {"model.pt": b"one", "cfg/a.yaml": b"lr: 1"})
    add_artifact(db, blobs, P, E, "model", out, run_id="1", is_dir=True)
    make_tree(out, {"model.pt": b"two"})
    add_artifact(db, blobs, P, E, "model", out, run_id="2", is_dir=True)

    (listed,) = cli("list")
    assert (listed["name"], listed["latest_version"], listed["run"]) == ("model", "v2", "2")
    assert [(v["version"], v["run"]) for v in cli("versions", "model")] == [
        ("v1", "1"),
        ("v2", "2"),
    ]
    shown = cli("show", "model", "--run", "1")
    assert shown["version"] == "v1" and {f["path"] for f in shown["files"]} == {
        "model.pt",
        "cfg/a.yaml",
    }
    pulled = cli("pull", "model", "--version", "v1", "--to", str(tmp_path / "got"))
    assert pulled["version"] == "v1"
    assert (tmp_path / "got" / "model.pt").read_bytes() == b"one"

    text = runner.invoke(app, ["artifacts", "show", "model", "-p", P, "-e", E])
    assert text.exit_code == 0 and "v2" in text.stdout and "model.pt" in text.stdout
    missing = runner.invoke(app, ["artifacts", "show", "model", "-v", "v9", "-p", P, "-e", E])
    assert missing.exit_code == 5 and "hint" in missing.output
    helped = runner.invoke(app, ["artifacts", "pull", "--help"])
    assert "--to" in helped.stdout and "--experiment" in helped.stdout


def test_concurrent_saves_get_distinct_versions(stack, db, gcs, tmp_path):
    """Folds trained in parallel save the same artifact name at once: nothing is overwritten."""
    from concurrent.futures import ThreadPoolExecutor

    def save(fold: int) -> str:
        f = make_tree(tmp_path / str(fold), {"model.pt": f"fold {fold}".encode()}) / "model.pt"
        store = ArtifactStore(db, BlobStore(gcs, stack.bucket, P), None, P)
        return str(store.add(E, "model", f, run_id=str(fold))["version"])

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(save, range(1, 9)))
    assert sorted(versions, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 9)]
    store = ArtifactStore(db, BlobStore(gcs, stack.bucket, P), LocalCache(tmp_path / "c"), P)
    for fold, version in zip(range(1, 9), versions, strict=True):
        got = store.get(E, "model", run=str(fold))
        assert got.version == version and got.files[0].sha256 == sha(f"fold {fold}".encode())
    assert db.document(layout.artifact(P, E, "model")).get().get("version_count") == 8


def test_an_artifact_saved_before_versions_stays_reachable(stack, db, blobs, tmp_path):
    """Projects from before versioning: `latest_version` was a counter and files/ the last save."""
    info = blobs.put_bytes(b"old weights")
    db.document(layout.artifact(P, E, "model")).set(
        {
            "name": "model",
            "kind": "file",
            "is_dir": False,
            "uploaded": True,
            "run": "7",
            "latest_version": 2,
        }
    )
    db.document(layout.artifact_file(P, E, "model", "w.bin")).set(
        {"path": "w.bin", "sha256": info.sha256, "size": info.size, "blob": info.uri, "run": "7"}
    )
    store = ArtifactStore(db, blobs, LocalCache(tmp_path / "c"), P)
    old = store.get(E, "model")
    assert (old.version, old.run, [f.path for f in old.files]) == ("v2", "7", ["w.bin"])
    assert store.list_artifacts(E)[0]["latest_version"] == "v2"

    f = make_tree(tmp_path, {"w.bin": b"new weights"}) / "w.bin"
    assert store.add(E, "model", f, run_id="8")["version"] == "v3"
    assert [(v["version"], v["run"]) for v in store.versions(E, "model")] == [
        ("v2", "7"),
        ("v3", "8"),
    ]
    back = store.get(E, "model", "v2", run="7").download(tmp_path / "old")
    assert (back / "w.bin").read_bytes() == b"old weights"
