"""How a run ends: the status it earned, its ``Results`` document, its journal's end.

:meth:`~aletheia.tracking.run.Run.finish` calls these in order: the status
(an integration ending a run while the process dies of an exception cannot
have seen it finish), then, once the writer has flushed, the result row and
the journal's end record; what neither Firestore nor the journal kept is
said once, in plain words.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from aletheia.cloud import layout
from aletheia.errors import ValidationError
from aletheia.tracking import exithooks
from aletheia.tracking.journal import JournalWriter
from aletheia.tracking.metrics import MetricWriter
from aletheia.tracking.openruns import MAX_ERROR_CHARS, ending_of
from aletheia.tracking.runmodel import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STATUSES,
    RunRef,
    result_doc,
)
from aletheia.tracking.store import FirestoreStore, Write
from aletheia.tracking.writing import RunEvent

log = logging.getLogger(__name__)


def check_status(status: str) -> None:
    """Refuse a status a run cannot end with (:class:`ValidationError`)."""
    if status not in STATUSES or status == RUNNING:
        raise ValidationError(f"cannot end a run as {status!r}", f"use one of {STATUSES[1:]}")


def earned(status: str, error: str | None) -> tuple[str, str | None]:
    """The status and error a run ends with when asked to end as ``status``."""
    dying = exithooks.ending()
    if status == FINISHED and dying is not None:
        # The process is already ending of an uncaught exception or a failing exit
        # code; whoever ends the run now (an integration's own exit hook, such as
        # MLflow's end_run) cannot have seen it finish.
        status, error = ending_of(dying)
    handling = sys.exc_info()[1]
    if error is None and status in (FAILED, INTERRUPTED) and handling is not None:
        # Ended while an exception is being handled (an integration's __exit__, e.g.
        # MLflow's ActiveRun, passes only a status): that exception is the reason.
        error = exithooks.describe(handling, MAX_ERROR_CHARS)
    return status, error


def write_result(
    store: FirestoreStore,
    ref: RunRef,
    fields: Mapping[str, Any],
    summaries: Mapping[str, Any],
    *,
    retry_for_s: float,
) -> bool:
    """Write the run's ``Results`` row; False (and a warning) if Firestore did not take it."""
    doc = result_doc(ref, dict(fields), {k: s.to_doc() for k, s in summaries.items()})
    path = layout.result(ref.project, ref.experiment, ref.run)
    try:
        store.commit([Write(path, doc)], retry_for_s=retry_for_s)
    except Exception as exc:
        log.warning("aletheia: could not write Results/%s (%s)", ref.run, exc)
        return False
    return True


def close_journal(
    writer: MetricWriter, journal: JournalWriter, event: RunEvent, complete: bool
) -> bool:
    """Write the journal's end record and close it; say what was not kept where.

    Returns whether Firestore holds the whole run (refusals make it False:
    the journal keeps what was refused for ``aletheia sync``). A journal that
    cannot be written (disk full) never stops the run.
    """
    writer.journal_safely(journal.on_event, event)  # the journal's end record
    if complete and not writer.rejections:
        writer.journal_safely(journal.synced)
    writer.journal_safely(journal.close)
    run_id, status = event.ref.run, event.status
    unkept = None if complete else writer.unkept()
    if unkept is not None and (unkept.points or not unkept.ended):
        # Exactly what neither Firestore nor the journal could keep (no traceback).
        log.warning("aletheia: %s", unkept.describe(run_id, str(status), journal.path))
    elif writer.rejections:  # reported when refused; the journal keeps it for sync
        complete = False
        log.warning(
            "aletheia: run %s ended as %s; Firestore refused part of it (reported above), "
            "which its journal %s keeps",
            run_id,
            status,
            journal.path,
        )
    elif not complete:
        log.warning(
            "aletheia: run %s ended offline; its journal %s holds everything: "
            "run `aletheia sync` when Firestore is reachable",
            run_id,
            journal.path,
        )
    return complete


__all__ = ["check_status", "close_journal", "earned", "write_result"]
