"""Opening a run: its document created (the lock on its id) or started offline.

The fields are checked whole before anything is written, the journal
directory is checked writable before the document exists (no orphan
``running`` run), then the run's journal gets its header and its writer
starts; the observers hear ``started``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aletheia.tracking import journal, openruns, runcapture, runids, runstart, validation
from aletheia.tracking.run import Parent, Run
from aletheia.tracking.runcapture import RunCapture
from aletheia.tracking.runids import time_run_id
from aletheia.tracking.runmodel import FAILED, RunRef
from aletheia.tracking.writing import STARTED, RunEvent

log = logging.getLogger(__name__)


def open_run(exper: Parent, fields: dict[str, Any], run_id: str | None, capture: RunCapture) -> Run:
    """Start a run of ``exper`` with ``fields`` (id ``run_id``, else a new one).

    ``capture`` reads the git state while the document is created; unless
    ``fields`` already hold it (the strict policy), the run's first flush
    sends it. The rest of the capture goes on once the run is open.
    """
    from aletheia.cloud.transient import TRANSIENT

    ms = exper.ms
    fields.update(runstart.lifecycle_fields(ms.project, exper.name, ms.heartbeat_s, exper.debug))
    fields.setdefault("env", None)
    fields.setdefault(runcapture.FIELD, runcapture.incomplete())
    started = fields["started_at"]
    # Whole, as Firestore will hold it (names, int64, size), before anything is written.
    validation.validate_run_document(fields)
    journal.ensure_writable(ms.journal_root)  # before the document: no orphan `running` run
    created = False
    numbered = run_id is None and exper.auto_inc_ids
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
                hint=exper.next_number,
            )
            created = True
    except TRANSIENT as exc:
        log.warning("aletheia: Firestore unreachable (%s); the run starts offline", exc)
    if run_id is None:
        run_id = time_run_id()
    fields["run"] = run_id
    if created and numbered:
        exper.next_number = int(run_id) + 1
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
    run.capture = capture
    openruns.opened(run)
    ms.observers.notify(event)
    if "git" not in fields:  # read beside the creation: sent with the first flush
        try:
            run.set_fields(capture.start_fields())
        except BaseException as exc:  # a git warning the caller's filters make an error
            capture.cancel()
            run.finish(FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
    capture.attach(run, _after_capture(exper, run, created=created, numbered=numbered))
    return run


def _after_capture(
    exper: Parent, run: Run, *, created: bool, numbered: bool
) -> list[Callable[[dict[str, Any]], None]]:
    """What follows the capture, off the caller's thread: the blob registry learns the run
    holds its blobs; the experiment's stored next-number hint moves past this run."""
    if not created:
        return []
    ms, ref = exper.ms, run.ref
    steps: list[Callable[[dict[str, Any]], None]] = [
        lambda found: runstart.register_blobs(ms.db, ms.project, ref.experiment, ref.run, found)
    ]
    if numbered:
        number = int(ref.run)
        steps.append(lambda _: runids.advance_hint(ms.db, ms.project, ref.experiment, number))
    return steps


__all__ = ["open_run"]
