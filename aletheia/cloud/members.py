"""Project membership: who may read and write a project, as ``firestore.rules`` enforces it.

``Projects/{p}.members`` maps a Firebase user id to a role, ``viewer`` <
``writer`` < ``owner``. The rules let Firebase-authenticated users act by
their role; server credentials (service accounts, the CLI in cloud mode)
bypass the rules and are governed by IAM instead. A project always keeps at
least one owner.

Every write path first makes sure its project document exists
(:func:`ensure_project`), so a project with data always has a document and
nobody can later "create" it and become its owner. A project created with
server credentials says so (``server_managed``, which the rules keep signed-in
users from writing); a server-credential client writes only into such a
project, or one naming its configured ``owner`` as a writer: a project
somebody else registered first under the team's name is refused, not used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aletheia.cloud import clients, layout, transient
from aletheia.cloud.lazy import firestore, gexc
from aletheia.errors import (
    AccessDeniedError,
    AletheiaError,
    ConflictError,
    NotFoundError,
    ValidationError,
)

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


#: Set on projects created with server credentials (firestore.rules keep users from setting it).
SERVER_MANAGED = "server_managed"


def _new_project(db: firestore.Client, project: str, owner: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": layout.validate_id(project, "project name"),
        "created_at": dt.datetime.now(dt.timezone.utc),
    }
    if owner is not None:
        doc["members"] = {layout.validate_id(owner, "member uid"): "owner"}
    if clients.acting_uid(db) is None:
        doc[SERVER_MANAGED] = True
    return doc


def create_project(
    db: firestore.Client, project: str, owner: str, *, description: str = ""
) -> dict[str, Any]:
    """Create ``Projects/{project}`` with ``owner`` as its only member; the document is returned.

    Refused (:class:`ConflictError`) when the project exists, or has data
    without a document (stored before every write path created one).
    """
    doc = _new_project(db, project, owner) | {"description": description}
    exists = ConflictError(
        f"project {project!r} already exists",
        f"ask one of its owners to add you (`aletheia project members add <uid> writer "
        f"-p {project}`), or choose another project name",
    )
    if clients.acting_uid(db) is None and _has_data(db, project):
        raise exists
    try:
        db.document(layout.project(project)).create(doc)
    except (
        gexc.AlreadyExists,
        gexc.PermissionDenied,
    ) as exc:  # users cannot even see others' projects
        raise exists from exc
    return doc


def _has_data(db: firestore.Client, project: str) -> bool:
    """True if anything is stored under ``Projects/{project}`` (server credentials only)."""
    ref = db.document(layout.project(project))
    return any(any(c.limit(1).stream()) for c in ref.collections())


def ensure_project(
    db: firestore.Client, project: str, *, owner: str | None = None, timeout: float | None = None
) -> None:
    """Make sure ``Projects/{project}`` exists and this client may write into it.

    Called by every write path before its first write. A signed-in user
    creates a missing project as its owner, or must be a writer of it. Server
    credentials create a missing project (with ``owner`` as its owner, if
    configured); an existing one must be theirs (see the module docstring).
    With ``timeout``, every call gives up within about that many seconds
    (:func:`~aletheia.cloud.transient.bounded`), whatever the library's retry.
    """
    uid = clients.acting_uid(db)
    ref = db.document(layout.project(project))
    doc = _new_project(db, project, uid or owner)
    # Every call, the create too, is retried within ``timeout``: a retry of a create that
    # landed says AlreadyExists, which is answered below as "it exists" (and it is this
    # client's). Made once, a create failed at once while gRPC was backing off from an
    # outage, Firestore answering again.
    bounded = transient.bounded(timeout) if timeout is not None else {}
    if uid is not None:  # the rules let users read only projects they are members of
        try:
            ref.create(doc, **bounded)
            return
        except (gexc.AlreadyExists, gexc.PermissionDenied):  # it exists (and may not be theirs)
            pass
        require_role(db, project, uid, "writer", timeout=timeout)
        return
    snap = ref.get(**bounded)  # a read, not a refused create, in the usual case
    if not snap.exists:
        try:
            ref.create(doc, **bounded)
            return
        except gexc.AlreadyExists:  # created meanwhile
            snap = ref.get(**bounded)
    _require_servers(project, snap.to_dict() or {}, owner)


def check_project(
    db: firestore.Client, project: str, *, owner: str | None = None, timeout: float | None = None
) -> None:
    """Raise unless ``Projects/{project}`` exists and these server credentials may write into it.

    :func:`ensure_project` without the create, for a writer that follows
    another writer's data (the storage function profiles what an upload
    stored): the uploader created the project before its first byte, so a
    missing project means it was deleted since (or never made by aletheia),
    and re-creating it would bring a deleted project back.
    """
    read = transient.bounded(timeout) if timeout is not None else {}
    snap = db.document(layout.project(project)).get(**read)
    if not snap.exists:
        raise NotFoundError(
            f"project {project!r} does not exist (deleted after the upload, or the object "
            "was not stored by aletheia); nothing was written",
            f"store data through aletheia (`aletheia datasets add ... -p {project}`), which "
            "creates the project first",
        )
    _require_servers(project, snap.to_dict() or {}, owner)


def _require_servers(project: str, stored: dict[str, Any], owner: str | None) -> None:
    """Raise unless the stored project is server-managed or names ``owner`` as a writer."""
    known = dict(stored.get("members") or {})
    if stored.get(SERVER_MANAGED) or not known or role_at_least(known.get(owner or ""), "writer"):
        return
    owners = ", ".join(sorted(u for u, r in known.items() if r == "owner"))
    raise AccessDeniedError(
        f"project {project!r} was created by a signed-in user (owners: {owners}) and does not "
        f"name {'owner ' + repr(owner) if owner else 'an owner for these credentials'} "
        "as a writer; nothing was written",
        "if the project is your team's, set `owner` (ALETHEIA_OWNER) to a uid it names as "
        f"writer or owner (an owner adds one with `aletheia project members add <uid> writer "
        f"-p {project}`); otherwise use another project name",
    )


class ProjectChecks:
    """:func:`ensure_project` asked once per project, for a writer of many runs (``sync``).

    A refusal is remembered (every journal of that project is refused the
    same way without asking again); a transient failure is not.
    """

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner
        self._ok: set[str] = set()
        self._refused: dict[str, AletheiaError] = {}

    def require(self, db: firestore.Client, project: str, *, timeout: float | None = None) -> None:
        """Raise the :class:`AletheiaError` :func:`ensure_project` gives, if any.

        ``timeout``: each of its calls gives up within about that many seconds.
        """
        if project in self._ok:
            return
        if project in self._refused:
            raise self._refused[project]
        try:
            ensure_project(db, project, owner=self.owner, timeout=timeout)
        except AletheiaError as exc:
            self._refused[project] = exc
            raise
        self._ok.add(project)


def get_project(
    db: firestore.Client, project: str, *, timeout: float | None = None
) -> dict[str, Any]:
    """The project document, or :class:`NotFoundError` (within ``timeout``, if given)."""
    read = transient.bounded(timeout) if timeout is not None else {}
    snapshot = db.document(layout.project(project)).get(**read)
    if not snapshot.exists:
        raise NotFoundError(
            f"project {project!r} does not exist",
            f"create it with `aletheia project create -p {project} --owner <uid>`",
        )
    return snapshot.to_dict() or {}


def require_role(
    db: firestore.Client, project: str, uid: str, needed: str, *, timeout: float | None = None
) -> str:
    """The role of ``uid`` in ``project``; :class:`AccessDeniedError` unless it covers ``needed``.

    Asked before a signed-in user starts writing, so a missing role is one
    clear error up front rather than a refusal deep inside a training run.
    """
    hint = f"ask an owner to run `aletheia project members add {uid} {needed} -p {project}`"
    try:
        role = (get_project(db, project, timeout=timeout).get("members") or {}).get(uid)
    except gexc.PermissionDenied as exc:  # the rules let only members read the project
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

    from google.cloud.firestore_v1.field_path import FieldPath

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
