"""Project membership: who may read and write a project, as ``firestore.rules`` enforces it.

``Projects/{p}.members`` maps a Firebase user id to a role, ``viewer`` <
``writer`` < ``owner``. The rules let Firebase-authenticated users act by
their role; server credentials (service accounts, the CLI in cloud mode)
bypass the rules and are governed by IAM instead. A project always keeps at
least one owner.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.api_core.exceptions import AlreadyExists, PermissionDenied
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from aletheia import layout
from aletheia.errors import AccessDeniedError, ConflictError, NotFoundError, ValidationError

#: Roles, weakest first.
ROLES = ("viewer", "writer", "owner")


def validate_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise."""
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", f"choose one of: {', '.join(ROLES)}")
    return role


def role_at_least(role: str | None, needed: str) -> bool:
    """True if ``role`` grants what ``needed`` grants (``owner`` covers ``writer`` ...)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(validate_role(needed))


def create_project(
    db: firestore.Client, project: str, owner: str, *, description: str = ""
) -> dict[str, Any]:
    """Create ``Projects/{project}`` with ``owner`` as its only member; the document is returned."""
    doc = {
        "name": layout.validate_id(project, "project name"),
        "description": description,
        "members": {layout.validate_id(owner, "member uid"): "owner"},
        "created_at": dt.datetime.now(dt.timezone.utc),
    }
    try:
        db.document(layout.project(project)).create(doc)
    except AlreadyExists as exc:
        raise ConflictError(
            f"project {project!r} already exists",
            f"see it with `aletheia project show -p {project}`",
        ) from exc
    return doc


def get_project(db: firestore.Client, project: str) -> dict[str, Any]:
    """The project document, or :class:`NotFoundError`."""
    snapshot = db.document(layout.project(project)).get()
    if not snapshot.exists:
        raise NotFoundError(
            f"project {project!r} does not exist",
            f"create it with `aletheia project create -p {project} --owner <uid>`",
        )
    return snapshot.to_dict() or {}


def require_role(db: firestore.Client, project: str, uid: str, needed: str) -> str:
    """The role of ``uid`` in ``project``; :class:`AccessDeniedError` unless it covers ``needed``.

    Asked before a signed-in user starts writing, so a missing role is one
    clear error up front rather than a refusal deep inside a training run.
    """
    hint = f"ask an owner to run `aletheia project members add {uid} {needed} -p {project}`"
    try:
        role = (get_project(db, project).get("members") or {}).get(uid)
    except PermissionDenied as exc:  # the rules let only members read the project
        raise AccessDeniedError(f"{uid!r} is not a member of project {project!r}", hint) from exc
    if not role_at_least(role, needed):
        raise AccessDeniedError(
            f"{uid!r} is {role or 'not a member'} in project {project!r}; this needs {needed}",
            hint,
        )
    return str(role)


def list_members(db: firestore.Client, project: str) -> dict[str, str]:
    """``{uid: role}`` of a project, sorted by role (owners first), then uid."""
    members = dict(get_project(db, project).get("members") or {})
    return dict(sorted(members.items(), key=lambda kv: (-_rank(kv[1]), kv[0])))


def add_member(db: firestore.Client, project: str, uid: str, role: str) -> str | None:
    """Give ``uid`` ``role`` in ``project`` (also changes an existing role).

    Returns the previous role, if any. Demoting the last owner is refused.
    """
    layout.validate_id(uid, "member uid")
    validate_role(role)
    return _change(db, project, uid, role)


def remove_member(db: firestore.Client, project: str, uid: str) -> str:
    """Remove ``uid`` from ``project``; returns the role it had. The last owner stays."""
    layout.validate_id(uid, "member uid")
    previous = _change(db, project, uid, None)
    if previous is None:
        raise NotFoundError(
            f"{uid!r} is not a member of project {project!r}",
            f"list members with `aletheia project members list -p {project}`",
        )
    return previous


def _change(db: firestore.Client, project: str, uid: str, role: str | None) -> str | None:
    """Set (or delete, for ``None``) one member's role in a transaction."""
    ref = db.document(layout.project(project))

    @firestore.transactional
    def apply(tx: firestore.Transaction) -> str | None:
        snapshot = ref.get(transaction=tx)
        if not snapshot.exists:
            get_project(db, project)  # raises NotFoundError with its hint
        members = dict((snapshot.to_dict() or {}).get("members") or {})
        previous = members.get(uid)
        if role is None:
            members.pop(uid, None)
        else:
            members[uid] = role
        if previous == "owner" and "owner" not in members.values():
            raise ConflictError(
                f"{uid!r} is the last owner of project {project!r}",
                "make another member owner first",
            )
        if previous is not None or role is not None:
            path = FieldPath("members", uid).to_api_repr()
            tx.update(ref, {path: role if role is not None else firestore.DELETE_FIELD})
        return previous

    return apply(db.transaction())


def _rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1
