"""Project membership: the library, the CLI, and what the rules then let a user do."""

from __future__ import annotations

import json

import pytest
from google.cloud import firestore
from test_rules import RULES_FILE, T0, Rest, load_rules
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout, members
from aletheia.errors import ConflictError, NotFoundError, ValidationError

runner = CliRunner()


def cli(*args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output, result.exception


def test_create_add_change_remove(stack: config.Settings, db: firestore.Client) -> None:
    members.create_project(db, "vision", "alice", description="image models")
    assert members.list_members(db, "vision") == {"alice": "owner"}
    assert members.add_member(db, "vision", "bob", "writer") is None
    assert members.add_member(db, "vision", "carol.d@x", "viewer") is None
    assert members.add_member(db, "vision", "bob", "owner") == "writer"
    # Owners first, then by uid; a uid with a dot is one key, not a nested path.
    assert members.list_members(db, "vision") == {
        "alice": "owner",
        "bob": "owner",
        "carol.d@x": "viewer",
    }
    assert members.remove_member(db, "vision", "alice") == "owner"
    assert members.list_members(db, "vision") == {"bob": "owner", "carol.d@x": "viewer"}
    doc = db.document(layout.project("vision")).get().to_dict()
    assert doc["description"] == "image models" and doc["created_at"]


def test_last_owner_stays(stack: config.Settings, db: firestore.Client) -> None:
    members.create_project(db, "solo", "alice")
    with pytest.raises(ConflictError, match="last owner"):
        members.remove_member(db, "solo", "alice")
    with pytest.raises(ConflictError, match="last owner"):
        members.add_member(db, "solo", "alice", "writer")
    assert members.list_members(db, "solo") == {"alice": "owner"}


def test_bad_input(stack: config.Settings, db: firestore.Client) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        members.add_member(db, "ghost", "alice", "viewer")
    members.create_project(db, "p1", "alice")
    with pytest.raises(ConflictError, match="already exists"):
        members.create_project(db, "p1", "bob")
    with pytest.raises(ValidationError, match="unknown role"):
        members.add_member(db, "p1", "bob", "admin")
    with pytest.raises(ValidationError):
        members.add_member(db, "p1", "a/b", "viewer")
    with pytest.raises(NotFoundError, match="not a member"):
        members.remove_member(db, "p1", "nobody")
    assert members.role_at_least("owner", "writer") and not members.role_at_least(
        "viewer", "writer"
    )


def test_cli_members(stack: config.Settings) -> None:
    code, out, _ = cli("project", "create", "-p", "nlp", "--owner", "alice")
    assert code == 0 and "created project nlp" in out
    code, out, _ = cli("project", "members", "add", "bob", "viewer", "-p", "nlp")
    assert code == 0 and "bob: viewer in nlp" in out
    code, out, _ = cli("project", "members", "add", "bob", "writer", "--project", "nlp")
    assert code == 0 and "bob: viewer -> writer in nlp" in out
    code, out, _ = cli("project", "members", "list", "-p", "nlp", "--json")
    assert code == 0 and json.loads(out) == {"alice": "owner", "bob": "writer"}
    code, out, _ = cli("project", "members", "list", "-p", "nlp")
    assert code == 0 and "alice" in out and "writer" in out
    code, out, _ = cli("project", "members", "rm", "bob", "-p", "nlp")
    assert code == 0 and "removed bob (writer) from nlp" in out
    code, out, _ = cli("project", "show", "-p", "nlp", "--json")
    assert code == 0 and json.loads(out)["members"] == {"alice": "owner"}


def test_cli_errors(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALETHEIA_PROJECT", "envproj")
    code, out, _ = cli("project", "members", "list")
    assert code == NotFoundError.exit_code and "envproj" in out
    assert cli("project", "create", "--owner", "alice")[0] == 0  # the setting names the project
    code, out, _ = cli("project", "members", "rm", "alice")
    assert code == ConflictError.exit_code and "last owner" in out
    code, out, _ = cli("project", "members", "add", "bob", "root")
    assert code == ValidationError.exit_code and "unknown role 'root'" in out
    code, out, _ = cli("project", "create")  # nobody signed in: no default owner
    assert code == ValidationError.exit_code and "--owner" in out


def test_membership_is_what_the_rules_enforce(stack: config.Settings, db: firestore.Client) -> None:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    rest = Rest(stack)
    members.create_project(db, "team", "alice")
    path = layout.project("team")
    assert rest.call("bob", "get", path).status_code == 403
    members.add_member(db, "team", "bob", "viewer")
    assert rest.call("bob", "get", path).status_code == 200
    experiment = f"{layout.experiments('team')}/e1"
    body = {"created_at": T0}
    assert rest.call("bob", "create", experiment, body).status_code == 403
    members.add_member(db, "team", "bob", "writer")
    assert rest.call("bob", "create", experiment, body).status_code == 200
    members.remove_member(db, "team", "bob")
    assert rest.call("bob", "get", path).status_code == 403
