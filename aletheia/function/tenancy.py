"""Which projects the storage function may write into: checked at every event.

The function runs with server credentials, which bypass the security rules:
without a check it would write a file's profile, its row sample and its
``Files`` document into whatever project the object's name says, including
one a signed-in user registered first under the team's name (squatting).

Before it writes, the function asks :func:`aletheia.cloud.members.check_project`:
the project must exist and be server-managed or name the configured ``owner``
(``ALETHEIA_OWNER``) as a writer. It never creates a project: every aletheia
upload creates its project before its first byte, so a missing project was
deleted since (an event delivered late, after ``project delete``), and
re-creating it, or writing ``Files`` documents under it, would bring the
deleted project back and keep its name from being created again. The check
is one document read per event and is not remembered for the same reason: a
project can be deleted between two events.
"""

from __future__ import annotations

from google.cloud import firestore

from aletheia.cloud import members
from aletheia.errors import AletheiaError


def refusal(db: firestore.Client, project: str, owner: str | None) -> AletheiaError | None:
    """``None`` if this client may write into ``project`` now, else the refusal (nothing raised).

    Transient errors propagate: the event is delivered again later.
    """
    try:
        members.check_project(db, project, owner=owner)
    except AletheiaError as exc:
        return exc
    return None
