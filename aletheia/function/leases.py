"""Files whose profiling never finished, found and driven through the function again.

A worker killed while profiling (out of memory, a timeout, a lost
instance) leaves ``Files/{sha}`` in ``processing`` with a lease, and the
event that would have retried it can be lost with the worker. Nothing else
would ever look at that document again, so stale leases are swept:

* by the storage function itself, a few per event it handles
  (:func:`sweep`, called from ``functions/main.py``);
* on a schedule (Cloud Scheduler → Pub/Sub → the ``sweep_stale_leases``
  entry point, see ``terraform/sweep.tf``);
* on demand, ``aletheia datasets reprofile NAME [--stuck]``.

Each re-drive rebuilds the object resource the bucket would send (read
back from Cloud Storage, so it is the object as it is now) and runs it
through :func:`aletheia.function.fileevents.handle_finalized`: the same lease, the
same analysis, the same terminal statuses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout, queries
from aletheia.errors import AccessDeniedError
from aletheia.function import fileevents, filestatus

log = logging.getLogger("aletheia.function.leases")

#: Stale files the function re-drives after each event it handles (bounded: the
#: event's own time budget pays for them).
SWEEP_PER_EVENT = int(os.environ.get("ALETHEIA_SWEEP_PER_EVENT", "1"))
#: Stale files one scheduled sweep re-drives.
SWEEP_PER_SCHEDULE = int(os.environ.get("ALETHEIA_SWEEP_PER_SCHEDULE", "20"))


class ReprofileDeniedError(AccessDeniedError):
    """These credentials may not write the Files registry."""


@dataclass(frozen=True)
class Redriven:
    """What one re-drive did to one file."""

    project: str
    sha256: str
    status: str | None  # the status the document ended with; None if it could not be read
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for ``--json``."""
        return {
            "project": self.project,
            "sha256": self.sha256,
            "status": self.status,
            "error": self.error,
        }


def is_stale(data: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a Files document is stuck: ``seen`` (lease given back) or an expired lease."""
    now = now or datetime.now(timezone.utc)
    status = data.get("status")
    if status == filestatus.STATUS_SEEN:
        return True
    lease = data.get("lease_until")
    return status == filestatus.STATUS_PROCESSING and (lease is None or lease < now)


def object_resource(gcs: Any, bucket: str, project: str, sha256: str) -> dict[str, Any]:
    """The object resource the bucket would put in a finalize event for these bytes."""
    name = layout.blob_name(project, sha256)
    blob = gcs.bucket(bucket).get_blob(name)
    if blob is None:
        # Deleted meanwhile: the function records that as a terminal status.
        return {"bucket": bucket, "name": name}
    return {"bucket": bucket, "name": name, **dict(blob._properties)}


def redrive(
    db: firestore.Client,
    gcs: Any,
    bucket: str,
    project: str,
    sha256: str,
    *,
    force: bool = False,
) -> Redriven:
    """Profile these bytes again through the function's own code path.

    ``force`` also redoes a file that reached a terminal status (a newer
    profiler, a fixed bug); a live lease held by a running worker is always
    left alone.
    """
    doc = db.document(layout.file(project, sha256))
    try:
        if force and not _release(db.transaction(), doc):
            return Redriven(project, sha256, filestatus.STATUS_PROCESSING, "a worker holds it")
        fileevents.handle_finalized(object_resource(gcs, bucket, project, sha256), db, gcs)
    except fileevents.LeaseBusyError:
        return Redriven(project, sha256, filestatus.STATUS_PROCESSING, "a worker holds it")
    except gexc.PermissionDenied as exc:
        raise ReprofileDeniedError(
            "reprofiling writes the Files registry, which only server credentials may write",
            "run it with the storage function's service account (or ADC), "
            "or wait for the scheduled sweep",
        ) from exc
    snap = doc.get()
    data = snap.to_dict() or {} if snap.exists else {}
    return Redriven(project, sha256, data.get("status"), data.get("reason"))


@firestore.transactional
def _release(tx: firestore.Transaction, doc: Any) -> bool:
    """Back to ``seen`` so the lease can be taken again; False while a live lease holds it."""
    snap = doc.get(transaction=tx)
    data = snap.to_dict() or {} if snap.exists else {}
    lease = data.get("lease_until")
    live = lease is not None and lease > datetime.now(timezone.utc)
    if data.get("status") == filestatus.STATUS_PROCESSING and live:
        return False
    if snap.exists:
        tx.update(doc, {"status": filestatus.STATUS_SEEN, "lease_until": None})
    return True


def stale_in(db: firestore.Client, project: str, limit: int | None = None) -> list[str]:
    """Digests of the project's files whose lease expired, oldest first."""
    now = datetime.now(timezone.utc)
    query = queries.files_with_expired_lease(db, project, now, limit)
    return [snap.id for snap in query.stream()]


def sweep(
    db: firestore.Client,
    gcs: Any,
    bucket: str,
    limit: int,
    on_file: Callable[[Redriven], None] | None = None,
) -> list[Redriven]:
    """Re-drive up to ``limit`` files of any project whose lease expired, oldest first.

    Best effort per file: one that fails is logged and the sweep goes on.
    """
    if limit <= 0:
        return []
    now = datetime.now(timezone.utc)
    done: list[Redriven] = []
    for snap in queries.all_files_with_expired_lease(db, now, limit).stream():
        project = snap.reference.parent.parent.id if snap.reference.parent.parent else None
        if project is None:
            continue
        try:
            result = redrive(db, gcs, bucket, project, snap.id)
        except Exception as exc:  # one bad file must not stop the sweep
            log.exception("re-driving %s/%s failed", project, snap.id)
            result = Redriven(project, snap.id, None, f"{type(exc).__name__}: {exc}"[:500])
        log.info("swept stale lease %s/%s -> %s", project, snap.id, result.status)
        done.append(result)
        if on_file is not None:
            on_file(result)
    return done


def reprofile(
    db: firestore.Client,
    gcs: Any,
    bucket: str,
    project: str,
    digests: Iterable[str],
    *,
    stuck_only: bool,
    on_file: Callable[[Redriven], None] | None = None,
) -> list[Redriven]:
    """Re-drive profiling of these files (``stuck_only``: only those that never finished)."""
    wanted = sorted(set(digests))
    records = {}
    refs = [db.document(layout.file(project, s)) for s in wanted]
    for snap in db.get_all(refs):
        records[snap.id] = snap.to_dict() or {} if snap.exists else {}
    done = []
    for sha in wanted:
        data = records.get(sha, {})
        if stuck_only and data and not is_stale(data):
            continue  # finished, or a live worker has it
        result = redrive(db, gcs, bucket, project, sha, force=not stuck_only)
        done.append(result)
        if on_file is not None:
            on_file(result)
    return done
