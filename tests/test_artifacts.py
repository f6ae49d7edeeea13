"""Artifacts: files, directories and remote URIs, through the content-addressed blobs."""

from __future__ import annotations

import hashlib

import pytest
from test_datasets import make_tree

from aletheia import layout
from aletheia.artifacts import add_artifact
from aletheia.blobstore import BlobStore
from aletheia.cache import LocalCache
from aletheia.errors import ValidationError

P, E = "p1", "exp"


@pytest.fixture()
def blobs(stack, gcs) -> BlobStore:
    return BlobStore(gcs, stack.bucket, P)


def test_directory_artifact_is_uploaded_once_and_recorded(stack, db, blobs, tmp_path):
    out = make_tree(tmp_path / "out", {"model.pt": b"weights", "plots/loss.png": b"png"})
    doc = add_artifact(db, blobs, P, E, "model", out, run_id="3", is_dir=True)
    assert (doc["kind"], doc["is_dir"], doc["run"], doc["latest_version"]) == ("dir", True, "3", 1)
    entry = db.document(layout.artifact_file(P, E, "model", "plots/loss.png")).get().to_dict()
    digest = hashlib.sha256(b"png").hexdigest()
    assert entry["sha256"] == digest and entry["size"] == 3 and entry["run"] == "3"
    assert entry["blob"] == blobs.uri(digest) and blobs.exists(digest)
    assert blobs.stats.uploads == 2

    # the same bytes again from a later run: nothing uploaded, version bumped, stale entry gone
    (out / "plots" / "loss.png").unlink()
    again = add_artifact(
        db, blobs, P, E, "model", out, run_id="4", is_dir=True, cache=LocalCache(tmp_path / "c")
    )
    assert again["latest_version"] == 2 and again["run"] == "4"
    assert blobs.stats.uploads == 2
    names = [s.id for s in db.collection(layout.artifact_files(P, E, "model")).stream()]
    assert names == ["model.pt"]


def test_record_without_upload_and_remote_uri(stack, db, blobs, tmp_path):
    f = make_tree(tmp_path, {"metrics.json": b"{}"}) / "metrics.json"
    doc = add_artifact(db, blobs, P, E, "metrics", f, run_id="1", upload_file=False)
    assert doc["files"][0]["blob"] is None and blobs.stats.uploads == 0
    remote = add_artifact(
        db, blobs, P, E, "ckpt", "gs://elsewhere/ckpt/", run_id="1", is_local=False, is_dir=True
    )
    assert remote["kind"] == "remote" and remote["uri"] == "gs://elsewhere/ckpt/"
    assert blobs.stats.uploads == 0 and blobs.stats.head_requests == 0


def test_bad_artifact_input(stack, db, blobs, tmp_path):
    with pytest.raises(ValidationError, match="is_dir=True"):
        add_artifact(db, blobs, P, E, "x", tmp_path, run_id="1")
    with pytest.raises(ValidationError):
        add_artifact(db, blobs, P, E, "../x", tmp_path, run_id="1", is_dir=True)
    with pytest.raises(ValidationError, match="not a URI"):
        add_artifact(db, blobs, P, E, "x", "some/path", run_id="1", is_local=False)
    assert list(db.collection(layout.artifacts(P, E)).stream()) == []
