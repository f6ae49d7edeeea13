"""Replaying run journals into Firestore, and settling runs whose process died.

For each journal of the configured target that is not yet settled:

* chunks holding any point Firestore never acknowledged are read from
  Firestore, merged with the journal by point index and written only when
  they grow (same ids: running sync twice, or after a flush that did land,
  changes nothing; a journal that stopped early never shortens a chunk);
* the run document gets every field the run set (only the missing ones
  when Firestore holds more than the journal), and each metric summary
  recomputed from the merged series when it counts more points;
* a run Firestore holds as ended keeps its status; a run that never ended
  and whose process is gone (same host: pid dead; another host sharing
  this directory: no journal change and no heartbeat for three heartbeat
  intervals) is marked ``crashed``, ended at its last logged point; a run
  whose process still lives is left alone;
* ``Results/{run}`` is (re)written, and the journal gets a ``synced`` record.

A write Firestore refuses for good (see :mod:`aletheia.cloud.transient`) leaves
its journal unsettled and is reported as that journal's action
(``refused: …``); everything else is written, and the other journals are
synced as usual. A journal that cannot be read, parsed or updated is
reported as ``failed: …`` (the file, and what to do) and stops no other.
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

from aletheia.cloud import config, layout, members
from aletheia.errors import AletheiaError
from aletheia.tracking import journal, ownership
from aletheia.tracking.compose import Backend
from aletheia.tracking.runmodel import (
    CHUNK_POINTS,
    CRASHED,
    LATEST_FIELD,
    RUNNING,
    STALE_HEARTBEATS,
    Point,
    RunRef,
    chunk_doc,
    chunk_of,
    chunk_points,
    effective_status,
    epoch,
    merge_fields,
    now,
    result_doc,
    summarize,
    utc,
)
from aletheia.tracking.store import FirestoreStore, Write, WritesRejectedError
from aletheia.tracking.stored import chunk_counts, find_gaps, run_chunk_path
from aletheia.tracking.validation import SummaryBudget

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
    #: Journal points no chunk can hold (a gap before them that Firestore lacks too).
    unplaced: int = 0
    path: Path | None = None
    conflict_of: str | None = None  # the id another process owned (see aletheia.tracking.ownership)

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
    holds now, and write again what it lost (:mod:`aletheia.tracking.stored`).
    """
    if project is not None:
        layout.validate_id(project, "project name")
    store = store or Backend(settings).writes(probe=True)
    root = journal.journal_root(settings.cache_dir, settings.cloud_project)
    checks = members.ProjectChecks(settings.owner)
    results = []
    for path in journal.list_journals(root):  # each settled on its own: a bad one stops none
        results.append(
            _sync_safely(path, store, force=force, project=project, verify=verify, checks=checks)
        )
    return [r for r in results if project is None or r.project == project]


def _sync_safely(
    path: Path,
    store: FirestoreStore,
    *,
    force: bool = False,
    project: str | None = None,
    verify: bool = False,
    checks: members.ProjectChecks | None = None,
) -> SyncResult:
    """:func:`sync_journal`, with any failure reported as this journal's ``failed: …`` action."""
    try:
        return sync_journal(path, store, force=force, project=project, verify=verify, checks=checks)
    except OSError as exc:
        reason = f"cannot read or update {path} ({exc.strerror or exc}): {_WHAT_TO_DO}"
    except Exception as exc:  # Firestore unreachable, a record of an unexpected shape
        reason = f"{path}: {type(exc).__name__}: {exc}; run `aletheia sync` again once fixed"
    return SyncResult(*_names(path), action=f"failed: {reason}", path=path)


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
        with contextlib.suppress(OSError):  # unreadable ones are reported by sync_all
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
    checks = members.ProjectChecks(settings.owner)
    results = []
    for path in journal.list_journals(root):
        if path.name.startswith(prefix) and not _settled(path):
            result = _sync_safely(path, store, project=project, checks=checks)
            if not result.action.startswith("skipped"):
                results.append(result)
    return results


def settle_leftovers(
    settings: config.Settings, project: str, experiment: str, store: FirestoreStore
) -> None:
    """:func:`sync_experiment` as a new run does it, in the background: best effort, logged.

    A journal that could not be settled is worth a warning; the others, a
    note; a failure of the whole leaves it to ``aletheia sync``.
    """
    try:
        done = sync_experiment(settings, project, experiment, store)
    except Exception as exc:
        log.warning("aletheia: could not replay earlier journals (%s)", exc)
        return
    for result in done:
        level = logging.WARNING if result.action.startswith("failed") else logging.INFO
        log.log(level, "aletheia: replayed run %s of %s: %s", result.run, experiment, result.action)


def _settled(path: Path) -> bool:
    try:
        return _ends_synced(path)
    except OSError:  # unreadable: sync_journal reports it
        return False


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
    checks: members.ProjectChecks | None = None,
) -> SyncResult:
    """Replay one journal (see the module docstring); only if it is ``project``'s, if given.

    Before its first write the journal's project is checked as an online
    start checks it (``checks``, :func:`aletheia.cloud.members.ensure_project`): a
    run started offline never was, and a project someone else registered
    meanwhile is refused (``refused: …``), its journal kept as it is.
    """
    state = journal.read(path)
    result = SyncResult(state.project, state.experiment, state.run, "synced", path=path)
    result.points = state.point_count
    if not state.project:
        if state.first_bad_line is not None:
            result.project, result.experiment, result.run = _names(path)
            result.action = (
                f"failed: {path} line {state.first_bad_line} is not a journal record and no "
                f"run header could be read: {_WHAT_TO_DO}"
            )
        else:
            result.action = "skipped: no header (empty journal)"
        return result
    if project is not None and state.project != project:
        result.action = "skipped: another project"
        return result
    if journal.open_in_this_process(path):  # its run's own writer settles it
        result.action = "skipped: still running"
        return result
    if state.synced and not force:
        if not verify:
            result.action = "skipped: already synced"
            return result
        budget = SummaryBudget()  # the metrics the run's own writer summarised
        gaps = find_gaps(
            store.client,
            layout.run(state.project, state.experiment, state.run),
            run_chunk_path(state.project, state.experiment, state.run),
            chunk_counts(state.points, CHUNK_POINTS),
            state.merged_fields(),
            {key: len(pts) for key, pts in state.points.items() if budget.admit(key)},
        )
        if not gaps:
            result.action = "verified"
            return result
        force = True  # Firestore lost what it had acknowledged: the journal has it all
    ref = RunRef(state.project, state.experiment, state.run)
    snap = store.client.document(ref.path).get()
    stored: dict[str, Any] = (snap.to_dict() or {}) if snap.exists else {}
    # A run Firestore holds as ended stays ended: a journal that stopped early (disk
    # full) must not turn a finished run into a crashed one.
    ended_in_firestore = stored.get("status") not in (None, RUNNING)
    crashed = state.ended is None and not ended_in_firestore
    if crashed and (_process_alive(state) or _beating_elsewhere(state, store)):
        result.action = "skipped: still running"
        return result
    try:
        (checks or members.ProjectChecks()).require(store.client, state.project)
    except AletheiaError as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        result.action = f"refused: {exc.message}{hint}; the journal {path} keeps everything"
        return result
    renamed = _claim(state, store)
    if renamed:
        force = True  # nothing of this run is under its new id yet
        # Firestore held the other process's run: this one ended only if its journal says so.
        stored, crashed = {}, state.ended is None
        result.run, result.conflict_of = state.run, state.renamed_from
    crash: dict[str, Any] = {}
    if crashed:
        last = max(state.last_ts, epoch(stored.get("heartbeat_at")))
        ended = utc(last) if last else now()
        crash = {"status": CRASHED, "ended_at": ended, "error": CRASH_NOTE}
    writes = _writes(state, stored, store, force, result, crash)
    if crash:
        state.sets.append(crash)  # acknowledged with the others in _settle
    try:
        store.commit(writes, retry_for_s=30.0)
    except WritesRejectedError as exc:  # the rest is written; this journal stays unsettled
        result.action = f"refused: {exc.message}"
        return result
    _settle(path, state, crash, renamed)
    result.action = CRASHED if crashed else "synced"
    return result


#: What a journal sync could not settle says to do.
_WHAT_TO_DO = "repair or move the file, then run `aletheia sync` again"


def _names(path: Path) -> tuple[str, str, str]:
    return journal.parse_journal_name(path) or ("?", "?", path.stem)


def _writes(
    state: journal.JournalState,
    stored: dict[str, Any],
    store: FirestoreStore,
    force: bool,
    result: SyncResult,
    crash: dict[str, Any],
) -> list[Write]:
    """What Firestore lacks of this journal: longer chunks, missing fields, newer summaries.

    Firestore may hold *more* than the journal (a journal that stopped early
    while the run reached Firestore): every stored chunk is read and merged
    by point index, and only a chunk that grows is written. Sync never runs
    beside the run's own writer (a live process is skipped), so a plain read
    then write suffices: no transaction is needed.
    """
    ref = RunRef(state.project, state.experiment, state.run)
    writes: list[Write] = []
    series: dict[str, list[Point]] = {}
    for key, points in state.points.items():
        acked = 0 if force else state.acked_metrics.get(key, 0)
        stale = {chunk_of(p.index) for p in points if p.index >= acked}
        result.points_sent += sum(1 for p in points if p.index >= acked)
        gapless = bool(points) and points[-1].index == len(points) - 1
        # A gapless journal series summarises itself; a gapped one needs Firestore's chunks.
        wanted = stale if gapless else set(range(chunk_of(points[-1].index) + 1))
        have = _stored_chunks(store, ref, key, wanted)
        by_chunk: dict[int, list[Point]] = {}
        for p in points:
            by_chunk.setdefault(chunk_of(p.index), []).append(p)
        merged_series: list[Point] = []
        for n in sorted(wanted):
            old = have.get(n)
            merged = _merge_chunk(n, old, by_chunk.get(n, []))
            result.unplaced += sum(
                1 for p in by_chunk.get(n, []) if p.index >= n * CHUNK_POINTS + len(merged)
            )
            if n in stale and len(merged) > len((old or {}).get("values", ())):
                writes.append(Write(ref.chunk_path(key, n), chunk_doc(key, n, merged)))
            merged_series += merged
        series[key] = points if gapless else merged_series
    result.chunks_written = len(writes)
    fields = state.merged_fields()
    if _behind(state, stored, series):
        fields = _missing(fields, stored)  # Firestore is ahead: only add what it lacks
    fields.update(crash)  # settling a dead run's status is sync's own news
    if stored.get("status") not in (None, RUNNING):
        for name in ("status", "ended_at", "error"):  # an ended run is never rewound
            fields.pop(name, None)
    budget = SummaryBudget()  # the names the run's own writer summarised (same order)
    old_summaries = stored.get("summary") or {}
    summaries, latest = {}, {}
    for key, points in series.items():
        if budget.admit(key):
            folded = summarize(points)
            summary = folded.to_doc()
            if summary["count"] > (old_summaries.get(key) or {}).get("count", -1):
                summaries[key] = summary
                if (latest_doc := folded.latest_doc()) is not None:
                    latest[key] = latest_doc
    fields.pop("summary", None)  # an empty map in a merge would clear the stored one
    fields.pop(LATEST_FIELD, None)
    if summaries:
        fields["summary"] = summaries
    if latest:
        fields[LATEST_FIELD] = latest
    if budget.full:
        fields.update(budget.note())
    writes.append(Write(ref.path, fields, merge=True))
    final = merge_fields(dict(stored), fields)
    result_path = layout.result(state.project, state.experiment, state.run)
    writes.append(Write(result_path, result_doc(ref, final, final.get("summary") or {})))
    return writes


def _stored_chunks(
    store: FirestoreStore, ref: RunRef, key: str, chunks: set[int]
) -> dict[int, dict[str, Any]]:
    if not chunks:
        return {}
    client = store.client
    refs = [client.document(ref.chunk_path(key, n)) for n in sorted(chunks)]
    found = {}
    for snap in client.get_all(refs):
        if snap.exists:
            doc = snap.to_dict() or {}
            found[int(doc["chunk"])] = doc
    return found


def _merge_chunk(n: int, stored: dict[str, Any] | None, points: list[Point]) -> list[Point]:
    """The gapless content of chunk ``n``: Firestore's points, then the journal's beyond them."""
    have = {p.index: p for p in chunk_points(stored)} if stored else {}
    for p in points:
        have.setdefault(p.index, p)  # what Firestore holds is never replaced
    out = []
    i = n * CHUNK_POINTS
    while i in have and chunk_of(i) == n:
        out.append(have[i])
        i += 1
    return out


def _behind(
    state: journal.JournalState, stored: dict[str, Any], series: dict[str, list[Point]]
) -> bool:
    """True when Firestore holds more of the run than the journal does."""
    if stored.get("status") not in (None, RUNNING) and state.ended is None:
        return True
    summaries = stored.get("summary") or {}
    return any(
        (summaries.get(key) or {}).get("count", 0) > len(points) for key, points in series.items()
    ) or any(key not in series for key in summaries)


def _missing(fields: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``fields`` absent from ``stored`` (maps compared key by key)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in stored:
            out[key] = value
        elif isinstance(value, dict) and value and isinstance(stored[key], dict):
            sub = _missing(value, stored[key])
            if sub:
                out[key] = sub
    return out


def _claim(state: journal.JournalState, store: FirestoreStore) -> dict[str, Any]:
    """Make sure the run id is this journal's run's (:mod:`aletheia.tracking.ownership`).

    A run started offline never claimed its id; if another process owns it,
    this run moves to a new id. Returns the moving fields (empty if none).
    Journals written before owner tokens existed are replayed as before.
    """
    owner = state.initial.get(ownership.OWNER)
    if not owner:
        return {}
    moves: list[dict[str, Any]] = []

    def moved(ref: RunRef, fields: dict[str, Any]) -> None:
        moves.append(fields)
        state.sets.append(fields)
        state.renamed_from = state.renamed_from or fields[ownership.CONFLICT_OF]
        state.run = ref.run

    ref = RunRef(state.project, state.experiment, state.run)
    ownership.claim_or_move(
        store.client, ref, owner, state.merged_fields(), 30.0, smaller=state.initial, on_move=moved
    )
    return moves[-1] if moves else {}


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
