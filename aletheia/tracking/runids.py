"""A new run's id, claimed by creating its document: an id given, a time id, or 1, 2, 3 ...

The run document itself is the lock on its id: ``create`` fails if it exists
(:class:`~aletheia.tracking.direct.RunExistsError`), so concurrent starters
never get the same id and no transaction waits on a hot counter document
(see docs/DESIGN.md, "Run ids").
"""

from __future__ import annotations

import secrets
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.lazy import firestore
from aletheia.cloud.transient import is_transient
from aletheia.tracking import direct
from aletheia.tracking.direct import RunExistsError
from aletheia.tracking.runmodel import RunRef, now
from aletheia.tracking.writing import RunWriteStore


def time_run_id() -> str:
    """A sortable unique run id: ``20261123T101500-ab12cd`` (UTC start, random tail)."""
    return f"{now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def create_run(
    writes: RunWriteStore,
    db: firestore.Client,
    project: str,
    experiment: str,
    fields: dict[str, Any],
    run_id: str | None,
    *,
    numbered: bool,
    hint: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create the run document; returns its id and the fields it was created with.

    ``run_id`` is taken as given (a taken id is a
    :class:`~aletheia.tracking.direct.RunExistsError`); otherwise ``numbered``
    runs get the next free number, the others a fresh :func:`time_run_id`.
    ``hint`` is where numbering starts looking (the experiment's
    ``next_run_id`` as this process last knew it): given, the first try is
    one ``create`` and nothing else; the stored hint is moved on later, off
    the caller's thread (:func:`advance_hint`).
    """
    if run_id is not None:
        writes.create_run(RunRef(project, experiment, run_id), {**fields, "run": run_id})
        return run_id, fields
    if not numbered:
        while True:
            candidate = time_run_id()
            try:
                writes.create_run(
                    RunRef(project, experiment, candidate), {**fields, "run": candidate}
                )
                return candidate, fields
            except RunExistsError:
                continue
    return _create_numbered(writes, db, project, experiment, fields, hint)


def stored_hint(db: firestore.Client, p: str, e: str) -> int:
    """The experiment's ``next_run_id`` as Firestore holds it (1 when it has none)."""
    snap = db.document(layout.experiment(p, e)).get(**direct.start_call())
    return max(1, int((snap.to_dict() or {}).get("next_run_id", 1)))


def _create_numbered(
    writes: RunWriteStore,
    db: firestore.Client,
    p: str,
    e: str,
    fields: dict[str, Any],
    hint: int | None,
) -> tuple[str, dict[str, Any]]:
    """Ids 1, 2, 3 ...: optimistic ``create`` of ``Runs/{n}``, n+1 when it exists.

    ``next_run_id`` on the experiment is only a hint where to start; it never
    decides an id, so concurrent starters cannot get the same one. A local
    hint that turns out stale (other processes started runs) is replaced by
    the stored one at the first taken number, so it costs one read, not a
    walk over every run started since.
    """
    n = stored_hint(db, p, e) if hint is None else max(1, hint)
    fresh = hint is None
    while True:
        doc = {**fields, "run": str(n), "number": n}
        try:
            writes.create_run(RunRef(p, e, str(n)), doc)
            return str(n), doc
        except RunExistsError:
            n = n + 1 if fresh else max(n + 1, stored_hint(db, p, e))
            fresh = True


def advance_hint(db: firestore.Client, p: str, e: str, number: int) -> None:
    """Tell later starters that numbers up to ``number`` are taken (best effort: a hint)."""
    try:
        db.document(layout.experiment(p, e)).update(
            {"next_run_id": number + 1}, **direct.start_call()
        )
    except Exception as exc:  # only a hint
        if not is_transient(exc):
            raise
