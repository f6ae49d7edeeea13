"""The lease on a ``Files/{sha256}`` document: one worker profiles a file at a time.

Both workers that profile a file take it here: the storage function
(:mod:`aletheia.function.fileevents`, a short lease) and the Spark job
(:mod:`aletheia.spark.versionjob`, a long one, which also takes files the
function left ``deferred``). A lease is ``processing`` with a ``worker`` id and
a ``lease_until``, taken in a transaction; an expired one (a crashed worker) is
taken over, a live one is not. The result is written only while the same
worker still holds it.

A lease never brings a deleted project back: the claim that would create the
``Files`` document reads the project document in the same transaction and
writes nothing when it is gone (the deletion may land after the worker's own
checks; a ``Files`` document written anyway makes the deleted name impossible
to create again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from google.cloud import firestore

from aletheia.function.filestatus import STATUS_PROCESSING, STATUS_UNSUPPORTED, TERMINAL

#: :attr:`Claim.outcome` values.
CLAIMED = "claimed"
BUSY = "busy"  # a live lease of another worker holds the file
GONE = "gone"  # the project was deleted: nothing was written
FINISHED = "finished"  # a terminal status, which this worker does not take over


@dataclass(frozen=True)
class Claim:
    """What taking the lease found: the outcome and the status the document had."""

    outcome: str
    prior: str | None


def held(data: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Whether a live lease holds the document (``processing``, not expired)."""
    lease = data.get("lease_until")
    now = now or datetime.now(timezone.utc)
    return data.get("status") == STATUS_PROCESSING and lease is not None and lease > now


def _named_since(data: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Whether bytes recorded unsupported for having no file name now come with one.

    Bytes stored without a name (by another tool, or by aletheia before it marked its
    own) are recorded unsupported: no format can be told. When a dataset add later
    names them, the verdict was about the missing name, not the bytes: they are
    profiled now.
    """
    return (
        data.get("status") == STATUS_UNSUPPORTED
        and not data.get("path")
        and bool(fields.get("path"))
    )


def claim(
    db: firestore.Client,
    doc: Any,
    project_doc: Any,
    worker: str,
    *,
    seconds: int,
    fields: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    take_terminal: bool = False,
) -> Claim:
    """Take ``doc`` for ``worker`` for ``seconds``; written with ``fields``, and with
    ``defaults`` where the document lacks them.

    A terminal status is left alone (:data:`FINISHED`) unless ``take_terminal``
    (the Spark job profiling a ``deferred`` file, or any file when forced), or the
    bytes were unsupported for want of a name that ``fields`` now gives them.
    """
    return _claim(
        db.transaction(),
        doc,
        project_doc,
        worker,
        seconds,
        dict(fields or {}),
        dict(defaults or {}),
        take_terminal,
    )


@firestore.transactional
def _claim(
    tx: firestore.Transaction,
    doc: Any,
    project_doc: Any,
    worker: str,
    seconds: int,
    fields: dict[str, Any],
    defaults: dict[str, Any],
    take_terminal: bool,
) -> Claim:
    snap = doc.get(transaction=tx)
    # Only a new document needs the read: an existing one means the project was not
    # wiped (a deletion takes its documents with it).
    if not snap.exists and not project_doc.get(transaction=tx).exists:
        return Claim(GONE, None)
    data = snap.to_dict() or {} if snap.exists else {}
    prior = data.get("status")
    prior = None if prior is None else str(prior)
    if prior in TERMINAL and not take_terminal and not _named_since(data, fields):
        return Claim(FINISHED, prior)
    now = datetime.now(timezone.utc)
    if held(data, now):
        return Claim(BUSY, prior)
    update = {
        **{k: v for k, v in defaults.items() if k not in data},
        **fields,
        "status": STATUS_PROCESSING,
        "worker": worker,
        "lease_until": now + timedelta(seconds=seconds),
        "attempts": int(data.get("attempts") or 0) + 1,
        "started_at": now,
    }
    if not snap.exists:
        update["created_at"] = firestore.SERVER_TIMESTAMP
    tx.set(doc, update, merge=True)
    return Claim(CLAIMED, prior)


def finish(db: firestore.Client, doc: Any, worker: str, result: Mapping[str, Any]) -> bool:
    """Write ``worker``'s result and end its lease; False (nothing written) when the
    lease was taken over, or the document reached a terminal status otherwise, meanwhile."""
    return bool(_finish(db.transaction(), doc, worker, dict(result)))


@firestore.transactional
def _finish(tx: firestore.Transaction, doc: Any, worker: str, result: dict[str, Any]) -> bool:
    data = doc.get(transaction=tx).to_dict() or {}
    if data.get("worker") != worker or data.get("status") in TERMINAL:
        return False
    tx.set(
        doc,
        # A hint belongs to the result it came with (a deferred file later profiled drops it).
        {"hint": None, **result, "lease_until": None, "finished_at": firestore.SERVER_TIMESTAMP},
        merge=True,
    )
    return True


def give_back(doc: Any, status: str, **fields: Any) -> None:
    """End the lease without a result, the document back at ``status`` (a worker's
    transient error: the next attempt need not wait for the lease to expire)."""
    doc.update({"status": status, "lease_until": None, **fields})
