"""Batched, retried Firestore writes for the tracking client.

Every write the tracker makes after a run has started goes through
:meth:`FirestoreStore.commit`: a list of whole-document ``set`` operations,
sent in ``WriteBatch`` commits of at most 500 writes (Firestore's limit)
and about 2 MiB, each retried with exponential backoff and jitter on
transient errors. A flush that needs several commits (a run's final flush)
sends up to :data:`PARALLEL_COMMITS` side by side, the batch holding the
run document after the others; chunk documents are encoded by
:mod:`aletheia.cloud.pbwrite`, not value by value by the library. The
store counts its commit RPCs and writes, so tests (and ``bench/``) can
assert how many round trips logging costs.

After a failed commit the client is rebuilt on the next one: a gRPC channel
that saw its server vanish can sit in reconnect back-off for a long time.

A write Firestore refuses for good (over 1 MiB, an invalid value, not
allowed) is never retried (:mod:`aletheia.cloud.transient` decides): a refused
batch is halved until the refused writes are found, everything else is
committed, and :class:`WritesRejectedError` names each refused write and
why, so a caller can report the real cause and stop sending it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aletheia.cloud import members, pbwrite
from aletheia.cloud.lazy import firestore, gexc
from aletheia.cloud.limits import encoded_size

# Re-exported: callers that ask the store which errors are transient get the shared answer.
from aletheia.cloud.transient import is_transient as is_transient
from aletheia.errors import RejectedError

log = logging.getLogger(__name__)

#: Firestore's limit of writes in one commit.
MAX_BATCH_WRITES = 500
#: Bytes (estimated) in one commit. Firestore takes 10 MiB per request, the
#: emulator's gRPC server only 4 MiB; a full metric flush is far more than
#: either, and a too-big request fails the same way on every retry.
MAX_BATCH_BYTES = 2 * 1024 * 1024
#: Batches committed at the same time when a flush needs several: each commit waits on the
#: server (the emulator, or Firestore's per-commit latency), not on the CPU.
PARALLEL_COMMITS = 4
#: Deadline of one commit RPC.
COMMIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Write:
    """One document write: the whole document, or a merge of its given fields."""

    path: str
    data: dict[str, Any]
    merge: bool = False


@dataclass
class StoreStats:
    """What the store sent: commit RPCs (attempts included), writes acknowledged."""

    commits: int = 0
    failed_commits: int = 0
    writes: int = 0
    rejected: int = 0  # writes Firestore refused for good


@dataclass(frozen=True)
class Rejection:
    """One write Firestore refused, and its answer."""

    write: Write
    error: BaseException

    @property
    def reason(self) -> str:
        """The refusal in one line (the server's message)."""
        message = getattr(self.error, "message", None) or str(self.error)
        return f"{type(self.error).__name__}: {message}"


class WritesRejectedError(RejectedError):
    """Firestore refused some writes of a commit for good; all the others were committed."""

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        self.rejections = list(rejections)
        first = self.rejections[0]
        more = f" and {len(self.rejections) - 1} more" if len(self.rejections) > 1 else ""
        super().__init__(
            f"Firestore refused the write of {first.write.path}{more}: {first.reason}",
            "retrying cannot help; fix what is written",
        )


#: Upper bounds of the JSON text :func:`~aletheia.cloud.limits.encoded_size` counts for one
#: value of these types, separator included: ``repr`` of a float is at most 24 characters,
#: an int64 20, a datetime's ``str`` with its quotes 34 (40 allows an offset in seconds).
_VALUE_BYTES: dict[type, int] = {float: 25, int: 21, bool: 6, type(None): 5, dt.datetime: 41}


def write_cost(data: Mapping[str, Any]) -> int:
    """An upper bound of ``encoded_size(data)``, counted without encoding a metric chunk.

    A chunk's three arrays of 1,000 numbers and times are counted by type:
    encoding them as JSON is one C call of several milliseconds that holds
    the GIL in the writer thread, which a training thread waiting to log its
    next point sits through whole (no switch interval interrupts a C call).
    Anything else (strings, maps, mixed arrays) is measured as before.
    """
    cost = 2  # {}
    for key, value in data.items():
        kind = type(value)
        per = _VALUE_BYTES.get(kind)
        if kind is str:
            per = 6 * len(value) + 3  # quoted, each character escaped at worst (\uXXXX)
        elif per is None and kind is list:
            kinds = set(map(type, value))
            if len(kinds) == 1 and (each := _VALUE_BYTES.get(kinds.pop())) is not None:
                per = 3 + each * len(value)  # [...], each element with its comma
        if per is None:
            per = encoded_size(value) + 1
        cost += 6 * len(key) + 3 + per  # the key as a string, and its colon
    return cost


def split_batches(
    writes: Sequence[Write],
    max_writes: int = MAX_BATCH_WRITES,
    max_bytes: int = MAX_BATCH_BYTES,
    *,
    parts: int = 1,
) -> list[Sequence[Write]]:
    """Consecutive groups of ``writes`` within both limits (an oversized write goes alone).

    With ``parts`` above 1, writes of more than one batch's worth are spread
    over at least that many batches of about equal size, so that they can be
    committed side by side.
    """
    batches: list[Sequence[Write]] = []
    costs = [len(write.path) + write_cost(write.data) for write in writes]
    total = sum(costs)
    if parts > 1 and (total > max_bytes or len(writes) > max_writes):
        wanted = max(parts, -(-total // max_bytes), -(-len(writes) // max_writes))
        max_writes = min(max_writes, -(-len(writes) // wanted))
        if total > max_bytes:  # one write of slack: equal writes then split by count
            max_bytes = min(max_bytes, -(-total // wanted) + max(costs))
    start, size = 0, 0
    for i, cost in enumerate(costs):
        if i > start and (i - start >= max_writes or size + cost > max_bytes):
            batches.append(writes[start:i])
            start, size = i, 0
        size += cost
    if start < len(writes):
        batches.append(writes[start:])
    return batches


class FirestoreStore:
    """Sends batches of writes to Firestore, retrying transient failures."""

    def __init__(
        self,
        client_factory: Callable[[], firestore.Client],
        *,
        commit_timeout_s: float = COMMIT_TIMEOUT_S,
        checks: members.ProjectChecks | None = None,
    ) -> None:
        self._factory = client_factory
        self.commit_timeout_s = commit_timeout_s
        #: Whether this identity may write into a project, asked once per project before a
        #: writer that has not checked (a run started offline) writes into it.
        self.checks = checks or members.ProjectChecks()
        self._client: firestore.Client | None = None
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()  # batches are committed from several threads
        self.stats = StoreStats()

    @property
    def client(self) -> firestore.Client:
        """The current client (built on first use and after a failure)."""
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def commit(self, writes: Sequence[Write], *, retry_for_s: float = 5.0) -> None:
        """Commit ``writes`` in bounded batches.

        Batches hold at most :data:`MAX_BATCH_WRITES` writes and about
        :data:`MAX_BATCH_BYTES`. Every write is a full ``set`` (or a merge of
        explicit fields), so a batch may be sent again after an ambiguous
        failure without harm. A transient error still failing after
        ``retry_for_s`` is raised as it is; writes refused for good raise
        :class:`WritesRejectedError` once every other write is committed.
        """
        batches = split_batches(writes, parts=PARALLEL_COMMITS)
        *body, last = batches or [[]]
        rejected = self._commit_side_by_side(body, retry_for_s)
        if last:  # after the others: the run document, written last, comes last
            rejected += self._commit_isolating(last, retry_for_s)
        if rejected:
            with self._stats_lock:
                self.stats.rejected += len(rejected)
            raise WritesRejectedError(rejected)

    def _commit_side_by_side(
        self, batches: Sequence[Sequence[Write]], retry_for_s: float
    ) -> list[Rejection]:
        """Commit ``batches`` at the same time (each waits on the server, not on the others);
        a transient failure is raised once all of them have been tried."""
        if len(batches) <= 1:
            return [r for b in batches for r in self._commit_isolating(b, retry_for_s)]
        from concurrent.futures import ThreadPoolExecutor

        workers = min(PARALLEL_COMMITS, len(batches))
        with ThreadPoolExecutor(workers, thread_name_prefix="aletheia-commit") as pool:
            futures = [pool.submit(self._commit_isolating, b, retry_for_s) for b in batches]
        rejected: list[Rejection] = []
        failure: BaseException | None = None
        for future in futures:
            error = future.exception()
            if error is None:
                rejected += future.result()
            elif failure is None:
                failure = error
        if failure is not None:
            raise failure
        return rejected

    def _commit_isolating(self, writes: Sequence[Write], retry_for_s: float) -> list[Rejection]:
        """Commit ``writes``; on a refusal, halve the batch to find the refused writes."""
        try:
            self._commit_retrying(writes, retry_for_s)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(writes) == 1 or isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
                # A refused caller is refused for every write: no point in halving.
                return [Rejection(w, exc) for w in writes]
            half = len(writes) // 2
            return self._commit_isolating(writes[:half], retry_for_s) + self._commit_isolating(
                writes[half:], retry_for_s
            )
        return []

    def _commit_retrying(self, writes: Sequence[Write], retry_for_s: float) -> None:
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_delay,
            wait_exponential,
            wait_random,
        )

        for attempt in Retrying(
            stop=stop_after_delay(retry_for_s),
            wait=wait_exponential(multiplier=0.2, max=2.0) + wait_random(0, 0.2),
            retry=retry_if_exception(is_transient),
            reraise=True,
        ):
            with attempt:
                self._commit_once(writes)

    def _commit_once(self, writes: Sequence[Write]) -> None:
        client = self.client
        batch = client.batch()
        for w in writes:
            # Encoded here: a value that cannot be encoded (an int beyond int64) raises
            # before any RPC, and is as permanent as a server's refusal.
            ref = client.document(w.path)
            if not w.merge and pbwrite.encodable(w.data):
                # Metric chunks: the same Write, built a tenth as slowly as batch.set builds
                # it (see pbwrite); the batch's own list of writes is where set puts it.
                batch._add_write_pbs([pbwrite.set_write(ref._document_path, w.data)])
            else:
                batch.set(ref, w.data, merge=w.merge)
        with self._stats_lock:
            self.stats.commits += 1
        try:
            batch.commit(retry=None, timeout=self.commit_timeout_s)
        except Exception as exc:
            with self._stats_lock:
                self.stats.failed_commits += 1
            if is_transient(exc):
                with self._lock:
                    self._client = None  # a fresh channel reconnects at once
            raise
        with self._stats_lock:
            self.stats.writes += len(writes)
