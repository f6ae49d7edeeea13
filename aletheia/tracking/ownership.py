"""A run belongs to the one live process that started it.

Every start draws an owner token, stored on the run document (``owner_token``).
A start that reached Firestore created the document, so the id is its own.
A start that could not (Firestore unreachable: the run starts offline) has
not claimed its id yet: before its first write, its writer — or
``aletheia sync`` replaying its journal — *creates* the document. If another
process created it meanwhile (the same explicit ``run_id`` started twice),
nothing of that run is touched: the offline run is kept under a new id,
``{id}-conflict-{token}``, whose document says ``conflict_of: {id}``, and
the user is told.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore, gexc
from aletheia.cloud.transient import is_transient
from aletheia.tracking.runmodel import RunRef

log = logging.getLogger(__name__)

#: Run-document field holding the owner token of the process that started the run.
OWNER = "owner_token"
#: Field of a run kept under a new id because its id belonged to another run.
CONFLICT_OF = "conflict_of"


def new_token() -> str:
    """A fresh owner token for one run start."""
    return secrets.token_hex(8)


def claim(
    db: firestore.Client,
    path: str,
    owner: str,
    fields: Mapping[str, Any],
    timeout: float,
    *,
    smaller: Mapping[str, Any] | None = None,
) -> bool:
    """Create the run document at ``path`` for ``owner``; False if another owner has it.

    True also when the document already exists with this owner (an earlier
    create that timed out on our side but landed). If Firestore refuses
    ``fields`` themselves (a value too large), the document is created from
    ``smaller`` (the start's validated fields) and the rest follows in the
    run's ordinary writes, where a refusal is reported as usual.
    """
    ref = db.document(path)
    # One attempt each (no client-side retries): the caller's flush loop is the retry.
    snap = ref.get(retry=None, timeout=timeout)
    if snap.exists:
        return owner_of(snap) == owner
    attempts = [fields] if smaller is None else [fields, smaller]
    for n, attempt in enumerate(attempts):
        try:
            ref.create({**attempt, OWNER: owner}, retry=None, timeout=timeout)
            return True
        except gexc.AlreadyExists:
            return owner_of(ref.get(retry=None, timeout=timeout)) == owner
        except Exception as exc:
            if is_transient(exc) or n == len(attempts) - 1:
                raise
    return False  # pragma: no cover (the loop returns or raises)


def owner_of(snap: Any) -> Any:
    """The owner token a run document's snapshot holds (None: no document, or no token)."""
    return (snap.to_dict() or {}).get(OWNER) if snap.exists else None


def claim_or_move(
    db: firestore.Client,
    ref: RunRef,
    owner: str,
    fields: Mapping[str, Any],
    timeout: float,
    *,
    smaller: Mapping[str, Any],
    on_move: Callable[[RunRef, dict[str, Any]], None],
) -> RunRef:
    """Claim ``ref``'s id for ``owner``; while another process owns it, move to a new id.

    Each move is handed to ``on_move`` (the new run, and the fields that say
    so: ``run`` and ``conflict_of``) before anything is written under the
    new id, so the caller can journal it; the user is told. Returns the run
    the id of which is now ``owner``'s.
    """
    fields, smaller = dict(fields), dict(smaller)
    while not claim(db, ref.path, owner, fields, timeout, smaller=smaller):
        old = ref.run
        new = conflict_id(old, owner)
        moved = {"run": new, CONFLICT_OF: old}
        ref = RunRef(ref.project, ref.experiment, new)
        on_move(ref, moved)
        fields.update(moved)
        smaller.update(moved)
        log.warning("aletheia: %s", conflict_message(old, new, ref.experiment))
    return ref


def conflict_id(run: str, owner: str) -> str:
    """The id an offline run takes when ``run`` turned out to be another process's."""
    candidate = f"{run}-conflict-{owner[:8]}"
    try:
        return layout.validate_id(candidate, "run id")
    except Exception:  # too long for an id: the token alone still says whose it is
        return layout.validate_id(f"conflict-{owner}", "run id")


def conflict_message(old: str, new: str, experiment: str) -> str:
    """What the user is told."""
    return (
        f"run id {old!r} of {experiment!r} was started by another process while this one "
        f"could not reach Firestore: its data is untouched, and this run's is kept as run "
        f"{new!r} (field {CONFLICT_OF}: {old!r})"
    )
