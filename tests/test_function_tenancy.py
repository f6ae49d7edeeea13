"""The storage function writes nothing into a project that is not the team's.

It runs with server credentials, which bypass the rules: a data file whose
object name says ``squat/…`` must not have its profile, row sample and
``Files`` document written into ``Projects/squat`` when a signed-in user
registered that project first. The upload goes through the real path
(fake-gcs-server notification → Pub/Sub emulator → event bridge →
functions-framework with a real CloudEvent); the user is real (Auth emulator).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from google.cloud import firestore, storage
from test_auth import as_user, rules_stack, uid_of

from aletheia.cloud import clients, config, layout, members
from aletheia.devstack import local
from aletheia.function import fileevents
from aletheia.function.analysis import PATH_METADATA

from helpers import count_rpcs, wait_for

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

SQUATTED = "squat"
CSV = b"name,salary\nalice,100\nbob,200\n"


def _upload(gcs: storage.Client, settings: config.Settings, project: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    blob = gcs.bucket(settings.bucket).blob(layout.blob_name(project, digest))
    blob.metadata = {PATH_METADATA: "people.csv"}
    blob.upload_from_string(data)
    return digest


def _status(db: firestore.Client, project: str, digest: str) -> str | None:
    return (db.document(layout.file(project, digest)).get().to_dict() or {}).get("status")


def test_function_refuses_to_profile_into_a_squatted_project(
    rules_stack: config.Settings,
    stack_state: local.StackState,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
) -> None:
    eve = as_user(rules_stack, tmp_path, "eve@example.com")
    members.create_project(clients.firestore_client(eve), SQUATTED, uid_of(eve))
    log = Path(stack_state.parts["function"].log)
    name = layout.blob_name(SQUATTED, hashlib.sha256(CSV).hexdigest())

    digest = _upload(gcs, rules_stack, SQUATTED, CSV)

    wait_for(
        lambda: f"refusing to profile {name}" in log.read_text(errors="replace"),
        what="the function to refuse the squatted project",
    )
    said = [line for line in log.read_text(errors="replace").splitlines() if name in line]
    assert any(f"project {SQUATTED!r} was created by a signed-in user" in s for s in said), said
    assert any("ALETHEIA_OWNER" in s for s in said), said  # what to do
    # Nothing recorded for Eve to read: no Files document, no sample, no profile.
    assert not db.document(layout.file(SQUATTED, digest)).get().exists
    assert list(db.collection(layout.files(SQUATTED)).limit(1).stream()) == []
    objects = [b.name for b in gcs.bucket(rules_stack.bucket).list_blobs(prefix=f"{SQUATTED}/")]
    assert objects == [name]  # only the upload itself
    project = db.document(layout.project(SQUATTED)).get().to_dict() or {}
    assert project.get("members") == {uid_of(eve): "owner"}  # untouched


def test_function_never_creates_or_revives_a_deleted_project(
    stack: config.Settings,
    stack_state: local.StackState,
    db: firestore.Client,
    gcs: storage.Client,
) -> None:
    """An event delivered after its project was deleted writes nothing and creates nothing.

    Every aletheia upload creates its project first, so a missing project was
    deleted since. Re-creating it (as server-managed) or writing a ``Files``
    document under it would bring the project back and make its name
    impossible to create again (``project create`` refuses a name with data).
    """
    team = f"team-{uuid.uuid4().hex[:8]}"
    members.ensure_project(db, team)  # what every upload path does first
    first = _upload(gcs, stack, team, CSV)
    wait_for(lambda: _status(db, team, first) == "done", what="the function to profile it")
    for doc in db.collection(layout.files(team)).stream():
        doc.reference.delete()
    db.document(layout.project(team)).delete()  # the project is deleted ...
    obj = {  # ... then an event of its upload arrives (late, or redelivered)
        "bucket": stack.bucket,
        "name": layout.blob_name(team, first),
        "metadata": {PATH_METADATA: "people.csv"},
    }
    assert fileevents.handle_finalized(obj, db, gcs) is None
    assert not db.document(layout.project(team)).get().exists
    assert list(db.collection(layout.files(team)).limit(1).stream()) == []
    members.create_project(db, team, "ada")  # the name is free again

    # Through the real path too: an upload into a project that does not exist.
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    name = layout.blob_name(ghost, _upload(gcs, stack, ghost, CSV))
    log = Path(stack_state.parts["function"].log)
    wait_for(
        lambda: f"refusing to profile {name}" in log.read_text(errors="replace"),
        what="the function to refuse the missing project",
    )
    said = [line for line in log.read_text(errors="replace").splitlines() if name in line]
    assert any(f"project {ghost!r} does not exist" in s for s in said), said
    assert not db.document(layout.project(ghost)).get().exists


@pytest.mark.parametrize(
    ("path", "data"),
    [("people.csv", CSV), ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)],
    ids=["profiled", "unsupported"],
)
def test_a_project_deleted_while_its_event_is_handled_is_not_revived(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    data: bytes,
) -> None:
    """The deletion lands after the event's tenancy check and before its first write.

    The first write (the lease, or the ``unsupported`` record) reads the project in
    its transaction: a ``Files`` document written anyway would make the deleted
    name impossible to create again.
    """
    team = f"team-{uuid.uuid4().hex[:8]}"
    members.ensure_project(db, team)
    digest = _upload(gcs, stack, team, data)
    wait_for(  # the real function is through with it: only the call below writes now
        lambda: _status(db, team, digest) in ("done", "failed", "unsupported"),
        what="the function to finish",
    )
    db.document(layout.file(team, digest)).delete()
    checked = fileevents.tenancy.refusal

    def check_then_delete(db_: firestore.Client, project: str, owner: str | None) -> object:
        verdict = checked(db_, project, owner)
        db_.document(layout.project(project)).delete()  # deleted right after the check
        return verdict

    monkeypatch.setattr(fileevents.tenancy, "refusal", check_then_delete)
    obj = {
        "bucket": stack.bucket,
        "name": layout.blob_name(team, digest),
        "metadata": {PATH_METADATA: path},
    }

    assert fileevents.handle_finalized(obj, db, gcs) is None
    assert not db.document(layout.project(team)).get().exists
    assert list(db.collection(layout.files(team)).limit(1).stream()) == []
    members.create_project(db, team, "ada")  # the name is free again


def test_function_reads_the_project_once_per_event(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client
) -> None:
    """The check costs one read of the project document per event, and no write."""
    team = f"team-{uuid.uuid4().hex[:8]}"
    members.ensure_project(db, team)
    first = _upload(gcs, stack, team, CSV)
    second = _upload(gcs, stack, team, CSV + b"carol,300\n")
    for digest in (first, second):  # profiled by the real function first
        wait_for(
            lambda d=digest: _status(db, team, d) == "done",
            what="the function to profile it",
        )

    with count_rpcs(db) as rpcs:
        for digest in (first, second):
            obj = {
                "bucket": stack.bucket,
                "name": layout.blob_name(team, digest),
                "metadata": {PATH_METADATA: "people.csv"},
            }
            fileevents.handle_finalized(obj, db, gcs)
        reads = rpcs["batch_get_documents"] + rpcs["get_document"]
    # Per event: one read of the project, then the Files document read by its lease transaction.
    assert rpcs["begin_transaction"] == 2 and reads == 2 + 2, rpcs
    assert rpcs["commit"] == 2, rpcs  # the two lease transactions' commits: nothing created
