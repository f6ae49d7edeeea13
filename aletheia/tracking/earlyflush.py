"""Full chunks committed while the run goes on, between the writer's flushes.

:class:`~aletheia.tracking.metrics.MetricWriter` flushes every
``flush_interval_s``. A fast loop fills many chunks in that time; waiting for
the interval (or the run's end) would leave them all to one large commit at
the end. So each time :data:`EARLY_CHUNKS` chunks have filled, the training
thread wakes the writer, which commits those full chunks alone: no partial
chunk (it would be rewritten at once) and no run document (Firestore sustains
about one write a second per document, so it keeps to the interval). The
journal acknowledges up to the first chunk not sent, as after any flush.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aletheia.tracking.journal import JournalWriter
from aletheia.tracking.runmodel import RunRef
from aletheia.tracking.series import Series, columns_doc
from aletheia.tracking.store import FirestoreStore, Write, WritesRejectedError

#: Full chunks (of any key) that wake the writer before its interval is up: it commits them
#: while the run goes on (one commit, no run document), so the run's end has little left.
EARLY_CHUNKS = 10


class EarlyChunkFlush:
    """The early commits of full chunks of :class:`MetricWriter` (a mixin).

    It works on the writer's own state, declared here for the type checker.
    """

    ref: RunRef
    store: FirestoreStore
    journal: JournalWriter
    retry_for_s: float
    claimed: bool
    blocked: bool
    _series: dict[str, Series]
    _flush_lock: threading.Lock
    _wake: threading.Event
    _reconnected: bool
    _filled: int  # chunks filled since the writer was last woken for them
    _early: bool  # woken for full chunks, not by the interval or a heartbeat

    if TYPE_CHECKING:  # the writer's own (not defined here: a stub would shadow them in the MRO)

        @property
        def caught_up(self) -> bool: ...

        def _drain(self) -> None: ...

        def _journal_safely(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None: ...

        def _went_offline(self, exc: Exception) -> None: ...

        def _acknowledged(
            self, sent: dict[str, set[int]], n_fields: int, *, chunks_only: bool = False
        ) -> None: ...

    def _chunk_filled(self) -> None:
        """A chunk just filled (the training thread): every :data:`EARLY_CHUNKS`, wake the
        writer for them."""
        self._filled += 1
        if self._filled >= EARLY_CHUNKS:
            self._filled = 0
            self._early = True
            self._wake.set()

    def flush_full_chunks(self) -> None:
        """Commit the full chunks buffered now, nothing else (no run document, no partial
        chunk): what the writer does between flushes while points pour in. Only when
        Firestore is caught up; an outage, a recovery or a claim waits for the next flush."""
        with self._flush_lock:
            if not (self.caught_up and self.claimed) or self.blocked or self._reconnected:
                return
            self._drain()
            self._journal_safely(self.journal.flush)  # durable before Firestore is asked
            sent = {
                s.key: full
                for s in self._series.values()
                if (full := {n for n in s.dirty - s.refused if s.full(n)})
            }
            if not sent:
                return
            writes = [
                Write(self.ref.chunk_path(key, n), columns_doc(key, n, self._series[key].chunks[n]))
                for key, chunks in sent.items()
                for n in sorted(chunks)
            ]
            try:
                self.store.commit(writes, retry_for_s=self.retry_for_s)
            except WritesRejectedError:
                return  # everything stays unacknowledged: the next flush books the refusal
            except Exception as exc:
                self._went_offline(exc)
                return
            self._acknowledged(sent, 0, chunks_only=True)
