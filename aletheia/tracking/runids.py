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
) -> tuple[str, dict[str, Any]]:
    """Create the run document; returns its id and the fields it was created with.

    ``run_id`` is taken as given (a taken id is a
    :class:`~aletheia.tracking.direct.RunExistsError`); otherwise ``numbered``
    runs get the next free number, the others a fresh :func:`time_run_id`.
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
    return _create_numbered(writes, db, project, experiment, fields)


def _create_numbered(
    writes: RunWriteStore, db: firestore.Client, p: str, e: str, fields: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Ids 1, 2, 3 ...: optimistic ``create`` of ``Runs/{n}``, n+1 when it exists.

    ``next_run_id`` on the experiment is only a hint where to start; it never
    decides an id, so concurrent starters cannot get the same one.
    """
    snap = db.document(layout.experiment(p, e)).get(**direct.start_call())
    n = max(1, int((snap.to_dict() or {}).get("next_run_id", 1)))
    while True:
        doc = {**fields, "run": str(n), "number": n}
        try:
            writes.create_run(RunRef(p, e, str(n)), doc)
            break
        except RunExistsError:
            n += 1
    try:
        db.document(layout.experiment(p, e)).update({"next_run_id": n + 1}, **direct.start_call())
    except Exception as exc:  # only a hint
        if not is_transient(exc):
            raise
    return str(n), doc
