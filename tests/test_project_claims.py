"""Who a project belongs to: no takeover of a project that has data, no squatting on a name.

Server credentials (a training job, the CLI in cloud mode) bypass the rules,
signed-in Firebase users do not: both meet here, on the real Auth and
Firestore emulators with the repository's rules loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore, storage
from test_auth import as_user, rules_stack, uid_of
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import clients, config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.errors import AccessDeniedError, ConflictError
from aletheia.function import filestatus
from aletheia.tracking.metastore import Metastore

from helpers import wait_for_document

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

runner = CliRunner()


def _store(
    db: firestore.Client,
    gcs: storage.Client,
    settings: config.Settings,
    project: str,
    tmp_path: Path,
    owner: str | None = None,
) -> DatasetStore:
    blobs = BlobStore(gcs, settings.bucket, project)
    cache = LocalCache(tmp_path / "cache")
    extra = {"owner": owner} if owner else {}
    return DatasetStore(db, blobs, cache, project, workdir=tmp_path, **extra)


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "a.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    return data


def test_a_dataset_added_with_server_credentials_cannot_be_taken_over(
    rules_stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _store(db, gcs, rules_stack, "lab", tmp_path).add("secrets", _data(tmp_path))
    project = db.document(layout.project("lab")).get()
    assert project.exists and project.get("server_managed") is True

    eve = as_user(rules_stack, tmp_path, "eve@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(eve.user_credentials))
    result = runner.invoke(app, ["project", "create", "-p", "lab"])
    assert result.exit_code == ConflictError.exit_code, result.output
    assert "already exists" in result.output
    stored = db.document(layout.project("lab")).get().to_dict() or {}
    assert uid_of(eve) not in (stored.get("members") or {})
    with pytest.raises(gexc.PermissionDenied):
        clients.firestore_client(eve).document(layout.dataset("lab", "secrets")).get()


def test_server_credentials_create_the_project_with_the_configured_owner(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    settings = config.resolve({"identity": "server", "owner": "u-alice"})
    assert settings.owner == "u-alice"
    Metastore("withowner", settings=settings).exper("train", git_policy="off")
    assert members.list_members(db, "withowner") == {"u-alice": "owner"}


def test_project_create_refuses_a_project_that_has_data_without_a_document(
    rules_stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Data stored before write paths created their project: still not up for grabs."""
    data = _data(tmp_path)
    _store(db, gcs, rules_stack, "legacy", tmp_path).add("d", data)
    # The storage function writes into the project too (and creates it if missing, as
    # every server-credential writer does): let it finish before the document goes.
    sha = hashlib.sha256((data / "a.csv").read_bytes()).hexdigest()
    wait_for_document(
        db,
        layout.file("legacy", sha),
        lambda doc: doc.get("status") in filestatus.TERMINAL,
        what="the storage function's profile of a.csv",
    )
    db.document(layout.project("legacy")).delete()
    monkeypatch.setenv("ALETHEIA_IDENTITY", "server")
    result = runner.invoke(app, ["project", "create", "-p", "legacy", "--owner", "u-x"])
    assert result.exit_code == ConflictError.exit_code, result.output
    assert not db.document(layout.project("legacy")).get().exists


def test_server_credentials_refuse_a_project_squatted_by_a_user(
    rules_stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    eve = as_user(rules_stack, tmp_path, "eve@example.com")
    members.create_project(clients.firestore_client(eve), "vision", uid_of(eve))

    team = config.resolve({"identity": "server"})
    with pytest.raises(AccessDeniedError, match="ALETHEIA_OWNER"):
        Metastore("vision", settings=team).exper("train", git_policy="off")
    with pytest.raises(AccessDeniedError):
        _store(db, gcs, rules_stack, "vision", tmp_path).add("imgs", _data(tmp_path))
    project = db.document(layout.project("vision"))
    assert [c.id for c in project.collections()] == []  # nothing written for eve to read
    assert not list(gcs.bucket(rules_stack.bucket).list_blobs(prefix="vision/"))

    # A project the team's owner is a writer of is theirs to write into.
    members.add_member(db, "vision", "u-team", "writer")
    ours = config.resolve({"identity": "server", "owner": "u-team"})
    exper = Metastore("vision", settings=ours).exper("train", git_policy="off")
    assert exper.online
