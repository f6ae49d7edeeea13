"""Invitations under ``firestore.rules``: an owner invites an email address, and only the
user signed in with that address, verified, joins, as exactly the invited role, in the
batch that deletes the invitation, before it expires.

Real Firestore emulator enforcing the repository's rules, real Firebase users from the
Auth emulator (their ID tokens carry ``email`` and ``email_verified`` as Firebase sets
them; the emulator marks an address verified as the Admin SDK would), requests over
REST as the web SDK makes them (a batch is one ``commit``). Every abuse below must be
refused and leave the project and the invitation as they were.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from google.cloud import firestore
from test_rules import RULES_FILE, encode, load_rules

from aletheia.cloud import auth, config, layout

PASSWORD = "correct horse battery"
NOW = dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class User:
    uid: str
    email: str
    token: str


@dataclass
class World:
    settings: config.Settings
    db: firestore.Client
    owner: User
    writer: User
    bo: User  # verified, invited in most cases
    cy: User  # verified, invited to nothing
    dee: User  # signed up, email NOT verified

    @property
    def root(self) -> str:
        return f"projects/{self.settings.cloud_project}/databases/(default)/documents"

    @property
    def base(self) -> str:
        return f"http://{self.settings.firestore_emulator_host}/v1/{self.root}"

    def project(self, name: str, **members: str) -> str:
        """Seed project ``name`` (owner + writer, plus ``members``), bypassing the rules."""
        self.db.document(layout.project(name)).set(
            {
                "name": name,
                "created_at": NOW,
                "members": {self.owner.uid: "owner", self.writer.uid: "writer", **members},
            }
        )
        return name

    def invitation(
        self, p: str, email: str, role: str = "writer", *, expires: dt.timedelta | None = None
    ) -> None:
        """Seed an invitation, bypassing the rules (as an owner would have written it)."""
        self.db.document(layout.invite(p, email)).set(
            {
                "email": email,
                "role": role,
                "project": p,
                "invited_by": self.owner.uid,
                "invited_at": NOW,
                "expires_at": NOW + (expires or dt.timedelta(days=14)),
            }
        )

    def members(self, p: str) -> dict[str, str]:
        return dict((self.db.document(layout.project(p)).get().to_dict() or {})["members"])

    def invited(self, p: str, email: str) -> bool:
        # Not layout.invite: some cases try ids it would refuse to build.
        return bool(self.db.collection(layout.invites(p)).document(email).get().exists)

    # ----------------------------------------------------------- requests as a user

    def _headers(self, user: User | str | None) -> dict[str, str]:
        token = user.token if isinstance(user, User) else user
        return {"Authorization": f"Bearer {token}"} if token else {}

    def commit(self, user: User | str | None, writes: list[dict[str, Any]]) -> int:
        resp = requests.post(
            f"{self.base}:commit",
            json={"writes": writes},
            headers=self._headers(user),
            timeout=30,
        )
        return resp.status_code

    def get(self, user: User, path: str) -> int:
        return requests.get(
            f"{self.base}/{path}", headers=self._headers(user), timeout=30
        ).status_code

    def query(
        self,
        user: User | str,
        where: dict[str, Any] | None,
        *,
        group: bool = True,
        parent: str = "",
    ) -> requests.Response:
        query: dict[str, Any] = {
            "from": [{"collectionId": layout.INVITES, "allDescendants": group}]
        }
        if where is not None:
            query["where"] = where
        url = f"{self.base}{'/' + parent if parent else ''}:runQuery"
        return requests.post(
            url, json={"structuredQuery": query}, headers=self._headers(user), timeout=30
        )

    # ----------------------------------------------------------- writes

    def join(self, p: str, uid: str, role: str, extra: dict[str, Any] | None = None) -> dict:
        """Set ``members.<uid>`` (and ``extra`` top-level fields) of project ``p``."""
        fields: dict[str, Any] = {"members": {uid: role}, **(extra or {})}
        mask = [f"members.`{uid}`", *(extra or {})]
        return {
            "update": {
                "name": f"{self.root}/{layout.project(p)}",
                "fields": {k: encode(v) for k, v in fields.items()},
            },
            "updateMask": {"fieldPaths": mask},
            "currentDocument": {"exists": True},
        }

    def drop(self, path: str) -> dict:
        return {"delete": f"{self.root}/{path}"}

    def accept(self, p: str, user: User, role: str, email: str | None = None) -> list[dict]:
        """The dashboard's accept: one batch, join as ``role`` and delete the invitation."""
        return [self.join(p, user.uid, role), self.drop(layout.invite(p, email or user.email))]

    def put_invite(self, p: str, doc: dict[str, Any], doc_id: str | None = None) -> dict:
        name = f"{self.root}/{layout.invites(p)}/{doc_id or doc['email']}"
        fields = {k: encode(v) for k, v in doc.items() if k != "invited_at"}
        write: dict[str, Any] = {"update": {"name": name, "fields": fields}}
        if "invited_at" in doc:  # the server's time of the write, as serverTimestamp() sends it
            write["updateTransforms"] = [
                {"fieldPath": "invited_at", "setToServerValue": "REQUEST_TIME"}
            ]
        return write


def user_of(settings: config.Settings, email: str, *, verified: bool) -> User:
    """A real Auth-emulator user; ``verified`` marks its email verified, then signs in again."""
    toolkit = auth.toolkit_for(settings)
    grant = toolkit.sign_up(email, PASSWORD)
    if verified:
        url = (
            f"http://{settings.auth_emulator_host}/identitytoolkit.googleapis.com/v1/projects/"
            f"{settings.cloud_project}/accounts:update"
        )
        resp = requests.post(
            url,
            json={"localId": grant.uid, "emailVerified": True},
            headers={"Authorization": "Bearer owner"},
            timeout=30,
        )
        resp.raise_for_status()
        grant = toolkit.sign_in_with_password(email, PASSWORD)
    assert claims(grant.id_token)["email_verified"] is verified
    return User(grant.uid, email, grant.id_token)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def token_with(settings: config.Settings, uid: str, email: str, verified: bool) -> str:
    """An unsigned ID token carrying ``email`` as given (the emulator accepts unsigned ones).

    The Auth emulator lower-cases addresses, but other providers may hand the rules an
    address with capitals; the rules must still match it to the lower-case invitation.
    """
    now = int(time.time())
    payload = {
        "iss": f"https://securetoken.google.com/{settings.cloud_project}",
        "aud": settings.cloud_project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "email": email,
        "email_verified": verified,
        "firebase": {"sign_in_provider": "google.com", "identities": {}},
    }

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


@pytest.fixture()
def world(stack: config.Settings, db: firestore.Client) -> World:
    url = f"http://{stack.auth_emulator_host}/emulator/v1/projects/{stack.cloud_project}/accounts"
    requests.delete(url, timeout=30).raise_for_status()
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    return World(
        stack,
        db,
        owner=user_of(stack, "ana@example.com", verified=True),
        writer=user_of(stack, "wes@example.com", verified=True),
        bo=user_of(stack, "bo@example.com", verified=True),
        cy=user_of(stack, "cy@example.com", verified=True),
        dee=user_of(stack, "dee@example.com", verified=False),
    )


def email_is(email: str) -> dict[str, Any]:
    return {
        "fieldFilter": {
            "field": {"fieldPath": "email"},
            "op": "EQUAL",
            "value": {"stringValue": email},
        }
    }


def found(resp: requests.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return sorted(
        r["document"]["name"].split("/Projects/")[1] for r in resp.json() if "document" in r
    )


# --------------------------------------------------------------------------- accepting


def test_the_invited_user_joins_with_the_invited_role_and_the_invitation_goes(world: World) -> None:
    p = world.project("vision")
    world.invitation(p, world.bo.email, "writer")
    before = world.members(p)
    assert world.commit(world.bo, world.accept(p, world.bo, "writer")) == 200
    assert world.members(p) == {**before, world.bo.uid: "writer"}
    assert not world.invited(p, world.bo.email)
    # Used once: accepting again (even as the same role) is refused.
    assert world.commit(world.bo, world.accept(p, world.bo, "writer")) == 403


def test_an_existing_member_accepts_a_new_role(world: World) -> None:
    p = world.project("vision", **{world.bo.uid: "viewer"})
    world.invitation(p, world.bo.email, "owner")
    assert world.commit(world.bo, world.accept(p, world.bo, "owner")) == 200
    assert world.members(p)[world.bo.uid] == "owner"


def test_capitals_in_the_token_email_still_match_the_lower_case_invitation(
    world: World,
) -> None:
    p = world.project("vision")
    world.invitation(p, "eve@example.com", "viewer")
    shouting = token_with(world.settings, "eve-uid", "Eve@Example.COM", verified=True)
    eve = User("eve-uid", "eve@example.com", shouting)
    assert found(world.query(shouting, email_is("eve@example.com"))) == [
        "vision/Invites/eve@example.com"
    ]
    assert world.commit(shouting, world.accept(p, eve, "viewer")) == 200
    assert world.members(p)["eve-uid"] == "viewer"


ABUSES = [
    "unverified email",
    "somebody else's invitation",
    "a higher role than invited",
    "a lower role than invited",
    "adding someone else",
    "adding self and someone else",
    "keeping the invitation",
    "deleting the invitation without joining",
    "an expired invitation",
    "changing another field",
    "removing another member",
    "demoting the owner",
    "no invitation at all",
    "another project's invitation",
    "unsigned request",
    "writing data in the same batch",
]


def attempt(world: World, abuse: str) -> tuple[User | None, list[dict[str, Any]], str]:
    """Seed two projects with invitations; who tries ``abuse``, their batch, the email to keep."""
    p = world.project("vision")
    other = world.project("rival")
    bo, cy, dee = world.bo, world.cy, world.dee
    world.invitation(p, bo.email, "writer")
    world.invitation(p, dee.email, "writer")
    world.invitation(other, bo.email, "owner")
    invited_email = bo.email
    who: User | None = bo
    writes: list[dict[str, Any]]
    if abuse == "unverified email":
        who, invited_email = dee, dee.email
        writes = world.accept(p, dee, "writer")
    elif abuse == "somebody else's invitation":
        who = cy  # verified, but not the address invited
        writes = world.accept(p, cy, "writer", email=bo.email)
    elif abuse == "a higher role than invited":
        writes = world.accept(p, bo, "owner")
    elif abuse == "a lower role than invited":
        writes = world.accept(p, bo, "viewer")
    elif abuse == "adding someone else":
        writes = [world.join(p, cy.uid, "writer"), world.drop(layout.invite(p, bo.email))]
    elif abuse == "adding self and someone else":
        both = world.join(p, bo.uid, "writer")
        both["update"]["fields"]["members"]["mapValue"]["fields"][cy.uid] = encode("viewer")
        both["updateMask"]["fieldPaths"].append(f"members.`{cy.uid}`")
        writes = [both, world.drop(layout.invite(p, bo.email))]
    elif abuse == "keeping the invitation":
        writes = [world.join(p, bo.uid, "writer")]
    elif abuse == "deleting the invitation without joining":
        writes = [world.drop(layout.invite(p, bo.email))]
    elif abuse == "an expired invitation":
        world.invitation(p, bo.email, "writer", expires=-dt.timedelta(seconds=1))
        writes = world.accept(p, bo, "writer")
    elif abuse == "changing another field":
        writes = [
            world.join(p, bo.uid, "writer", {"description": "mine now"}),
            world.drop(layout.invite(p, bo.email)),
        ]
    elif abuse == "removing another member":
        drop_writer = world.join(p, bo.uid, "writer")
        drop_writer["updateMask"]["fieldPaths"].append(f"members.`{world.writer.uid}`")
        writes = [drop_writer, world.drop(layout.invite(p, bo.email))]
    elif abuse == "demoting the owner":
        demote = world.join(p, bo.uid, "writer")
        demote["update"]["fields"]["members"]["mapValue"]["fields"][world.owner.uid] = encode(
            "viewer"
        )
        demote["updateMask"]["fieldPaths"].append(f"members.`{world.owner.uid}`")
        writes = [demote, world.drop(layout.invite(p, bo.email))]
    elif abuse == "no invitation at all":
        who = cy  # invited nowhere: there is no invitation of his to delete
        writes = [world.join(p, cy.uid, "writer")]
    elif abuse == "another project's invitation":
        # Bo is invited to `rival` as owner and to `vision` as writer: the owner
        # invitation does not make him owner of `vision`.
        writes = [world.join(p, bo.uid, "owner"), world.drop(layout.invite(other, bo.email))]
    elif abuse == "writing data in the same batch":
        # The batch is judged by membership before it: joining grants nothing within it.
        experiment = {
            "update": {
                "name": f"{world.root}/{layout.experiment(p, 'sneaky')}",
                "fields": {"name": encode("sneaky"), "created_at": encode(NOW)},
            },
            "currentDocument": {"exists": False},
        }
        writes = [*world.accept(p, bo, "writer"), experiment]
    elif abuse == "unsigned request":
        who = None
        writes = world.accept(p, bo, "writer")
    else:
        raise AssertionError(abuse)
    return who, writes, invited_email


@pytest.mark.parametrize("abuse", ABUSES)
def test_every_abuse_of_an_invitation_is_refused_and_changes_nothing(
    world: World, abuse: str
) -> None:
    who, writes, invited_email = attempt(world, abuse)
    before = world.members("vision"), world.members("rival")
    assert world.commit(who, writes) == 403
    assert (world.members("vision"), world.members("rival")) == before
    assert world.invited("vision", invited_email) and world.invited("rival", world.bo.email)
    assert not world.db.document(layout.experiment("vision", "sneaky")).get().exists


# Each clause of the accepting rules, weakened, lets one abuse through: none is dead weight.
MUTATIONS = {
    "unverified email": (
        "request.auth.token.get('email_verified', false) == true",
        "true",
    ),
    "keeping the invitation": ("&& !existsAfter(invitePath(p, myEmail()))", ""),
    # Both writes of the batch check the role: the join, and the invitation's delete.
    "a higher role than invited": (
        "incoming().members.get(request.auth.uid, null) == invitation.role",
        "true",
        ".get(request.auth.uid, null) == resource.data.role",
        ".get(request.auth.uid, null) != null",
    ),
    "adding self and someone else": (
        "affectedKeys()\n          .hasOnly([request.auth.uid])",
        "affectedKeys()\n          .hasAny([request.auth.uid])",
    ),
    "an expired invitation": ("&& invitation.expires_at > request.time", ""),
    "changing another field": (
        "incoming().diff(resource.data).affectedKeys().hasOnly(['members'])",
        "true",
    ),
}


@pytest.mark.parametrize("abuse", sorted(MUTATIONS))
def test_weakening_a_clause_lets_its_abuse_through(world: World, abuse: str) -> None:
    rules = RULES_FILE.read_text(encoding="utf-8")
    swaps = MUTATIONS[abuse]
    for old, new in zip(swaps[::2], swaps[1::2], strict=True):
        assert rules.count(old) == 1, old
        rules = rules.replace(old, new)
    load_rules(world.settings, rules)
    who, writes, _ = attempt(world, abuse)
    assert world.commit(who, writes) == 200


# --------------------------------------------------------------------------- inviting


def invite_doc(p: str, inviter: User, **change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "email": "new@example.com",
        "role": "writer",
        "project": p,
        "invited_by": inviter.uid,
        "invited_at": "server time",
        "expires_at": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=14),
    }
    doc.update(change)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize(
    ("who", "change", "doc_id", "allowed"),
    [
        ("owner", {}, None, True),
        ("owner", {"role": "owner"}, None, True),
        ("writer", {}, None, False),
        ("outsider", {}, None, False),
        ("invitee", {"email": "bo@example.com", "role": "owner"}, None, False),
        ("owner", {"email": "New@example.com"}, None, False),  # stored lower-case only
        ("owner", {}, "other@example.com", False),  # named after another address
        ("owner", {"email": "not-an-address"}, None, False),
        ("owner", {"role": "admin"}, None, False),
        ("owner", {"project": "rival"}, None, False),
        ("owner", {"invited_by": "someone-else"}, None, False),
        ("owner", {"invited_at": None}, None, False),
        ("owner", {"expires_at": NOW - dt.timedelta(days=1)}, None, False),
        ("owner", {"expires_at": NOW + dt.timedelta(days=400)}, None, False),
        ("owner", {"uid": "forged"}, None, False),
    ],
)
def test_only_owners_invite_and_only_well_formed_invitations(
    world: World, who: str, change: dict[str, Any], doc_id: str | None, allowed: bool
) -> None:
    p = world.project("vision")
    world.project("rival")
    user = {"owner": world.owner, "writer": world.writer, "outsider": world.cy}.get(who, world.bo)
    doc = invite_doc(p, user, **change)
    status = world.commit(user, [world.put_invite(p, doc, doc_id)])
    assert status == (200 if allowed else 403)
    assert world.invited(p, doc_id or doc["email"]) is allowed


def test_owners_revoke_invitations_and_nobody_else_does(world: World) -> None:
    p = world.project("vision")
    world.invitation(p, world.bo.email)
    for user in (world.writer, world.cy):
        assert world.commit(user, [world.drop(layout.invite(p, world.bo.email))]) == 403
    assert world.invited(p, world.bo.email)
    assert world.commit(world.owner, [world.drop(layout.invite(p, world.bo.email))]) == 200
    assert not world.invited(p, world.bo.email)


# --------------------------------------------------------------------------- reading


def test_a_verified_user_finds_their_own_invitations_and_nobody_elses(world: World) -> None:
    world.project("vision")
    world.project("rival")
    world.invitation("vision", world.bo.email)
    world.invitation("rival", world.bo.email, "viewer")
    world.invitation("vision", world.cy.email)
    world.invitation("vision", world.dee.email)

    bo = world.bo
    assert found(world.query(bo, email_is(bo.email))) == [
        "rival/Invites/bo@example.com",
        "vision/Invites/bo@example.com",
    ]
    assert world.get(bo, layout.invite("vision", bo.email)) == 200
    # Somebody else's invitations, all invitations, and an unverified address: refused.
    assert world.query(bo, email_is(world.cy.email)).status_code == 403
    assert world.query(bo, None).status_code == 403
    assert world.get(bo, layout.invite("vision", world.cy.email)) == 403
    # That an invitation to oneself is gone (accepted, revoked) may be learnt; not another's.
    assert world.get(world.cy, layout.invite("rival", world.cy.email)) == 404
    assert world.get(world.cy, layout.invite("rival", "zed@example.com")) == 403
    assert world.get(world.dee, layout.invite("rival", world.dee.email)) == 403
    assert world.query(world.dee, email_is(world.dee.email)).status_code == 403
    assert world.get(world.dee, layout.invite("vision", world.dee.email)) == 403


def test_owners_list_a_projects_invitations_and_members_below_owner_do_not(
    world: World,
) -> None:
    world.project("vision")
    world.invitation("vision", world.bo.email)
    world.invitation("vision", world.cy.email)
    parent = layout.project("vision")
    owner = world.query(world.owner, None, group=False, parent=parent)
    assert found(owner) == ["vision/Invites/bo@example.com", "vision/Invites/cy@example.com"]
    assert world.query(world.writer, None, group=False, parent=parent).status_code == 403
    assert world.get(world.writer, layout.invite("vision", world.bo.email)) == 403
