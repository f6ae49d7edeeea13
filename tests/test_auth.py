"""Signing in as a Firebase user: the real Auth emulator issues the tokens, and the
real Firestore emulator, loaded with ``firestore.rules``, judges every call the
tracking client and the dataset store make as that user.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import firestore, storage
from test_rules import RULES_FILE, load_rules
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import auth, clients, config, layout, members, queries, usercreds
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.errors import AccessDeniedError, CredentialsError
from aletheia.tracking import journal, sync
from aletheia.tracking.metastore import Metastore

runner = CliRunner()
PASSWORD = "correct horse battery"


@pytest.fixture()
def rules_stack(stack: config.Settings) -> config.Settings:
    """A wiped stack, no users in the Auth emulator, Firestore enforcing the repository's rules."""
    url = f"http://{stack.auth_emulator_host}/emulator/v1/projects/{stack.cloud_project}/accounts"
    requests.delete(url, timeout=30).raise_for_status()
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    return stack


def as_user(settings: config.Settings, tmp_path: Path, email: str) -> config.Settings:
    """Settings of a fresh Firebase user, signed up in the Auth emulator and signed in."""
    user_file = tmp_path / f"{email}.json"
    signed_in = config.resolve({"identity": "user", "user_credentials": str(user_file)})
    auth.login(signed_in, email, PASSWORD, create=True)
    return signed_in


def uid_of(settings: config.Settings) -> str:
    user = auth.signed_in_user(settings)
    assert user is not None
    return user.uid


def test_login_keeps_only_a_refresh_token_in_a_private_file(
    rules_stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = tmp_path / "me.json"
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(user_file))
    args = ["auth", "login", "--create", "--email", "ana@example.com"]
    result = runner.invoke(app, [*args, "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(user_file.stat().st_mode) == 0o600
    saved = json.loads(user_file.read_text(encoding="utf-8"))
    assert PASSWORD not in user_file.read_text(encoding="utf-8")
    assert saved["email"] == "ana@example.com" and saved["refresh_token"]

    whoami = runner.invoke(app, ["auth", "whoami", "--json"])
    record = json.loads(whoami.output)
    assert record["identity"] == "user" and record["uid"] == saved["uid"]
    assert record["rules_apply"] is True

    assert runner.invoke(app, ["auth", "logout"]).exit_code == 0
    assert not user_file.exists()
    after = json.loads(runner.invoke(app, ["auth", "whoami", "--json"]).output)
    assert after["identity"] == "server"


@pytest.mark.parametrize(
    ("password", "email", "expected"),
    [
        ("wrong password!", "ana@example.com", "password is wrong"),
        (PASSWORD, "nobody@example.com", "no user has this email"),
    ],
)
def test_a_failed_sign_in_says_why_and_remembers_nothing(
    rules_stack: config.Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    email: str,
    expected: str,
) -> None:
    as_user(rules_stack, tmp_path, "ana@example.com")
    user_file = tmp_path / "other.json"
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(user_file))
    result = runner.invoke(app, ["auth", "login", "--email", email, "--password", password])
    assert result.exit_code == CredentialsError.exit_code
    assert expected in result.output.replace("\n", " ")
    assert not user_file.exists()


def test_identity_user_without_a_sign_in_is_a_clear_error(
    rules_stack: config.Settings, tmp_path: Path
) -> None:
    settings = config.resolve({"identity": "user", "user_credentials": str(tmp_path / "x.json")})
    with pytest.raises(CredentialsError, match="nobody is signed in") as info:
        clients.firestore_client(settings)
    assert "aletheia auth login" in (info.value.hint or "")


def test_a_signed_in_user_starts_a_project_as_its_owner_and_tracks_a_run(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    ms = Metastore("vision", settings=ana)
    assert clients.acting_uid(ms.db) == uid_of(ana)
    exper = ms.exper("resnet", git_policy="off")
    with exper.start_run(fold=1) as run:
        run.set_hyper_params({"lr": 0.1})
        for step in range(50):
            run.add_metric("loss", 1.0 / (step + 1), step=step)

    # Read back with server credentials: everything landed, as ana, through the rules.
    project = db.document(layout.project("vision")).get().to_dict()
    assert project["members"] == {uid_of(ana): "owner"}
    doc = db.document(layout.run("vision", "resnet", run.id)).get().to_dict()
    assert doc["status"] == "finished" and doc["hyper_params"] == {"lr": 0.1}
    chunks = db.collection(layout.metrics("vision", "resnet", run.id)).stream()
    assert sum(len(c.to_dict()["steps"]) for c in chunks) == 50


@pytest.mark.parametrize("role", [None, "viewer"])
def test_a_user_without_write_access_is_refused_before_the_run_starts(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    role: str | None,
) -> None:
    members.create_project(db, "vision", "someone-else")
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    if role:
        members.add_member(db, "vision", uid_of(bob), role)
    ms = Metastore("vision", settings=bob)
    with pytest.raises(AccessDeniedError) as info:
        ms.exper("resnet", git_policy="off")
    assert f"members add {uid_of(bob)} writer -p vision" in (info.value.hint or "")
    assert not db.document(layout.experiment("vision", "resnet")).get().exists


def owner_client(settings: config.Settings, tmp_path: Path, db: firestore.Client) -> Any:
    """A Firestore client signed in as the owner of project ``vision``."""
    ana = as_user(settings, tmp_path, "ana@example.com")
    members.create_project(db, "vision", uid_of(ana))
    return clients.firestore_client(ana)


def test_the_client_sends_the_users_token_not_the_emulator_owner_token(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    """Even an owner may not write file statistics (the function's job): the rules say no."""
    user_db = owner_client(rules_stack, tmp_path, db)
    user_db.document(layout.experiment("vision", "e")).set({"created_at": dt.datetime.now()})
    with pytest.raises(gexc.PermissionDenied):
        user_db.document(layout.file("vision", "a" * 64)).set({"rows": 1})
    with pytest.raises(gexc.PermissionDenied):
        user_db.document(layout.experiment("other", "e")).get()


def test_an_expired_id_token_is_renewed_from_the_refresh_token(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    user_db = owner_client(rules_stack, tmp_path, db)
    creds = user_db._credentials
    assert isinstance(creds, usercreds.FirebaseUserCredentials)
    assert user_db.document(layout.project("vision")).get().exists
    past = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=1)
    creds.expiry = past
    assert not creds.valid
    assert user_db.document(layout.project("vision")).get().exists
    assert creds.valid and creds.expiry > past + dt.timedelta(minutes=30)


def test_identity_server_ignores_a_signed_in_user(
    rules_stack: config.Settings, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    server = config.resolve({"identity": "server", "user_credentials": str(ana.user_credentials)})
    assert clients.acting_uid(clients.firestore_client(server)) is None
    auto = config.resolve({"identity": "auto", "user_credentials": str(ana.user_credentials)})
    assert clients.acting_uid(clients.firestore_client(auto)) == uid_of(ana)


def test_a_writer_versions_and_pulls_a_dataset_through_the_rules(
    rules_stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    members.create_project(db, "vision", "owner-uid")
    members.add_member(db, "vision", uid_of(ana), "writer")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    store = DatasetStore(
        clients.firestore_client(ana),
        BlobStore(gcs, rules_stack.bucket, "vision"),
        LocalCache(tmp_path / "cache"),
        "vision",
        workdir=tmp_path,
    )
    first = store.add("digits", data, desc="toy")
    (data / "b.csv").write_text("x,y\n3,4\n", encoding="utf-8")
    second = store.add("digits", data)
    assert [v["version"] for v in store.versions("digits")] == [first.version, second.version]
    handle = store.get("digits", first.version, to=tmp_path / "out")
    assert handle.local_path is not None
    assert sorted(f.path for f in handle.files) == ["a.csv"]
    assert (handle.local_path / "a.csv").read_text(encoding="utf-8") == "x,y\n1,2\n"


def test_project_create_defaults_its_owner_to_the_signed_in_user(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(ana.user_credentials))
    result = runner.invoke(app, ["project", "create", "-p", "vision"])
    assert result.exit_code == 0, result.output
    assert members.list_members(db, "vision") == {uid_of(ana): "owner"}
    # As owner, ana adds bob; bob (not an owner) may not add anyone.
    added = runner.invoke(app, ["project", "members", "add", "bob-uid", "writer", "-p", "vision"])
    assert added.exit_code == 0, added.output
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, "vision", uid_of(bob), "writer")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(bob.user_credentials))
    refused = runner.invoke(app, ["project", "members", "add", "eve-uid", "owner", "-p", "vision"])
    assert refused.exit_code == AccessDeniedError.exit_code, refused.output
    assert "eve-uid" not in members.list_members(db, "vision")


#: Queries of one project (``p``) and queries across projects (the function's, server-only).
PROJECT_QUERIES = sorted(n for n, ex in queries.CLIENT_QUERIES.items() if "p" in ex)
CROSS_PROJECT_QUERIES = sorted(n for n, ex in queries.CLIENT_QUERIES.items() if "p" not in ex)


@pytest.mark.parametrize("name", CROSS_PROJECT_QUERIES)
def test_cross_project_queries_are_denied_to_every_signed_in_user(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path, name: str
) -> None:
    """Only server credentials (the storage function) may read across projects."""
    viewer = as_user(rules_stack, tmp_path, "vic@example.com")
    members.create_project(db, "vision", "owner-uid")
    members.add_member(db, "vision", uid_of(viewer), "owner")
    query = getattr(queries, name)
    with pytest.raises(gexc.PermissionDenied):
        list(query(clients.firestore_client(viewer), **queries.CLIENT_QUERIES[name]).stream())


@pytest.mark.parametrize("name", PROJECT_QUERIES)
def test_every_client_query_is_allowed_for_a_viewer_and_denied_to_an_outsider(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path, name: str
) -> None:
    viewer = as_user(rules_stack, tmp_path, "vic@example.com")
    outsider = as_user(rules_stack, tmp_path, "eve@example.com")
    example = dict(queries.CLIENT_QUERIES[name])
    members.create_project(db, example["p"], "owner-uid")
    # A project's invitations are its owners' to read (the rest: every member's).
    role = "owner" if name in queries.OWNER_QUERIES else "viewer"
    members.add_member(db, example["p"], uid_of(viewer), role)
    query = getattr(queries, name)
    assert list(query(clients.firestore_client(viewer), **example).stream()) == []
    with pytest.raises(gexc.PermissionDenied):
        list(query(clients.firestore_client(outsider), **example).stream())


@pytest.mark.parametrize(
    ("clause", "query"),
    [
        (
            "match /{path=**}/files/{f} {\n      allow list: if canRead",
            "dataset_versions_with_file",
        ),
        ("match /{path=**}/Runs/{r} {\n      allow list: if canRead", "project_runs_using_dataset"),
    ],
)
def test_collection_group_membership_clauses_are_what_keeps_outsiders_out(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path, clause: str, query: str
) -> None:
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(clause) == 1, "the clause moved: update this test"
    weakened = rules.replace(clause, clause.replace("canRead", "request.auth != null || canRead"))
    outsider = as_user(rules_stack, tmp_path, "eve@example.com")
    example = dict(queries.CLIENT_QUERIES[query])
    members.create_project(db, example["p"], "owner-uid")
    load_rules(rules_stack, weakened)
    try:
        assert (
            list(getattr(queries, query)(clients.firestore_client(outsider), **example).stream())
            == []
        )
    finally:
        load_rules(rules_stack, rules)


def test_a_corrupt_or_foreign_sign_in_file_is_a_clear_error(
    rules_stack: config.Settings, tmp_path: Path
) -> None:
    user_file = tmp_path / "me.json"
    settings = config.resolve({"user_credentials": str(user_file)})
    user_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(CredentialsError, match="unreadable") as info:
        clients.firestore_client(settings)
    assert "aletheia auth logout" in (info.value.hint or "")
    foreign = {"uid": "u", "email": None, "refresh_token": "t", "cloud_project": "elsewhere"}
    user_file.write_text(json.dumps(foreign), encoding="utf-8")
    with pytest.raises(CredentialsError, match="cloud project 'elsewhere'"):
        clients.firestore_client(settings)


def test_a_writer_who_loses_access_is_told_once_and_not_hammered(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.create_project(db, "vision", "owner-uid")
    members.add_member(db, "vision", uid_of(bob), "writer")
    ms = Metastore("vision", settings=bob, flush_interval_s=3600, final_retry_s=1)
    run = ms.exper("e", git_policy="off").start_run()
    run.add_metric("loss", 0.0)
    assert run.flush()

    members.add_member(db, "vision", uid_of(bob), "viewer")  # the owner demotes bob
    run.add_metric("loss", 1.0)
    assert not run.flush()
    before = ms.store.stats.commits
    for i in range(2, 2500):  # more chunks, more flushes: nothing more is asked
        run.add_metric("loss", float(i))
        if i % 500 == 0:
            assert not run.flush()
    assert ms.store.stats.commits == before
    assert not run.finish()

    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("unreachable" in m for m in said), said
    refused = [m for m in said if m.startswith("aletheia: Firestore refused")]
    assert len(refused) == 1 and "PermissionDenied" in refused[0], said
    assert "aletheia sync" in refused[0]

    members.add_member(db, "vision", uid_of(bob), "writer")  # back: sync sends everything
    assert sync.sync_journal(run.journal.path, ms.store).action == "synced"
    doc = db.document(layout.run("vision", "e", run.id)).get().to_dict() or {}
    assert doc["status"] == "finished" and doc["summary"]["loss"]["count"] == 2500
    assert journal.read(run.journal.path).synced
