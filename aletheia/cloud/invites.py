"""Invitations: an owner adds a member by email, without knowing their Firebase uid.

Nobody can look a uid up by email without a server (and aletheia has none), so
the invited user adds themselves. An owner writes
``Projects/{p}/Invites/{email}`` (the address lower-cased: its document id)
with a role and an expiry; ``firestore.rules`` let the user signed in with that
address, verified, add exactly themselves to ``members`` with exactly that
role in the batch that deletes the invitation, before it expires, and nothing
else. The dashboard lists a user's pending invitations (a collection-group
query on their own email) and accepts them; owners see and revoke them there
or with ``aletheia project members invites | revoke``.

Server credentials (the CLI in cloud mode) bypass the rules, so this module
checks what the rules check for a signed-in owner: a valid role and address,
an existing project, an expiry within :data:`MAX_INVITE_DAYS`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aletheia.cloud import clients, layout, members, queries
from aletheia.cloud.lazy import firestore, gexc
from aletheia.errors import AccessDeniedError, ConflictError, NotFoundError, ValidationError

#: How long an invitation stays valid, unless the owner says otherwise.
INVITE_DAYS = 14
#: The longest validity firestore.rules accept (a day more, for clocks that run ahead).
MAX_INVITE_DAYS = 30


@dataclass(frozen=True)
class Invitation:
    """A pending invitation of one email address to one project."""

    project: str
    email: str
    role: str
    expires_at: dt.datetime
    invited_by: str | None = None
    invited_at: dt.datetime | None = None

    def expired(self, now: dt.datetime | None = None) -> bool:
        """True once the rules refuse to accept it (expiry is exclusive)."""
        return self.expires_at <= (now or dt.datetime.now(dt.timezone.utc))


def normalize_email(raw: str) -> str:
    """``raw`` as invitations store it: trimmed and lower-cased, or :class:`ValidationError`."""
    return layout.validate_email(raw.strip().lower() if isinstance(raw, str) else raw)


def invite(
    db: firestore.Client, project: str, email: str, role: str, *, days: int = INVITE_DAYS
) -> Invitation:
    """Invite ``email`` to ``project`` as ``role`` for ``days`` days; replaces an earlier one."""
    address = normalize_email(email)
    members.validate_role(role)
    if isinstance(days, bool) or not 1 <= days <= MAX_INVITE_DAYS:
        raise ValidationError(
            f"an invitation lasts 1 to {MAX_INVITE_DAYS} days, not {days}",
            f"pass --days between 1 and {MAX_INVITE_DAYS}",
        )
    _require_owner(db, project)
    uid = clients.acting_uid(db)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    doc: dict[str, Any] = {
        "email": address,
        "role": role,
        "project": project,
        # The rules want the server's time of the write here (request.time).
        "invited_at": firestore.SERVER_TIMESTAMP,
        "expires_at": expires,
    }
    if uid is not None:
        doc["invited_by"] = uid
    try:
        db.document(layout.invite(project, address)).set(doc)
    except gexc.PermissionDenied as exc:
        raise _not_owner(project) from exc
    return Invitation(project, address, role, expires, uid)


def list_invites(db: firestore.Client, project: str) -> list[Invitation]:
    """The project's invitations (expired ones too), soonest expiry first."""
    _require_owner(db, project)
    try:
        snaps = list(queries.invites_of_project(db, project).stream())
    except gexc.PermissionDenied as exc:
        raise _not_owner(project) from exc
    return [_parse(project, s.to_dict() or {}) for s in snaps]


def revoke(db: firestore.Client, project: str, email: str) -> Invitation:
    """Delete the invitation of ``email``; returns it. :class:`NotFoundError` if there is none."""
    address = normalize_email(email)
    ref = db.document(layout.invite(project, address))
    try:
        snap = ref.get()
        if not snap.exists:
            members.get_project(db, project)  # a missing project is the clearer error
            raise NotFoundError(
                f"{address} has no invitation to project {project!r}",
                f"list them with `aletheia project members invites -p {project}`",
            )
        ref.delete()
    except gexc.PermissionDenied as exc:
        raise _not_owner(project) from exc
    return _parse(project, snap.to_dict() or {})


def pending_for(db: firestore.Client, email: str) -> list[Invitation]:
    """Invitations to ``email`` that have not expired, in every project, as the invitee sees them.

    A collection-group query on the address, the one the rules let its verified owner run.
    """
    address = normalize_email(email)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        snaps = list(queries.invites_to(db, address, now).stream())
    except gexc.PermissionDenied as exc:
        raise _unverified(address) from exc
    found = []
    for snap in snaps:
        holder = snap.reference.parent.parent  # the project it is stored under, whatever it says
        if holder is not None:
            found.append(_parse(holder.id, snap.to_dict() or {}))
    return found


def accept(db: firestore.Client, project: str, email: str) -> Invitation:
    """Join ``project`` with the role the invitation of ``email`` gives; the invitation goes.

    For a signed-in user whose verified address is ``email``: one batch sets their own
    entry of ``members`` and deletes the invitation, which is all the rules allow them.
    """
    uid = clients.acting_uid(db)
    if uid is None:
        raise ValidationError(
            "accepting an invitation needs the invited user signed in",
            "sign in with the invited address: `aletheia auth login --email ADDRESS`",
        )
    address = normalize_email(email)
    ref = db.document(layout.invite(project, address))
    try:
        snap = ref.get()
    except gexc.PermissionDenied as exc:
        raise _unverified(address) from exc
    if not snap.exists:
        raise NotFoundError(
            f"{address} has no invitation to project {project!r} (or it was accepted or revoked)",
            "ask an owner to invite you: `aletheia project members invite "
            f"{address} writer -p {project}`",
        )
    invitation = _parse(project, snap.to_dict() or {})
    if invitation.expired():
        raise ConflictError(
            f"the invitation of {address} to project {project!r} expired at "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC",
            "ask an owner to invite you again",
        )
    from google.cloud.firestore_v1.field_path import FieldPath

    batch = db.batch()
    batch.update(
        db.document(layout.project(project)),
        {FieldPath("members", uid).to_api_repr(): invitation.role},
    )
    batch.delete(ref)
    try:
        batch.commit()
    except gexc.PermissionDenied as exc:  # expired or revoked meanwhile
        raise ConflictError(
            f"the invitation of {address} to project {project!r} was refused (expired or "
            "revoked meanwhile); nothing changed",
            "ask an owner to invite you again",
        ) from exc
    return invitation


def _unverified(address: str) -> AccessDeniedError:
    return AccessDeniedError(
        f"invitations to {address} can only be read with that address verified and signed in",
        "verify the address (the dashboard's projects page sends the verification email), "
        "then sign in again: `aletheia auth login`",
    )


def _require_owner(db: firestore.Client, project: str) -> None:
    """The project must exist; a signed-in user must own it (server credentials may act)."""
    uid = clients.acting_uid(db)
    if uid is None:
        members.get_project(db, project)
        return
    try:
        members.require_role(db, project, uid, "owner")
    except AccessDeniedError as exc:
        raise _not_owner(project) from exc


def _not_owner(project: str) -> AccessDeniedError:
    return AccessDeniedError(
        f"only an owner of project {project!r} manages its invitations",
        f"ask an owner (`aletheia project members list -p {project}`) to invite them",
    )


def _parse(project: str, data: dict[str, Any]) -> Invitation:
    return Invitation(
        project=project,
        email=str(data.get("email", "")),
        role=str(data.get("role", "")),
        # One without an expiry (not written by aletheia) counts as long expired.
        expires_at=data.get("expires_at") or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
        invited_by=data.get("invited_by"),
        invited_at=data.get("invited_at"),
    )
