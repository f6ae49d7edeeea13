"""An upload to the bucket reaches the real function through the real event path.

Delivery is at least once, so these tests pin down idempotency: duplicate
events, two workers and a crashed worker all leave one result.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT, upload, wait_terminal

from aletheia.cloud import clients, config, layout, members
from aletheia.function.fileevents import LeaseBusyError, handle_finalized

from helpers import wait_for

CSV = b"a,b\n1,x\n2,y\n3,z\n"


def _upload(gcs: storage.Client, settings: config.Settings, project: str, data: bytes) -> str:
    members.ensure_project(clients.firestore_client(settings), project)  # as uploads do
    digest = hashlib.sha256(data).hexdigest()
    gcs.bucket(settings.bucket).blob(layout.blob_name(project, digest)).upload_from_string(data)
    return digest


def test_upload_without_a_format_hint_is_recorded_unsupported(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    data = b"a,b\n1,2\n"
    digest = _upload(gcs, stack, PROJECT, data)

    doc = wait_terminal(db, digest)
    assert doc["status"] == "unsupported"
    assert "aletheia-path" in doc["reason"]
    assert doc["size"] == len(data)
    assert doc["blob"] == f"gs://{stack.bucket}/{layout.blob_name(PROJECT, digest)}"


def test_objects_outside_the_blob_layout_are_ignored(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    gcs.bucket(stack.bucket).blob("vision/samples/not-a-blob.jsonl").upload_from_string(b"{}")
    digest = _upload(gcs, stack, "vision", b"marker")  # delivered after the first one
    wait_for(lambda: db.document(layout.file("vision", digest)).get().exists, what="marker")
    assert [d.id for d in db.collection(layout.files("vision")).stream()] == [digest]


def test_duplicate_event_leaves_one_result(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    digest = upload(gcs, stack, CSV, "a.csv")
    first = wait_terminal(db, digest)
    assert first["status"] == "done" and first["attempts"] == 1
    obj = {
        "bucket": stack.bucket,
        "name": layout.blob_name(PROJECT, digest),
        "size": str(len(CSV)),
        "metadata": {"aletheia-path": "a.csv"},
    }

    assert handle_finalized(obj, db) == layout.file(PROJECT, digest)

    again = db.document(layout.file(PROJECT, digest)).get().to_dict()
    assert again["attempts"] == 1
    assert again["finished_at"] == first["finished_at"]
    assert [d.id for d in db.collection(layout.files(PROJECT)).stream()] == [digest]


def test_same_bytes_under_another_name_are_not_analysed_again(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    digest = upload(gcs, stack, CSV, "a.csv")
    first = wait_terminal(db, digest)
    upload(gcs, stack, CSV, "copy/b.csv")  # a second finalize event for the same bytes
    marker = upload(gcs, stack, b"x\n1\n", "marker.csv")  # delivered after it
    wait_terminal(db, marker)
    doc = db.document(layout.file(PROJECT, digest)).get().to_dict()
    assert doc["attempts"] == 1
    assert doc["finished_at"] == first["finished_at"]


def test_crashed_worker_is_taken_over_and_a_live_one_is_not(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    digest = hashlib.sha256(CSV).hexdigest()
    doc = db.document(layout.file(PROJECT, digest))
    now = datetime.now(timezone.utc)
    # A live worker holds the lease: the event is refused (non-2xx) and redelivered.
    doc.set(
        {
            "status": "processing",
            "worker": "w1",
            "attempts": 1,
            "lease_until": now + timedelta(minutes=5),
        }
    )
    upload(gcs, stack, CSV, "a.csv")
    obj = {
        "bucket": stack.bucket,
        "name": layout.blob_name(PROJECT, digest),
        "size": "1",
        "metadata": {"aletheia-path": "a.csv"},
    }
    with pytest.raises(LeaseBusyError):
        handle_finalized(obj, db)
    assert doc.get().to_dict()["status"] == "processing"

    # That worker crashes: its lease expires and the next delivery takes over.
    doc.update({"lease_until": now - timedelta(seconds=1)})

    final = wait_terminal(db, digest)
    assert final["status"] == "done"
    assert final["attempts"] == 2
    assert final["rows"] == 3
    assert final["worker"] != "w1"
