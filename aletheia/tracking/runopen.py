"""Opening a run: its document created (the lock on its id) or started offline.

The fields are checked whole before anything is written, the journal
directory is checked writable before the document exists (no orphan
``running`` run), then the run's journal gets its header and its writer
starts; the observers hear ``started``.
"""

from __future__ import annotations

import logging
from typing import Any

from aletheia.tracking import journal, openruns, runids, runstart, validation
from aletheia.tracking.run import Parent, Run
from aletheia.tracking.runids import time_run_id
from aletheia.tracking.runmodel import RunRef
from aletheia.tracking.writing import STARTED, RunEvent

log = logging.getLogger(__name__)


def open_run(exper: Parent, fields: dict[str, Any], run_id: str | None) -> Run:
    """Start a run of ``exper`` with ``fields`` (id ``run_id``, else a new one)."""
    from aletheia.cloud.transient import TRANSIENT

    ms = exper.ms
    fields.update(runstart.lifecycle_fields(ms.project, exper.name, ms.heartbeat_s, exper.debug))
    started = fields["started_at"]
    # Whole, as Firestore will hold it (names, int64, size), before anything is written.
    validation.validate_run_document(fields)
    journal.ensure_writable(ms.journal_root)  # before the document: no orphan `running` run
    created = False
    try:
        if exper.online:
            run_id, fields = runids.create_run(
                ms.direct,
                ms.db,
                ms.project,
                exper.name,
                fields,
                run_id,
                numbered=exper.auto_inc_ids,
            )
            created = True
    except TRANSIENT as exc:
        log.warning("aletheia: Firestore unreachable (%s); the run starts offline", exc)
    if run_id is None:
        run_id = time_run_id()
    fields["run"] = run_id
    if created:
        runstart.register_blobs(ms.db, ms.project, exper.name, run_id, fields)
    try:
        run = Run(exper, run_id, fields)
    except OSError as exc:  # the journal could not be opened after all (a race, a quota)
        if created:
            runstart.record_unjournaled(ms.direct, RunRef(ms.project, exper.name, run_id), exc)
        raise journal.unwritable(ms.journal_root, exc) from exc
    run.writer.claimed = created
    info = {
        "cloud_project": ms.settings.cloud_project,
        "created": created,
        "heartbeat_s": ms.heartbeat_s,
    }
    event = RunEvent(STARTED, run.ref, started, fields=fields, info=info)
    run.writer.journal_safely(run.journal.on_event, event)  # the journal's header
    run.writer.create_run(run.ref, fields)  # started offline: the first flush creates it
    run.writer.start()
    openruns.opened(run)
    ms.observers.notify(event)
    return run


__all__ = ["open_run"]
