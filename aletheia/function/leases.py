"""Files whose profiling never finished, found and driven through the function again.

A worker killed while profiling (out of memory, a timeout, a lost
instance) leaves ``Files/{sha}`` in ``processing`` with a lease, and the
event that would have retried it can be lost with the worker. Nothing else
would ever look at that document again, so stale leases are swept:

* by the storage function itself, riding on the events of data files it
  handles, at most once a minute per instance (:func:`sweep`, called from
  ``functions/main.py``, paced by :class:`SweepPacing`);
* on a schedule (Cloud Scheduler → Pub/Sub → the ``sweep_stale_leases``
  entry point, see ``terraform/sweep.tf``);
* on demand, ``aletheia datasets reprofile NAME [--stuck]``.

The sweeps run inside the function: each rebuilds the object resource the
bucket would send (read back from Cloud Storage, so it is the object as it
is now) and runs it through :func:`aletheia.function.fileevents.handle_finalized`:
the same lease, the same analysis, the same terminal statuses. The command
re-drives through the deployed function itself (:func:`reemit`): it
rewrites the object onto itself, same bytes, so the bucket sends a new
OBJECT_FINALIZE event down the real path (notification, Eventarc or the
local bridge, the function, with its memory and time limits), then waits
for the Files documents to reach a terminal status. ``--in-process``
profiles in the command's own process instead (no function needed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import layout, queries
from aletheia.data import blobstore
from aletheia.errors import AccessDeniedError
from aletheia.function import fileevents, filelease, filestatus

log = logging.getLogger("aletheia.function.leases")

#: Stale files one sweep riding on an event re-drives (bounded: the event's own time
#: budget pays for them; see :class:`SweepPacing` for how often).
SWEEP_PER_EVENT = int(os.environ.get("ALETHEIA_SWEEP_PER_EVENT", "1"))
#: Stale files one scheduled sweep re-drives.
SWEEP_PER_SCHEDULE = int(os.environ.get("ALETHEIA_SWEEP_PER_SCHEDULE", "20"))
#: The environment variable that sets the least time between two sweeps riding on one
#: instance's events (seconds; default 60, ``0`` sweeps after every data-file event).
SWEEP_EVERY_ENV = "ALETHEIA_SWEEP_EVERY_S"


class SweepPacing:
    """Whether an instance's event sweeps now: at most once per ``every_s`` seconds.

    The sweep is a query over every project's ``Files``. Run after each event, a
    10,000-file upload paid 10,000 of them, and the emulator answers each by scanning
    every ``Files`` document: the function's backlog grew with the square of the
    upload. Once a minute per instance still finds a dead worker's file within
    minutes, and the scheduled sweep stays behind it.
    """

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, clock: Callable[[], float] = time.monotonic) -> SweepPacing:
        """The pacing ``ALETHEIA_SWEEP_EVERY_S`` asks for (default: once a minute)."""
        raw = os.environ.get(SWEEP_EVERY_ENV, "60")
        try:
            every_s = float(raw)
        except ValueError:
            log.error(
                "%s=%r is not a number of seconds; sweeping once a minute", SWEEP_EVERY_ENV, raw
            )
            every_s = 60.0
        return cls(max(every_s, 0.0), clock)

    def claim(self) -> bool:
        """True (and the slot taken) if no sweep started within the last ``every_s``."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._every_s:
                return False
            self._last = now
            return True


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
    status = data.get("status")
    if status == filestatus.STATUS_SEEN:
        return True
    return status == filestatus.STATUS_PROCESSING and not filelease.held(data, now)


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
    if filelease.held(snap.to_dict() or {} if snap.exists else {}):
        return False
    if snap.exists:
        tx.update(doc, {"status": filestatus.STATUS_SEEN, "lease_until": None})
    return True


#: Object metadata a re-emitted finalize event carries (when, for the record).
REEMITTED_AT = "aletheia-reemitted-at"


def reemit(gcs: Any, bucket: str, project: str, sha256: str) -> bool:
    """Make the bucket send these bytes' OBJECT_FINALIZE event again; False if they are gone.

    A rewrite of the object onto itself (same bytes, one metadata key
    changed) finalizes a new generation, which the bucket notifies like an
    upload: the event reaches the function by its real path.
    """
    blob = gcs.bucket(bucket).get_blob(layout.blob_name(project, sha256))
    if blob is None:
        return False
    blob.metadata = {**(blob.metadata or {}), REEMITTED_AT: f"{time.time():.3f}"}
    blobstore.refinalize(blob)
    return True


def wait_terminal(
    db: firestore.Client, project: str, digests: Iterable[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """The Files documents of ``digests`` once each is terminal, or as they are at the timeout."""
    refs = {s: db.document(layout.file(project, s)) for s in digests}
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while True:
        for snap in db.get_all(list(refs.values())):
            found[snap.id] = snap.to_dict() or {} if snap.exists else {}
        pending = [s for s in refs if found.get(s, {}).get("status") not in filestatus.TERMINAL]
        if not pending or time.monotonic() >= deadline:
            return found
        refs = {s: refs[s] for s in pending}
        time.sleep(1.0)


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
    in_process: bool = False,
    wait_s: float = 600.0,
) -> list[Redriven]:
    """Re-drive profiling of these files (``stuck_only``: only those that never finished).

    By default through the deployed function (:func:`reemit`), waiting up to
    ``wait_s`` for each file's terminal status; ``in_process`` profiles here.
    """
    wanted = sorted(set(digests))
    records = {}
    refs = [db.document(layout.file(project, s)) for s in wanted]
    for snap in db.get_all(refs):
        records[snap.id] = snap.to_dict() or {} if snap.exists else {}
    chosen = [s for s in wanted if not (stuck_only and records.get(s) and not is_stale(records[s]))]
    if in_process:
        done = []
        for sha in chosen:
            result = redrive(db, gcs, bucket, project, sha, force=not stuck_only)
            done.append(result)
            if on_file is not None:
                on_file(result)
        return done
    sent, results = [], {}
    for sha in chosen:
        doc = db.document(layout.file(project, sha))
        try:
            if not stuck_only and not _release(db.transaction(), doc):
                results[sha] = Redriven(
                    project, sha, filestatus.STATUS_PROCESSING, "a worker holds it"
                )
                continue
        except gexc.PermissionDenied as exc:
            raise ReprofileDeniedError(
                "profiling a finished file again resets its Files entry, which only server "
                "credentials may write",
                "run it with server credentials, or use --stuck (which only re-sends events)",
            ) from exc
        if reemit(gcs, bucket, project, sha):
            sent.append(sha)
        else:  # the bytes are gone: the function's own code records that here
            results[sha] = redrive(db, gcs, bucket, project, sha)
    final = wait_terminal(db, project, sent, wait_s) if sent else {}
    for sha in sent:
        data = final.get(sha, {})
        status = data.get("status")
        late = None if status in filestatus.TERMINAL else f"not finished after {wait_s:.0f} s"
        results[sha] = Redriven(project, sha, status, data.get("reason") or late)
    done = [results[s] for s in chosen]
    for result in done:
        if on_file is not None:
            on_file(result)
    return done
