"""An upload to the bucket reaches the real function through the real event path."""

from __future__ import annotations

import hashlib

from google.cloud import firestore, storage

from aletheia import config, layout
from aletheia.fileevents import handle_finalized

from helpers import wait_for


def _upload(gcs: storage.Client, settings: config.Settings, project: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    gcs.bucket(settings.bucket).blob(layout.blob_name(project, digest)).upload_from_string(data)
    return digest


def test_upload_triggers_function_and_file_document_appears(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    data = b"a,b\n1,2\n"
    digest = _upload(gcs, stack, "vision", data)

    doc = wait_for(
        lambda: db.document(layout.file("vision", digest)).get()._data or None,
        what="Files document written by the function",
    )
    assert doc["status"] == "seen"
    assert doc["size"] == len(data)
    assert doc["blob"] == f"gs://{stack.bucket}/{layout.blob_name('vision', digest)}"


def test_objects_outside_the_blob_layout_are_ignored(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    gcs.bucket(stack.bucket).blob("vision/samples/not-a-blob.jsonl").upload_from_string(b"{}")
    digest = _upload(gcs, stack, "vision", b"marker")  # delivered after the first one
    wait_for(lambda: db.document(layout.file("vision", digest)).get().exists, what="marker")
    assert [d.id for d in db.collection(layout.files("vision")).stream()] == [digest]


def test_same_event_twice_leaves_one_document_and_keeps_status(
    stack: config.Settings, db: firestore.Client
) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    obj = {"bucket": stack.bucket, "name": layout.blob_name("p1", digest), "size": "1"}
    path = handle_finalized(obj, db)
    assert path is not None
    db.document(path).update({"status": "done"})  # as a later analysis would
    handle_finalized(obj, db)
    docs = list(db.collection(layout.files("p1")).stream())
    assert [d.id for d in docs] == [digest]
    assert docs[0].to_dict()["status"] == "done"
