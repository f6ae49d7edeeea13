"""Which projects the storage function may write into: checked once per project per instance.

The function runs with server credentials, which bypass the security rules:
without a check it would write a file's profile, its row sample and its
``Files`` document into whatever project the object's name says, including
one a signed-in user registered first under the team's name (squatting).
Before its first write into a project, an instance asks
:func:`aletheia.cloud.members.ensure_project`, as every other server-credential
writer does: a missing project is created as the team's, an existing one
must be server-managed or name the configured ``owner`` (``ALETHEIA_OWNER``)
as a writer. A project found writable is remembered for the instance's
life (one read per project, not per event); a refusal is not, so a project
fixed by its owners is profiled at the next event without a restart.
"""

from __future__ import annotations

import threading

from google.cloud import firestore

from aletheia.cloud import clients, members
from aletheia.errors import AletheiaError

_lock = threading.Lock()
#: ``(project, acting uid or None)`` found writable by this instance.
_writable: set[tuple[str, str | None]] = set()


def refusal(db: firestore.Client, project: str, owner: str | None) -> AletheiaError | None:
    """``None`` if this client may write into ``project``, else the refusal (nothing raised).

    Transient errors propagate: the event is delivered again later.
    """
    key = (project, clients.acting_uid(db))
    with _lock:
        if key in _writable:
            return None
    try:
        members.ensure_project(db, project, owner=owner)
    except AletheiaError as exc:
        return exc
    with _lock:
        _writable.add(key)
    return None


def forget() -> None:
    """Forget every project found writable (a new instance's state)."""
    with _lock:
        _writable.clear()
