"""Replaying run journals into Firestore, and settling runs whose process died.

For each journal of the configured target that is not yet settled:

* chunks holding any point Firestore never acknowledged are rewritten with
  their *whole* content from the journal (same ids, same documents: running
  sync twice, or after a flush that did land, changes nothing);
* the run document gets every field the run set, and the summary of every
  metric recomputed from the journal;
* a run that never ended and whose process is gone (same host: pid dead;
  another host sharing this directory: no journal change and no heartbeat
  for three heartbeat intervals) is marked ``crashed``, ended at its last
  logged point; a run whose process still lives is left alone;
* ``Results/{run}`` is (re)written, and the journal gets a ``synced`` record.

A write Firestore refuses for good (see :mod:`aletheia.transient`) leaves
its journal unsettled and is reported as that journal's action
(``refused: …``); everything else is written, and the other journals are
synced as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aletheia import clients, config, journal, layout, ownership, stored
from aletheia.metastore import CRASHED, RUNNING, effective_status, now, result_doc
from aletheia.metrics import (
    CHUNK_POINTS,
    STALE_HEARTBEATS,
    RunRef,
    chunk_doc,
    chunk_of,
    summarize,
    utc,
)
from aletheia.store import FirestoreStore, Write, WritesRejectedError
from aletheia.validation import SummaryBudget

log = logging.getLogger(__name__)

#: What a settled crashed run says in its ``error`` field.
CRASH_NOTE = "the process stopped without ending the run; settled by `aletheia sync`"


@dataclass
class SyncResult:
    """What sync did with one journal."""

    project: str
    experiment: str
    run: str
    action: str  # "synced", "crashed", "skipped: ..."
    points: int = 0
    points_sent: int = 0
    chunks_written: int = 0
    path: Path | None = None
    conflict_of: str | None = None  # the id another process owned (see aletheia.ownership)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``--json``."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def sync_all(
    settings: config.Settings,
    *,
    project: str | None = None,
    force: bool = False,
    store: FirestoreStore | None = None,
    verify: bool = False,
) -> list[SyncResult]:
    """Sync every journal of this target (optionally one project's); ``force`` resends all.

    ``verify``: also check journals already settled against what Firestore
    holds now, and write again what it lost (:mod:`aletheia.stored`).
    """
    if project is not None:
        layout.validate_id(project, "project name")
    store = store or FirestoreStore(lambda: clients.firestore_client(settings))
    root = journal.journal_root(settings.cache_dir, settings.cloud_project)
    results = []
    for path in journal.list_journals(root):
        results.append(sync_journal(path, store, force=force, project=project, verify=verify))
    return [r for r in results if project is None or r.project == project]


#: Settled journals older than this are deleted by ``aletheia sync`` (``--keep-days``).
KEEP_SETTLED_DAYS = 30.0


def prune_settled(
    settings: config.Settings, *, keep_days: float = KEEP_SETTLED_DAYS
) -> list[SyncResult]:
    """Delete journals whose run is settled in Firestore and untouched for ``keep_days``.

    A settled journal (its last record is ``synced``) holds nothing Firestore
    lacks; it is kept a while only as a local copy. Unsettled journals are
    never deleted, whatever their age: they hold data Firestore may not have.
    """
    root = journal.journal_root(settings.cache_dir, settings.cloud_project)
    cutoff = time.time() - keep_days * 86_400
    removed = []
    for path in journal.list_journals(root):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff and _ends_synced(path):
                names = journal.parse_journal_name(path) or ("?", "?", path.stem)
                path.unlink()
                removed.append(SyncResult(*names, action="pruned", path=path))
    return removed


def sync_experiment(
    settings: config.Settings, project: str, experiment: str, store: FirestoreStore
) -> list[SyncResult]:
    """Sync the unsettled journals of one experiment (what a new run does at start).

    Settled journals are recognised from their last line, so a start reads
    only the journals that need work.
    """
    root = journal.journal_root(settings.cache_dir, settings.cloud_project)
    prefix = journal.journal_path(root, project, experiment, "x").name[: -len("x.jsonl")]
    results = []
    for path in journal.list_journals(root):
        if path.name.startswith(prefix) and not _ends_synced(path):
            result = sync_journal(path, store, project=project)
            if not result.action.startswith("skipped"):
                results.append(result)
    return results


def _ends_synced(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return f.read().rstrip().endswith(b'{"t":"synced"}')


def sync_journal(
    path: Path,
    store: FirestoreStore,
    *,
    force: bool = False,
    project: str | None = None,
    verify: bool = False,
) -> SyncResult:
    """Replay one journal (see the module docstring); only if it is ``project``'s, if given."""
    state = journal.read(path)
    result = SyncResult(state.project, state.experiment, state.run, "synced", path=path)
    result.points = state.point_count
    if not state.project:
        result.action = "skipped: no header (empty journal)"
        return result
    if project is not None and state.project != project:
        result.action = "skipped: another project"
        return result
    if state.synced and not force:
        if not verify:
            result.action = "skipped: already synced"
            return result
        gaps = stored.find_gaps(
            store.client,
            layout.run(state.project, state.experiment, state.run),
            stored.run_chunk_path(state.project, state.experiment, state.run),
            state.points,
            state.merged_fields(),
            CHUNK_POINTS,
        )
        if not gaps:
            result.action = "verified"
            return result
        force = True  # Firestore lost what it had acknowledged: the journal has it all
    crashed = state.ended is None
    if crashed and (_process_alive(state) or _beating_elsewhere(state, store)):
        result.action = "skipped: still running"
        return result
    crash: dict[str, Any] = {}
    if crashed:
        ended = utc(state.last_ts) if state.last_ts else now()
        crash = {"status": CRASHED, "ended_at": ended, "error": CRASH_NOTE}
        state.sets.append(crash)
    renamed = _claim(state, store)
    if renamed:
        force = True  # nothing of this run is under its new id yet
        result.run, result.conflict_of = state.run, state.renamed_from
    writes, result.points_sent, result.chunks_written = _writes(state, force)
    try:
        store.commit(writes, retry_for_s=30.0)
    except WritesRejectedError as exc:  # the rest is written; this journal stays unsettled
        result.action = f"refused: {exc.message}"
        return result
    _settle(path, state, crash, renamed)
    result.action = CRASHED if crashed else "synced"
    return result


def _writes(state: journal.JournalState, force: bool) -> tuple[list[Write], int, int]:
    ref = RunRef(state.project, state.experiment, state.run)
    writes: list[Write] = []
    sent = 0
    for key, points in state.points.items():
        acked = 0 if force else state.acked_metrics.get(key, 0)
        stale = {chunk_of(p.index) for p in points if p.index >= acked}
        sent += sum(1 for p in points if p.index >= acked)
        by_chunk: dict[int, list[journal.Point]] = {}
        for p in points:
            if chunk_of(p.index) in stale:
                by_chunk.setdefault(chunk_of(p.index), []).append(p)
        for n in sorted(stale):
            writes.append(Write(ref.chunk_path(key, n), chunk_doc(key, n, by_chunk[n])))
    chunks = len(writes)
    fields = state.merged_fields()
    budget = SummaryBudget()  # the names the run's own writer summarised (same order)
    summaries = {
        key: summarize(points).to_doc() for key, points in state.points.items() if budget.admit(key)
    }
    fields["summary"] = summaries
    if budget.full:
        fields.update(budget.note())
    writes.append(Write(ref.path, fields, merge=True))
    result_path = layout.result(state.project, state.experiment, state.run)
    writes.append(Write(result_path, result_doc(ref, fields, summaries)))
    return writes, sent, chunks


def _claim(state: journal.JournalState, store: FirestoreStore) -> dict[str, Any]:
    """Make sure the run id is this journal's run's (:mod:`aletheia.ownership`).

    A run started offline never claimed its id; if another process owns it,
    this run moves to a new id. Returns the moving fields (empty if none).
    Journals written before owner tokens existed are replayed as before.
    """
    owner = state.initial.get(ownership.OWNER)
    if not owner:
        return {}
    moved: dict[str, Any] = {}
    ref = RunRef(state.project, state.experiment, state.run)
    start = dict(state.initial)
    while not ownership.claim(
        store.client, ref.path, owner, state.merged_fields(), 30.0, smaller=start
    ):
        old, new = state.run, ownership.conflict_id(state.run, owner)
        moved = {"run": new, ownership.CONFLICT_OF: old}
        state.sets.append(moved)
        state.renamed_from = state.renamed_from or old
        state.run = new
        start.update(moved)
        ref = RunRef(state.project, state.experiment, new)
        log.warning("aletheia: %s", ownership.conflict_message(old, new, state.experiment))
    return moved


def _settle(
    path: Path, state: journal.JournalState, crash: dict[str, Any], moved: dict[str, Any]
) -> None:
    """Record in the journal what Firestore now holds (the crash fields, a new id too)."""
    writer = journal.JournalWriter(path)
    try:
        if moved:
            writer.renamed(moved["run"], moved[ownership.CONFLICT_OF])
            writer.set_fields(moved)
        if crash:
            writer.set_fields(crash)
        acked = {key: len(points) for key, points in state.points.items()}
        writer.ack(acked, len(state.sets))
        if crash:
            writer.end(CRASHED)
        writer.synced()
    finally:
        writer.close()


def _beating_elsewhere(state: journal.JournalState, store: FirestoreStore) -> bool:
    """For a run of another host (a shared home directory): is it still alive?

    Alive if its journal changed, or Firestore saw its heartbeat, within the
    staleness window that readers use to call a run crashed.
    """
    if state.host == socket.gethostname():
        return False
    window = STALE_HEARTBEATS * state.heartbeat_s
    if time.time() - state.path.stat().st_mtime < window:
        return True
    doc = store.client.document(layout.run(state.project, state.experiment, state.run)).get()
    return doc.exists and effective_status(doc.to_dict() or {}) == RUNNING


def _process_alive(state: journal.JournalState) -> bool:
    """True if the run's process still runs on this host."""
    if state.host != socket.gethostname() or not state.pid:
        return False
    if state.pid == os.getpid():
        return True
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{state.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True
