"""The rules accept the documents aletheia itself writes.

``firestore.rules`` validates document shapes (required fields, types). The
tracking client writes with server credentials, which bypass the rules, so a
drift between the two would only show when a Firebase user (a web client, a
teammate in the console) writes the same shape. Here a real tracked run is
written with ``Metastore`` and a dataset with ``DatasetStore``; a writer then
re-creates each document they produced over REST, field for field, and the
rules must allow every one.
"""

from __future__ import annotations

from pathlib import Path

from google.cloud import firestore, storage
from test_rules import RULES_FILE, T0, Rest, load_rules

from aletheia import Metastore
from aletheia.cloud import config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore

WRITER = "u-writer"


def test_documents_written_by_metastore_pass_the_rules(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    ms = Metastore("shapes", settings=stack)
    exper = ms.exper("exp", git_policy="off")
    with exper.start_run(fold=1) as run:
        run.set_hyper_params({"lr": 0.1, "layers": [64, 32], "dropout": None})
        for step in range(3):
            run.log_metrics({"train/loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
        (tmp_path / "model.pt").write_bytes(b"weights")
        run.add_artifact("model", tmp_path / "model.pt")
    members.add_member(db, "shapes", WRITER, "writer")

    run_path = layout.run("shapes", "exp", run.id)
    chunks = list(db.collection(layout.metrics("shapes", "exp", run.id)).stream())
    assert chunks, "the run logged metric chunks"
    docs = {
        layout.experiment("shapes", "exp"): db.document(layout.experiment("shapes", "exp")),
        run_path: db.document(run_path),
        **{chunk.reference.path: chunk.reference for chunk in chunks},
        **_artifact_and_registry_docs(db),
    }
    assert any("/Versions/" in p for p in docs) and any("/Refs/" in p for p in docs)
    rest = Rest(stack)
    refused = []
    for path, ref in docs.items():
        data = ref.get().to_dict()
        assert data, path
        # A finished run's chunks are records: copies go under a run not yet written.
        copy = f"{path}-copy".replace(f"/Runs/{run.id}/", "/Runs/unwritten/")
        if path == run_path:  # a run names its own id, which the rules check
            data["run"] = copy.rpartition("/")[2]
        response = rest.call(WRITER, "create", copy, data)
        if response.status_code != 200:
            refused.append(f"{path}: {response.status_code} {response.text[:300]}")
    assert not refused, "\n".join(refused)
    # The finished run as the client left it may be rewritten unchanged by a writer.
    finished = db.document(run_path).get().to_dict()
    assert finished["status"] == "finished"
    assert rest.call(WRITER, "update", run_path, finished).status_code == 200


def test_documents_written_by_datasets_pass_the_rules(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "a.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    (data / "b.csv").write_text("x,y\n3,4\n", encoding="utf-8")
    store = DatasetStore(
        db,
        BlobStore(gcs, stack.bucket, "shapes"),
        LocalCache(tmp_path / "cache"),
        "shapes",
        workdir=tmp_path,
    )
    store.add("digits", data, desc="toy")
    db.document(layout.project("shapes")).set({"created_at": T0, "members": {}}, merge=True)
    members.add_member(db, "shapes", WRITER, "writer")

    dataset = db.document(layout.dataset("shapes", "digits"))
    docs = [dataset, *dataset.collection(layout.VERSIONS).list_documents()]
    docs += list(dataset.collection(layout.DATASET_FILES).list_documents())
    docs += list(_artifact_and_registry_docs(db).values())
    assert len(docs) >= 4, "a dataset, a version and two file entries"
    rest = Rest(stack)
    refused = []
    for ref in docs:
        response = rest.call(WRITER, "create", f"{ref.path}-copy", ref.get().to_dict())
        if response.status_code != 200:
            refused.append(f"{ref.path}: {response.status_code} {response.text[:300]}")
    assert not refused, "\n".join(refused)


def _artifact_and_registry_docs(db: firestore.Client) -> dict[str, firestore.DocumentReference]:
    """Artifact documents, their versions, and the blob registry of project ``shapes``."""
    found: dict[str, firestore.DocumentReference] = {}
    for art in db.collection(layout.artifacts("shapes", "exp")).list_documents():
        found[art.path] = art
        found.update({v.path: v for v in art.collection(layout.ARTIFACT_VERSIONS).list_documents()})
    for blob in db.collection(layout.blobs("shapes")).list_documents():
        found[blob.path] = blob
        found.update({r.path: r for r in blob.collection(layout.BLOB_REFS).list_documents()})
    return found
