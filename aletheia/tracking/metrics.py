"""The buffered, chunked, background writer of a run's metrics and fields.

``add`` (the training thread) stamps a point with its per-key index, appends
it to an in-memory buffer (typed arrays: see :mod:`aletheia.tracking.series`)
and one line to the journal, and returns. A writer thread wakes every
``flush_interval_s`` and sends what accumulated, and in between each time
:data:`~aletheia.tracking.earlyflush.EARLY_CHUNKS` chunks have filled, to
commit those full chunks alone (:mod:`aletheia.tracking.earlyflush`: so a
run's end has little left to send):

* point ``i`` of key ``k`` belongs to chunk ``i // CHUNK_POINTS``, stored at
  ``Metrics/{k}~{chunk}`` with the chunk's *whole* content (``set``, not an
  append), so sending a chunk again writes the same document: replaying the
  journal is exactly-once by construction;
* the run document gets the metric summaries and any fields set since the
  last flush, in the same commits (at most 500 writes each);
* once Firestore acknowledges, an ``ack`` record goes to the journal.

When Firestore cannot be reached the run goes on: points stay in memory and
in the journal, a warning is logged once, and each later flush tries again
(``aletheia sync`` sends whatever a dead process could not).

A write Firestore *refuses* (see :mod:`aletheia.cloud.transient`) is not an
outage: everything else of the flush is committed, the refusal is reported
once with its cause, the refused chunk or fields are not sent again by this
process and stay unacknowledged in the journal (``aletheia sync`` sends
them once the cause is fixed). Each distinct problem — an outage, a
refusal, a journal that cannot be written — is reported once, on its own.
How refusals, outages, data lost by Firestore and an offline start's id
claim are handled is :mod:`aletheia.tracking.recovery`.

The run document summarises the first metrics logged, within
:class:`~aletheia.tracking.validation.SummaryBudget`; beyond it the summary stops
growing (and says so in ``summary_capped``) while every series is still
stored in full.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aletheia.tracking.earlyflush import EarlyChunkFlush
from aletheia.tracking.journal import JournalWriter
from aletheia.tracking.journal_loss import JournalLoss
from aletheia.tracking.recovery import WriterRecovery
from aletheia.tracking.runmodel import (
    CHUNK_POINTS,
    HEARTBEAT_S,
    LATEST_FIELD,
    RunRef,
    Summary,
    merge_fields,
)
from aletheia.tracking.series import Columns, Series, columns_doc, new_columns
from aletheia.tracking.store import FirestoreStore, Write, WritesRejectedError
from aletheia.tracking.validation import SummaryBudget
from aletheia.tracking.writing import MetricPoint, RunWriteStore, tag_fields

log = logging.getLogger(__name__)

#: Default seconds between flushes (Firestore sustains ~1 write/s per document).
FLUSH_INTERVAL_S = 1.0
#: How often buffered journal lines are handed to the OS, Firestore flush or not: what a
#: SIGKILL can lose (a write syscall per point would cost more than the rest of ``add``).
JOURNAL_SYNC_S = 0.1


class MetricWriter(EarlyChunkFlush, WriterRecovery, RunWriteStore):
    """Buffers a run's points and field updates; a thread flushes them in batches.

    The :class:`~aletheia.tracking.writing.RunWriteStore` of the one run
    ``ref`` names, as it is open in this process (calls name that run; after
    an id conflict it goes on under its new id). ``on_heartbeat`` hears each
    heartbeat Firestore acknowledged, at most one per ``heartbeat_s``.
    """

    def __init__(
        self,
        ref: RunRef,
        store: FirestoreStore,
        journal: JournalWriter,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        retry_for_s: float = 5.0,
        owner: str | None = None,
        claimed: bool = True,
        on_renamed: Callable[[str], None] | None = None,
        on_heartbeat: Callable[[dt.datetime], None] | None = None,
        final_retry_s: float = 30.0,
    ) -> None:
        self.ref = ref
        #: The owner token of this process's run (see :mod:`aletheia.tracking.ownership`).
        self.owner = owner
        #: False for a run started offline: its id is claimed before the first write.
        self.claimed = claimed or owner is None
        self._on_renamed = on_renamed
        self.store = store
        self.journal = journal
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.retry_for_s = retry_for_s
        #: How long :meth:`end_run` retries an unreachable Firestore before leaving it to sync.
        self.final_retry_s = final_retry_s
        self._on_heartbeat = on_heartbeat
        self._beat: dt.datetime | None = None  # heartbeat_at of the commit in flight
        self._last_beat_event = time.monotonic()
        self.points_logged = 0
        self.offline = False
        #: Successful flushes still to rewrite everything in memory after an outage: a
        #: commit that timed out may still be applied late and must not have the last word.
        self.recovering = 0
        self._lock = threading.Lock()  # guards the buffer and indexes (training side)
        self._fields_lock = threading.Lock()  # guards the pending fields, in journal order
        self._flush_lock = threading.Lock()  # one flush at a time
        self._next_index: dict[str, int] = {}
        # Per key, the steps, values and times logged since the last drain, in typed arrays:
        # appending allocates no object the garbage collector tracks, so logging never sets
        # off a collection (a tuple per point made 140 per 100,000 points, and with them the
        # full collections that walk the whole process while add_metric waits).
        self._pending: dict[str, Columns] = {}
        self._pending_fields: list[dict[str, Any]] = []
        self._series: dict[str, Series] = {}
        self._dirty_summaries: set[str] = set()
        self._unsent_fields: list[dict[str, Any]] = []
        self._sets_acked = 0
        #: A commit succeeded after failures: Firestore may have come back without what it
        #: had acknowledged (an emulator restarted from an older export), so check.
        self._reconnected = False
        self._restore_fields: dict[str, Any] = {}  # run fields Firestore lost, to write again
        self._fields_set: dict[str, Any] = {}  # every field set so far, merged (to verify)
        self._last_heartbeat = time.monotonic()
        self._reported: set[str] = set()  # problems already reported, by kind
        self._budget = SummaryBudget()
        #: What Firestore refused for good (one line each); the journal still holds it.
        self.rejections: list[str] = []
        self._held: dict[str, int] = {}  # per key: acks stop below its first refused chunk
        self._acked_upto: dict[str, int] = {}  # per key: Firestore holds indexes below this
        #: A journal write failed (disk full, unwritable): the journal may lack points.
        self.journal_failed = False
        self._sets_ack_cap: int | None = None  # set records acked stop at a refused one
        #: Firestore refused this identity (rules, credentials): nothing more is sent.
        self.blocked = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._filled = 0  # chunks filled since the writer was last woken for them
        self._early = False  # woken for full chunks, not by the interval or a heartbeat
        self._thread: threading.Thread | None = None
        self._journal_thread: threading.Thread | None = None

    # ----------------------------------------------------------- training thread

    def add(self, key: str, value: float, step: int | None, ts: float | None = None) -> int:
        """Record one point; returns its per-key index. No network I/O."""
        ts = time.time() if ts is None else ts
        # The lock covers the index and the append, nothing else: the journal line is
        # formatted outside it and written by the journal's thread (no I/O on this path).
        with self._lock:
            index = self._next_index.get(key, 0)
            at = index if step is None else step
            columns = self._pending.get(key)
            if columns is None:
                columns = self._pending[key] = new_columns()
            columns.steps.append(at)  # three C calls: no Python frame on this path
            columns.values.append(value)
            columns.times.append(ts)
            self._next_index[key] = index + 1
            self.points_logged += 1
        if not (index + 1) % CHUNK_POINTS:  # a chunk just filled
            self._chunk_filled()
        self.journal.metric(key, index, at, value, ts)
        return index

    def queue_fields(self, fields: Mapping[str, Any]) -> None:
        """Queue a merge of run-document fields (journaled at once, in queue order: acks
        count set records in journal order). ``add`` never waits for this lock."""
        with self._fields_lock:
            self._pending_fields.append(dict(fields))
            self._journal_safely(self.journal.set_fields, fields)

    # ----------------------------------------------------------- the store interface

    def create_run(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """A run created in Firestore already needs nothing sent (its fields are remembered,
        to verify at the end); one started offline queues its fields, and the first flush
        claims its id and creates the document."""
        if self.claimed:
            self.created_with(fields)
        else:
            self.queue_fields(fields)

    def log_batch(
        self,
        ref: RunRef,
        metrics: Sequence[MetricPoint] = (),
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue the fields (params and tags merged in), then the points. No network I/O.

        Nothing is checked here: :class:`~aletheia.tracking.metastore.Run`
        validates a batch whole before handing it over.
        """
        update: dict[str, Any] = {}
        if params:
            update["params"] = dict(params)
        if tags:
            merge_fields(update, tag_fields(tags))
        if fields:
            merge_fields(update, fields)
        if update:
            self.queue_fields(update)
        for point in metrics:
            self.add(point.key, point.value, point.step, ts=point.ts)

    def set_fields(self, ref: RunRef, fields: Mapping[str, Any]) -> None:
        """Queue a merge of run-document fields (journaled at once)."""
        self.queue_fields(fields)

    def heartbeat(self, ref: RunRef) -> None:
        """Beat at the next flush, which starts now."""
        self._last_heartbeat = -math.inf
        self._wake.set()

    def end_run(
        self,
        ref: RunRef,
        status: str,
        *,
        ended_at: dt.datetime,
        error: str | None = None,
    ) -> bool:
        """Queue the end, stop the threads and flush everything, retrying for
        ``final_retry_s``; True when Firestore has it all."""
        self.queue_fields({"status": status, "ended_at": ended_at, "error": error})
        return self.close(retry_for_s=self.final_retry_s)

    def created_with(self, fields: Mapping[str, Any]) -> None:
        """The fields the run document was created with (checked like those set later)."""
        merge_fields(self._fields_set, fields)

    def start(self) -> None:
        """Start the background threads: the Firestore writer and the journal syncer.

        The syncer is separate so that a Firestore commit stuck in retries
        during an outage never holds points back from the disk.
        """
        self._thread = threading.Thread(
            target=self._loop, name=f"aletheia-writer-{self.ref.run}", daemon=True
        )
        self._journal_thread = threading.Thread(
            target=self._sync_journal, name=f"aletheia-journal-{self.ref.run}", daemon=True
        )
        self._thread.start()
        self._journal_thread.start()

    def close(self, *, retry_for_s: float = 30.0) -> bool:
        """Stop the thread and flush everything, retrying harder; True if all was sent."""
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._journal_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join()
        complete = self.flush(retry_for_s=retry_for_s)
        while complete and self.recovering:
            complete = self.flush(retry_for_s=retry_for_s)
        if complete and not self.rejections and not self.blocked:
            # Firestore may have been restarted from an older copy between two flushes,
            # which fails no commit: check before the journal is marked synced.
            with self._flush_lock:
                replayed = self._replay_what_was_lost()
                if replayed is None:
                    return False  # unchecked: the journal stays unsettled for `sync`
                if replayed:
                    complete = self._flush_locked(retry_for_s)
        return complete

    # ----------------------------------------------------------- writer thread

    def _sync_journal(self) -> None:
        while not self._stop.wait(JOURNAL_SYNC_S):
            self._journal_safely(self.journal.flush)

    def _loop(self) -> None:
        due = time.monotonic() + self.flush_interval_s
        while not self._stop.is_set():
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            early, self._early = self._early, False
            try:
                # Woken for full chunks before the interval is up: those alone (the run
                # document keeps to its interval: Firestore sustains ~1 write/s per document).
                if early and time.monotonic() < due and self._last_heartbeat > -math.inf:
                    self.flush_full_chunks()
                    continue
                due = time.monotonic() + self.flush_interval_s
                self.flush()
            except Exception as exc:  # a failing tracker never kills training
                self._warn(f"metric writer error: {exc!r}")

    def flush(self, *, retry_for_s: float | None = None) -> bool:
        """Send everything buffered now; True when Firestore acknowledged all of it."""
        with self._flush_lock:
            complete = self._flush_locked(retry_for_s)
            if complete and self._reconnected:
                self._reconnected = False
                if self._replay_what_was_lost():  # None (not checked): the end checks again
                    complete = self._flush_locked(retry_for_s)
            return complete

    def _flush_locked(self, retry_for_s: float | None) -> bool:
        """One flush; the caller holds ``_flush_lock``."""
        self._drain()
        self._journal_safely(self.journal.flush)  # durable before Firestore is asked
        if self.blocked:  # refused for who we are: asking again only hammers
            return False
        if not self.claimed and not self._claim(retry_for_s or self.retry_for_s):
            return False
        writes = self._writes()
        if not writes:
            return True
        sent = {key: s.dirty - s.refused for key, s in self._series.items() if s.dirty}
        n_fields = len(self._unsent_fields)
        try:
            self.store.commit(writes, retry_for_s=retry_for_s or self.retry_for_s)
        except WritesRejectedError as exc:
            self._refused(exc, sent, n_fields)
            return False
        except Exception as exc:
            self._went_offline(exc)
            return False
        self._acknowledged(sent, n_fields)
        self._heard_beat()
        return True

    def _heard_beat(self) -> None:
        """Tell ``on_heartbeat`` of an acknowledged heartbeat, at most once per interval."""
        beat, self._beat = self._beat, None
        due = time.monotonic() - self._last_beat_event >= self.heartbeat_s
        if beat is None or self._on_heartbeat is None or not due:
            return
        self._last_beat_event = time.monotonic()
        try:
            self._on_heartbeat(beat)
        except Exception as exc:  # an observer never stops the writer
            self._warn(f"heartbeat observer failed: {exc!r}", kind="observer")

    @property
    def caught_up(self) -> bool:
        """True when Firestore is reachable and no outage needs a confirming rewrite."""
        return not self.offline and not self.recovering

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            upto = {key: self._next_index[key] for key in pending}
        with self._fields_lock:
            fields, self._pending_fields = self._pending_fields, []
        capped = self._budget.full
        for key, columns in pending.items():  # keys in the order they were first logged
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = Series(key)
                series.summarized = self._budget.admit(key)
            series.extend(upto[key] - len(columns), columns)
            if series.summarized:
                self._dirty_summaries.add(key)
        if self._budget.full and not capped:
            # Said in the document too, through a journaled set like any other field, after
            # the sets already journaled (acks count set records in journal order).
            note = self._budget.note()
            with self._fields_lock:
                self._journal_safely(self.journal.set_fields, note)
                fields += [*self._pending_fields, note]
                self._pending_fields = []
            self._warn(
                f"run {self.ref.run} logs more metrics than its document can summarise: "
                f"the summary keeps the first {len(self._budget.kept):,} (every point of every "
                "metric is still stored)",
                kind="summary",
            )
        for update in fields:
            merge_fields(self._fields_set, update)
        self._unsent_fields.extend(fields)

    def _writes(self) -> list[Write]:
        writes = [
            Write(self.ref.chunk_path(s.key, n), columns_doc(s.key, n, s.chunks[n]))
            for s in self._series.values()
            for n in sorted(s.dirty - s.refused)
        ]
        run_fields = self._run_fields()
        if run_fields:
            writes.append(Write(self.ref.path, run_fields, merge=True))
        return writes

    def _run_fields(self) -> dict[str, Any]:
        self._beat = None
        merged: dict[str, Any] = dict(self._restore_fields)
        for update in self._unsent_fields:
            merge_fields(merged, update)
        if self._dirty_summaries:
            merged["summary"] = {
                key: self._series[key].summary.to_doc() for key in self._dirty_summaries
            }
            latest = {
                key: doc
                for key in self._dirty_summaries
                if (doc := self._series[key].summary.latest_doc()) is not None
            }
            if latest:
                merged[LATEST_FIELD] = latest
        if merged or time.monotonic() - self._last_heartbeat >= self.heartbeat_s:
            merged["heartbeat_at"] = self._beat = dt.datetime.now(dt.timezone.utc)
        return merged

    def _acknowledged(
        self, sent: dict[str, set[int]], n_fields: int, *, chunks_only: bool = False
    ) -> None:
        if self.recovering and not chunks_only:
            self.recovering -= 1
        firsts_unsent: dict[str, int] = {}  # per key: its first chunk not in this commit
        for key, chunks in sent.items():
            series = self._series[key]
            unsent = series.dirty - chunks
            firsts_unsent[key] = min(unsent) * CHUNK_POINTS if unsent else series.received
            if self.recovering:
                series.dirty = set(series.chunks)  # rewrite once more, keep in memory
            else:
                series.acknowledged(chunks)
        if not chunks_only:
            self._dirty_summaries.clear()
            self._restore_fields = {}
            del self._unsent_fields[:n_fields]
            self._sets_acked += n_fields
            self._last_heartbeat = time.monotonic()
        acked = {
            key: min(firsts_unsent[key], self._held.get(key, s.received))
            for key, s in self._series.items()
            if key in sent
        }
        if acked or n_fields:
            sets = self._sets_acked if self._sets_ack_cap is None else self._sets_ack_cap
            self._journal_safely(self.journal.ack, acked, sets)
            for key, upto in acked.items():
                self._acked_upto[key] = max(self._acked_upto.get(key, 0), upto)
        if self.offline:
            log.warning("Firestore reachable again: run %s caught up", self.ref.run)
            self.offline = False
            self._reconnected = True
            self._reported.discard("offline")  # a later outage is reported again

    # ----------------------------------------------------------- helpers

    def summaries(self) -> dict[str, Summary]:
        """Summaries of every metric drained so far (call after :meth:`flush`)."""
        return {key: s.summary for key, s in self._series.items() if s.summarized}

    def unkept(self) -> JournalLoss | None:
        """What neither Firestore nor the journal holds (call at the end), or ``None``.

        Only when a journal write failed can anything be missing from both.
        """
        if not self.journal_failed:
            return None
        return JournalLoss.count(
            self.journal.path, dict(self._next_index), dict(self._acked_upto), CHUNK_POINTS
        )

    def journal_safely(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Call a journal method; a failure is reported once per kind and never raised.

        Tracking must never stop training: a journal that cannot be written
        leaves Firestore as the only copy (see :meth:`unkept`).
        """
        self._journal_safely(fn, *args, **kwargs)

    def _journal_safely(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except (OSError, ValueError) as exc:  # disk full, closed file
            self.journal_failed = True
            self._warn(
                f"cannot write the journal {self.journal.path}: {exc}; what the run logs is "
                "kept in memory only until Firestore acknowledges it",
                kind=f"journal:{type(exc).__name__}:{getattr(exc, 'errno', None)}",
            )

    def _warn(self, message: str, *, kind: str = "writer") -> None:
        """Log ``message`` unless a problem of this ``kind`` was already reported."""
        if kind not in self._reported:
            self._reported.add(kind)
            log.warning("aletheia: %s", message)
