"""Invitations from the CLI (``aletheia project members invite | invites | revoke``), with
server credentials and as a signed-in owner, and the invitation a user then accepts.

Real Firestore emulator enforcing the repository's rules, real Auth-emulator users.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests
from google.cloud import firestore
from test_auth import PASSWORD, as_user, rules_stack, uid_of
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import auth, clients, config, invites, layout, members
from aletheia.errors import AccessDeniedError, ConflictError, NotFoundError, ValidationError

__all__ = ["rules_stack"]  # the fixture, shared with test_auth
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_invite_list_and_revoke_with_server_credentials(
    rules_stack: config.Settings, db: firestore.Client
) -> None:
    members.create_project(db, "vision", "ana-uid")
    code, out = cli("project", "members", "invite", "  Bo@Example.com ", "viewer", "-p", "vision")
    assert code == 0, out
    assert "bo@example.com" in out and "viewer" in out
    stored = db.document(layout.invite("vision", "bo@example.com")).get().to_dict()
    assert stored is not None
    assert stored["email"] == "bo@example.com" and stored["role"] == "viewer"
    assert stored["project"] == "vision" and "invited_by" not in stored
    lasts = stored["expires_at"] - stored["invited_at"]
    assert dt.timedelta(days=13, hours=23) < lasts <= dt.timedelta(days=14, minutes=1)

    assert (
        cli("project", "members", "invite", "cy@example.com", "-p", "vision", "--days", "3")[0] == 0
    )
    code, out = cli("project", "members", "invites", "-p", "vision", "--json")
    assert code == 0, out
    rows = json.loads(out)
    # Soonest expiry first; the default role is writer.
    assert [(r["email"], r["role"], r["expired"]) for r in rows] == [
        ("cy@example.com", "writer", False),
        ("bo@example.com", "viewer", False),
    ]

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    db.document(layout.invite("vision", "cy@example.com")).update({"expires_at": past})
    code, out = cli("project", "members", "invites", "-p", "vision")
    assert code == 0 and "(expired)" in out and out.count("(expired)") == 1

    code, out = cli("project", "members", "revoke", "BO@example.com", "-p", "vision")
    assert code == 0 and "revoked" in out
    assert [i.email for i in invites.list_invites(db, "vision")] == ["cy@example.com"]
    # Nobody was made a member by any of this.
    assert members.list_members(db, "vision") == {"ana-uid": "owner"}


def test_bad_invitations_are_clear_errors_and_store_nothing(
    rules_stack: config.Settings, db: firestore.Client
) -> None:
    members.create_project(db, "vision", "ana-uid")
    cases = [
        (("not-an-address", "writer", "-p", "vision"), ValidationError, "invalid email"),
        (("a/b@example.com", "writer", "-p", "vision"), ValidationError, "invalid email"),
        (("bo@example.com", "admin", "-p", "vision"), ValidationError, "unknown role"),
        (("bo@example.com", "writer", "-p", "vision", "--days", "90"), ValidationError, "1 to 30"),
        (("bo@example.com", "writer", "-p", "ghost"), NotFoundError, "does not exist"),
    ]
    for args, error, says in cases:
        code, out = cli("project", "members", "invite", *args)
        assert code == error.exit_code, out
        assert says in out.replace("\n", " ")
    assert invites.list_invites(db, "vision") == []
    code, out = cli("project", "members", "revoke", "bo@example.com", "-p", "vision")
    assert code == NotFoundError.exit_code and "no invitation" in out


def test_a_signed_in_owner_invites_through_the_rules_and_a_writer_cannot(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    wes = as_user(rules_stack, tmp_path, "wes@example.com")
    ana_uid = uid_of(ana)
    members.create_project(db, "vision", ana_uid)
    members.add_member(db, "vision", uid_of(wes), "writer")

    as_ana = clients.firestore_client(ana)
    made = invites.invite(as_ana, "vision", "bo@example.com", "writer")
    stored = db.document(layout.invite("vision", "bo@example.com")).get().to_dict() or {}
    assert stored["invited_by"] == ana_uid == made.invited_by
    assert [i.email for i in invites.list_invites(as_ana, "vision")] == ["bo@example.com"]

    as_wes = clients.firestore_client(wes)
    with pytest.raises(AccessDeniedError, match="only an owner"):
        invites.invite(as_wes, "vision", "cy@example.com", "owner")
    with pytest.raises(AccessDeniedError, match="only an owner"):
        invites.revoke(as_wes, "vision", "bo@example.com")
    with pytest.raises(AccessDeniedError, match="only an owner"):
        invites.list_invites(as_wes, "vision")
    assert [i.email for i in invites.list_invites(db, "vision")] == ["bo@example.com"]
    invites.revoke(as_ana, "vision", "bo@example.com")
    assert invites.list_invites(db, "vision") == []


def verify_email(settings: config.Settings, uid: str) -> None:
    """Mark a user's address verified, as following the verification link does."""
    url = (
        f"http://{settings.auth_emulator_host}/identitytoolkit.googleapis.com/v1/projects/"
        f"{settings.cloud_project}/accounts:update"
    )
    body = {"localId": uid, "emailVerified": True}
    requests.post(url, json=body, headers={"Authorization": "Bearer owner"}, timeout=30)


def test_the_invited_user_lists_and_joins_from_the_cli(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members.create_project(db, "vision", "ana-uid")
    members.create_project(db, "archive", "ana-uid")
    invites.invite(db, "vision", "bo@example.com", "viewer")
    invites.invite(db, "archive", "bo@example.com", "owner")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    db.document(layout.invite("archive", "bo@example.com")).update({"expires_at": past})

    # Server credentials have no address to be invited at.
    code, out = cli("project", "invitations")
    assert code == ValidationError.exit_code and "auth login" in out

    user_file = tmp_path / "bo.json"
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(user_file))
    args = ["auth", "login", "--create", "--email", "Bo@example.com", "--password", PASSWORD]
    assert cli(*args)[0] == 0
    bo = auth.signed_in_user(config.resolve())
    assert bo is not None
    # Not verified yet: the rules ignore the address, and the CLI says what to do.
    code, out = cli("project", "invitations")
    assert code == AccessDeniedError.exit_code and "verif" in out
    code, out = cli("project", "join", "-p", "vision")
    assert code == AccessDeniedError.exit_code and "verif" in out
    assert members.list_members(db, "vision") == {"ana-uid": "owner"}

    verify_email(rules_stack, bo.uid)
    code, out = cli("project", "invitations", "--json")
    assert code == 0, out
    assert [(r["project"], r["role"]) for r in json.loads(out)] == [("vision", "viewer")]
    code, out = cli("project", "join", "-p", "archive")
    assert code == ConflictError.exit_code and "expired" in out
    code, out = cli("project", "join", "-p", "vision")
    assert code == 0 and "joined vision as viewer" in out
    assert members.list_members(db, "vision") == {"ana-uid": "owner", bo.uid: "viewer"}
    assert members.list_members(db, "archive") == {"ana-uid": "owner"}
    assert not db.document(layout.invite("vision", "bo@example.com")).get().exists
    code, out = cli("project", "join", "-p", "vision")
    assert code == NotFoundError.exit_code and "no invitation" in out
