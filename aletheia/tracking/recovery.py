"""How the run writer copes when Firestore refuses, goes away, or comes back without data.

:class:`~aletheia.tracking.metrics.MetricWriter` sends what a run logs;
this is its unhappy path, kept apart so the happy one reads in one sitting:

* a write Firestore *refuses* (see :mod:`aletheia.cloud.transient`) is
  booked: everything else of the flush counts as sent, the refused chunk or
  fields are not sent again by this process and stay unacknowledged in the
  journal (``aletheia sync`` sends them once the cause is fixed), and the
  refusal is reported once with its cause; a refusal of the caller (rules,
  credentials) stops all sending;
* an *outage* is noted, and the first flushes after it rewrite everything
  still in memory (a commit that timed out may yet be applied late);
* after a reconnect, and at the end of the run before its journal is marked
  synced, what Firestore no longer holds of what it had acknowledged (an
  emulator restarted from an older export, which fails no commit) is queued
  again from the journal;
* a run started offline first checks its project as an online start does
  (:func:`aletheia.cloud.members.ensure_project`: a project someone else
  registered meanwhile under the same name is refused, and nothing is sent),
  then *claims* its id before its first write, moving to a new id if another
  process owns it (:mod:`aletheia.tracking.ownership`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aletheia.cloud import transient
from aletheia.cloud.lazy import gexc
from aletheia.cloud.transient import is_transient
from aletheia.errors import AletheiaError
from aletheia.tracking import ownership, stored
from aletheia.tracking.journal import JournalWriter
from aletheia.tracking.journal import read as read_journal
from aletheia.tracking.runmodel import (
    CHUNK_POINTS,
    LATEST_FIELD,
    RunRef,
    chunk_of,
    merge_fields,
)
from aletheia.tracking.series import Series, columns_of
from aletheia.tracking.store import FirestoreStore, Write, WritesRejectedError

#: The run-document fields the writer folds from the points (resent apart from the user's).
_SUMMARY_FIELDS = ("summary", LATEST_FIELD, "heartbeat_at")


class WriterRecovery:
    """The refusal, outage, loss and id-claim handling of :class:`MetricWriter` (a mixin).

    It works on the writer's own state, declared here for the type checker.
    """

    ref: RunRef
    owner: str | None
    claimed: bool
    store: FirestoreStore
    journal: JournalWriter
    retry_for_s: float
    final_retry_s: float
    offline: bool
    recovering: int
    blocked: bool
    rejections: list[str]
    _lock: threading.Lock
    _fields_lock: threading.Lock
    _series: dict[str, Series]
    _held: dict[str, int]
    _sets_acked: int
    _sets_ack_cap: int | None
    _unsent_fields: list[dict[str, Any]]
    _restore_fields: dict[str, Any]
    _fields_set: dict[str, Any]
    _dirty_summaries: set[str]
    _on_renamed: Callable[[str], None] | None

    def _acknowledged(self, sent: dict[str, set[int]], n_fields: int) -> None:
        raise NotImplementedError  # the writer's

    def _journal_safely(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError  # the writer's

    def _warn(self, message: str, *, kind: str = "writer") -> None:
        raise NotImplementedError  # the writer's

    def _refused(self, exc: WritesRejectedError, sent: dict[str, set[int]], n_fields: int) -> None:
        """Firestore refused some writes for good and took the rest: book both, report once.

        What was refused is dropped from memory, never from the journal, and
        stays unacknowledged there (set records are acknowledged in order, so
        after a refused one no later one is).
        """
        for rejection in exc.rejections:
            write, reason = rejection.write, rejection.reason
            if isinstance(rejection.error, gexc.PermissionDenied | gexc.Unauthenticated):
                self.blocked = True  # refused for who we are, not for what we write
            if write.path == self.ref.path:
                if self._sets_ack_cap is None:
                    self._sets_ack_cap = self._sets_acked
                fields = sorted(write.data)
                if not self.blocked and self._resend_summary(write):  # the user's fields, then
                    fields = [f for f in fields if f not in _SUMMARY_FIELDS]
                what = f"the document of run {self.ref.run} (fields {', '.join(fields)})"
                kind = f"refused:run:{reason}"
            else:
                key, chunk = str(write.data["key"]), int(write.data["chunk"])
                self._series[key].refused.add(chunk)
                sent.get(key, set()).discard(chunk)
                first = chunk * CHUNK_POINTS
                self._held[key] = min(self._held.get(key, first), first)
                name = key if len(key) <= 60 else key[:60] + "…"
                what = f"metric {name!r} of run {self.ref.run} (chunk {chunk})"
                kind = f"refused:metric:{key}:{type(rejection.error).__name__}"
            message = f"Firestore refused {what} at {write.path}: {reason.rstrip('.')}"
            self.rejections.append(message)
            if self.blocked:
                self._warn(
                    f"{message}. This identity may not write to project {self.ref.project}: "
                    "nothing more is sent; the run goes on, and its journal "
                    f"{self.journal.path} keeps everything (once you may write again — "
                    "`aletheia project members` — run `aletheia sync`)",
                    kind="refused:caller",
                )
                continue
            self._warn(
                f"{message}. It is not sent again; the run goes on, and its journal "
                f"{self.journal.path} keeps everything (`aletheia sync` sends it once the "
                "cause is fixed)",
                kind=kind,
            )
        self._acknowledged(sent, n_fields)

    def _resend_summary(self, refused: Write) -> bool:
        """Send the metric summaries of a refused run-document write on their own.

        One extra commit tells whether the summaries or the user's fields were
        refused; innocent summaries then still reach the document.
        """
        alone = {k: v for k, v in refused.data.items() if k in _SUMMARY_FIELDS}
        if not alone or len(alone) == len(refused.data):
            return False
        try:
            self.store.commit(
                [Write(refused.path, alone, merge=True)], retry_for_s=self.retry_for_s
            )
        except Exception:  # the summaries wait for their metrics' next points
            return False
        return True

    def _claim(self, timeout: float) -> bool:
        """Make this offline-started run's id ours before writing under it.

        Its project is checked first, as an online start checks it: a run that
        started offline never was. If another process owns the id, this run
        moves to a new id (journaled, reported) and claims that. False while
        Firestore cannot be reached, or when the project is refused.
        """
        assert self.owner is not None
        initial: dict[str, Any] = {}
        for update in self._unsent_fields:
            merge_fields(initial, update)
        try:
            self.store.checks.require(self.store.client, self.ref.project, timeout=timeout)
        except Exception as exc:
            # Transient first: "no emulator is running" is an AletheiaError too, and an
            # outage, not a refusal (it had stopped the run's sending for good).
            if is_transient(exc):
                self._went_offline(exc)
                return False
            if not isinstance(exc, AletheiaError):
                raise
            self._project_refused(exc)  # not ours to write into: nothing is sent
            return False
        try:
            start = self._unsent_fields[0] if self._unsent_fields else {}
            self.ref = ownership.claim_or_move(
                self.store.client,
                self.ref,
                self.owner,
                initial,
                timeout,
                smaller=start,
                on_move=self._moved,
            )
        except Exception as exc:
            if not is_transient(exc):  # refused: nothing is written under a doubtful id
                self.blocked = isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated)
                self._warn(
                    f"could not claim run id {self.ref.run} ({type(exc).__name__}: {exc}); "
                    f"nothing more is sent, and its journal {self.journal.path} keeps "
                    "everything for `aletheia sync`",
                    kind="claim",
                )
                return False
            self._went_offline(exc)
            return False
        self.claimed = True
        return True

    def _project_refused(self, exc: AletheiaError) -> None:
        """The project refused this identity: stop sending, say what to do, keep the journal."""
        self.blocked = True
        hint = f" ({exc.hint})" if exc.hint else ""
        message = (
            f"run {self.ref.run} was not written to Firestore: {exc.message}{hint}. "
            f"Nothing more is sent; the run goes on, and its journal {self.journal.path} "
            "keeps everything: once the project is yours to write, run `aletheia sync`"
        )
        self.rejections.append(message)
        self._warn(message, kind="refused:project")

    def _moved(self, ref: RunRef, moved: dict[str, Any]) -> None:
        """The id was another process's: journal the move, then go on as ``ref``."""
        with self._fields_lock:  # set records keep their order in the journal
            self._journal_safely(self.journal.renamed, ref.run, moved[ownership.CONFLICT_OF])
            self._journal_safely(self.journal.set_fields, moved)
        self._unsent_fields.append(moved)
        merge_fields(self._fields_set, moved)
        self.ref = ref
        if self._on_renamed is not None:
            self._on_renamed(ref.run)

    def _went_offline(self, exc: Exception) -> None:
        """Note an outage: later successes trigger the check of what Firestore kept."""
        self.offline = True
        self.recovering = 2
        self._warn(
            f"Firestore unreachable ({type(exc).__name__}); run {self.ref.run} "
            "keeps logging to its journal and will catch up",
            kind="offline",
        )

    def _replay_what_was_lost(self) -> bool | None:
        """Queue again from the journal what Firestore no longer holds (after a reconnect,
        and at the end of the run).

        What this writer sent is known in memory (points per metric, fields
        set), so the check costs only its reads (:func:`stored.find_gaps`);
        the journal is read only when something is missing. True when
        something was queued (the caller flushes once more), None when the
        check could not be made.
        """
        try:
            sent = {k: s.received for k, s in self._series.items()}
            gaps = stored.find_gaps(
                self.store.client,
                self.ref.path,
                self.ref.chunk_path,
                stored.gapless_counts(sent, CHUNK_POINTS),
                self._fields_set,
                {k: s.received for k, s in self._series.items() if s.summarized},
                # Bounded like the run's end: a thawing server must not hold training for
                # the library's 300 s, nor a slow one be cut off at the first attempt.
                call=transient.bounded(max(self.retry_for_s, self.final_retry_s)),
            )
            if gaps:
                state = read_journal(self.journal.path)
        except Exception as exc:  # verifying is a bonus: never a reason to stop training
            self._warn(
                f"could not check what Firestore holds of run {self.ref.run} ({exc!r}); "
                "`aletheia sync --verify` checks it later",
                kind="verify",
            )
            return None
        if not gaps:
            return False
        for key, chunks in gaps.chunks.items():
            series = self._series.get(key)
            if series is None:
                continue
            # Only points this writer already drained: later ones arrive through the buffer.
            restored: dict[int, list[tuple[int, float, float]]] = {}
            for p in state.points[key]:
                n = chunk_of(p.index)
                if n in chunks and p.index < series.received and n not in series.chunks:
                    restored.setdefault(n, []).append((p.step, p.value, p.ts))
            series.chunks.update({n: columns_of(points) for n, points in restored.items()})
            series.dirty |= {n for n in chunks if n in series.chunks} - series.refused
        merged = state.merged_fields()
        self._restore_fields = {k: merged[k] for k in gaps.fields if k in merged}
        self._dirty_summaries |= {k for k, s in self._series.items() if s.summarized}
        self._warn(
            f"Firestore is without {gaps.describe()} of run {self.ref.run} that it had "
            "acknowledged (restarted from an older copy?): writing them again from the "
            f"journal {self.journal.path}",
            kind="lost",
        )
        return True
