"""The local append-only journal of a run: what was logged, and what Firestore acknowledged.

One JSON-lines file per run under ``{cache_dir}/journal/``. Metric points
are queued by the caller (formatted, no lock, no I/O) and written with the
file's buffer by a thread of the run every 0.1 s and before every flush to
Firestore (a write syscall per point would cost more than everything else
``add_metric`` does); every other record is handed to the OS at once, after
the points queued before it. So a process killed with SIGKILL loses
at most its last 0.1 s of points; a torn last line is ignored on reading. Records (key ``t``)::

    run     header: project, experiment, run id, target, pid, host, initial fields
    set     run-document fields set by the user (params, model, status ...)
    m       one metric point: key k, per-key index i, step s, value v, time ts
    ack     Firestore acknowledged metric indexes < m[key] and the first f set records
    renamed the run id was another process's: this run is kept as ``run``
    end     the run ended (status); written after the final flush was attempted
    synced  ``aletheia sync`` settled the run: everything is in Firestore

Replaying a journal (:func:`read`) gives back the state needed to rewrite
every unacknowledged chunk document with exactly the content it would have
had: ids are deterministic (key, chunk number), so replaying twice changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

from aletheia.errors import ConfigError
from aletheia.tracking.runmodel import Point
from aletheia.tracking.writing import RunEvent, RunObserver

JOURNAL_DIR = "journal"
#: User-space buffer for metric lines (handed to the OS at every flush).
BUFFER_BYTES = 256 * 1024
SUFFIX = ".jsonl"
#: Longest journal file name before it is hashed (file systems allow 255 bytes).
MAX_NAME_BYTES = 200
#: Separates a journal name from the count of earlier runs that had the same id.
AGAIN_MARK = "+"


def journal_root(cache_dir: Path, cloud_project: str) -> Path:
    """Where the journals for one cloud target live."""
    return cache_dir / JOURNAL_DIR / quote(cloud_project, safe="")


def journal_path(root: Path, project: str, experiment: str, run: str) -> Path:
    """The journal file of one run (names percent-encoded: reversible and path-safe).

    Names too long for a file name (255 bytes) are hashed; the header record
    always says whose journal it is.
    """
    name = quote(f"{project}/{experiment}/{run}", safe=" ")
    if len(name.encode()) > MAX_NAME_BYTES:
        name = "h-" + hashlib.sha256(name.encode()).hexdigest()
    return root / f"{name}{SUFFIX}"


def new_journal_path(root: Path, project: str, experiment: str, run: str) -> Path:
    """A file of its own for the journal of a run starting now.

    A run id can come back: Firestore wiped, or restored from an older export,
    counts runs from 1 again. Appending to the earlier run's journal would mix
    two runs' points, and ``aletheia sync`` would replay the earlier run's
    into the new one; so the later run gets ``…+1.jsonl`` (``+2`` …) and the
    earlier journal is kept as it is. (``+`` never occurs in the quoted name.)
    """
    path = journal_path(root, project, experiment, run)
    base = path.name[: -len(SUFFIX)]
    again = 0
    while path.exists():
        again += 1
        path = root / f"{base}{AGAIN_MARK}{again}{SUFFIX}"
    return path


def parse_journal_name(path: Path) -> tuple[str, str, str] | None:
    """``(project, experiment, run)`` from a journal file name, or ``None``."""
    if not path.name.endswith(SUFFIX):
        return None
    base = path.name[: -len(SUFFIX)].split(AGAIN_MARK)[0]
    parts = unquote(base).split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def ensure_writable(root: Path) -> None:
    """Create ``root`` and prove a file can be written there, or raise ``ConfigError``.

    Permission bits alone do not tell (root ignores them, a read-only mount
    does not show in them): only writing does.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as exc:
        raise unwritable(root, exc) from exc


def unwritable(root: Path, exc: OSError) -> ConfigError:
    """The error for journals that cannot be written under ``root``: where, and what to set."""
    return ConfigError(
        f"cannot write run journals under {root} ({exc.strerror or exc})",
        "make that directory writable, or point the cache_dir setting "
        "(ALETHEIA_CACHE_DIR, or Metastore(..., cache_dir=...)) at a writable directory",
    )


def list_journals(root: Path) -> list[Path]:
    """Every journal file under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(root.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)


# --------------------------------------------------------------------------- encoding


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$ts": value.timestamp()}
    if isinstance(value, bytes):
        return {"$b": value.hex()}
    return str(value)


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$ts" in obj:
            return dt.datetime.fromtimestamp(obj["$ts"], tz=dt.timezone.utc)
        if "$b" in obj:
            return bytes.fromhex(obj["$b"])
    return obj


def _number(value: float) -> str:
    """JSON text of a float; NaN and infinities as Python's json reads them back."""
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


# --------------------------------------------------------------------------- writing


#: Journals a writer of this process has open: their run's own writer settles them (between
#: its ``end`` and ``synced`` records a journal looks ended and unsettled, and the next
#: run's background sync must not replay it then).
_open_here: set[Path] = set()
_open_here_lock = threading.Lock()


def open_in_this_process(path: Path) -> bool:
    """True while a :class:`JournalWriter` of this process has ``path`` open."""
    with _open_here_lock:
        return path.resolve() in _open_here


class JournalWriter(RunObserver):
    """Appends records to one run's journal; safe to share between threads.

    As an observer of its run (:class:`~aletheia.tracking.writing.RunObserver`),
    it writes the header when the run starts and the ``end`` record when it
    ends; metric points and field sets come from the run's writer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=BUFFER_BYTES)
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}
        # Metric lines waiting for the file: appended by the training thread without a lock
        # (a deque's append and popleft are atomic), written by whoever flushes, so a
        # write syscall or a flush in progress never holds up ``add_metric``.
        self._lines: deque[str] = deque()
        with _open_here_lock:
            _open_here.add(path.resolve())

    def header(
        self,
        *,
        project: str,
        experiment: str,
        run: str,
        cloud_project: str,
        created: bool,
        fields: Mapping[str, Any],
        heartbeat_s: float,
    ) -> None:
        """The first record: who the run is and the fields it started with."""
        self._write(
            {
                "t": "run",
                "project": project,
                "experiment": experiment,
                "run": run,
                "cloud_project": cloud_project,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "created": created,
                "heartbeat_s": heartbeat_s,
                "fields": dict(fields),
            }
        )

    def started_event(self, event: RunEvent) -> None:
        """The header, from the started event (its ``info`` says where the run is kept)."""
        self.header(
            project=event.ref.project,
            experiment=event.ref.experiment,
            run=event.ref.run,
            cloud_project=str(event.info.get("cloud_project", "")),
            created=bool(event.info.get("created")),
            fields=event.fields,
            heartbeat_s=float(event.info.get("heartbeat_s", 30.0)),
        )

    def _ended(self, event: RunEvent) -> None:
        self.end(event.status or event.kind)

    completed_event = failed_event = interrupted_event = _ended

    def metric(self, key: str, index: int, step: int, value: float, ts: float) -> None:
        """One metric point (hand-formatted: this is the hot path). Queued, not written:
        :meth:`flush` (every 0.1 s, and before every Firestore flush) writes it."""
        k = self._keys.get(key)
        if k is None:
            k = self._keys[key] = json.dumps(key)
        self._lines.append(
            f'{{"t":"m","k":{k},"i":{index},"s":{step},"v":{_number(value)},"ts":{ts!r}}}\n'
        )

    def set_fields(self, fields: Mapping[str, Any]) -> None:
        """Run-document fields set by the user."""
        self._write({"t": "set", "f": dict(fields)})

    def ack(self, metrics: Mapping[str, int], sets: int) -> None:
        """Firestore holds metric indexes below ``metrics[key]`` and the first ``sets`` sets."""
        self._write({"t": "ack", "m": dict(metrics), "f": sets})

    def end(self, status: str) -> None:
        """The run ended with ``status``."""
        self._write({"t": "end", "status": status})

    def renamed(self, run: str, conflict_of: str) -> None:
        """The run id belonged to another process: this run goes on as ``run``."""
        self._write({"t": "renamed", "run": run, "conflict_of": conflict_of})

    def synced(self) -> None:
        """Everything in this journal is in Firestore."""
        self._write({"t": "synced"})

    def flush(self) -> None:
        """Hand queued and buffered lines to the OS (they then survive the process)."""
        with self._lock:
            if not self._file.closed:
                self._write_queued()
                self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent), queued lines written first."""
        with self._lock:
            if not self._file.closed:
                self._write_queued()
                self._file.close()
        with _open_here_lock:
            _open_here.discard(self.path.resolve())

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, default=_default, separators=(",", ":")) + "\n"
        with self._lock:
            self._write_queued()  # the points logged before this record come before it
            self._file.write(line)
            self._file.flush()

    def _write_queued(self) -> None:
        """Move the queued metric lines into the file's buffer; the caller holds the lock."""
        lines = self._lines
        # What is queued now, not until the queue is empty: a training loop appends as fast
        # as this pops, and would keep this from ever reaching the file.
        batch = [lines.popleft() for _ in range(len(lines))]
        if batch:
            self._file.write("".join(batch))


# --------------------------------------------------------------------------- reading


@dataclass
class JournalState:
    """Everything a journal says about its run."""

    path: Path
    project: str = ""
    experiment: str = ""
    run: str = ""
    cloud_project: str = ""
    pid: int | None = None
    host: str | None = None
    created: bool = False
    heartbeat_s: float = 30.0
    initial: dict[str, Any] = field(default_factory=dict)
    sets: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, list[Point]] = field(default_factory=dict)
    acked_metrics: dict[str, int] = field(default_factory=dict)
    acked_sets: int = 0
    ended: str | None = None
    synced: bool = False
    last_ts: float = 0.0
    torn_lines: int = 0
    #: Line number of the first line that is not a record (a torn last line is normal).
    first_bad_line: int | None = None
    renamed_from: str | None = (
        None  # the id another process owned (see aletheia.tracking.ownership)
    )

    @property
    def point_count(self) -> int:
        """Number of metric points logged."""
        return sum(len(p) for p in self.points.values())

    def unacked_points(self) -> int:
        """Points Firestore has not acknowledged."""
        return sum(
            sum(1 for p in pts if p.index >= self.acked_metrics.get(key, 0))
            for key, pts in self.points.items()
        )

    @property
    def complete(self) -> bool:
        """True when Firestore holds everything and the run has ended."""
        return self.synced or (
            self.ended is not None
            and self.unacked_points() == 0
            and self.acked_sets >= len(self.sets)
        )

    def merged_fields(self) -> dict[str, Any]:
        """Initial fields with every later ``set`` applied in order (maps merged)."""
        merged: dict[str, Any] = {}
        for update in [self.initial, *self.sets]:
            _deep_merge(merged, update)
        return merged


def _deep_merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def read(path: Path) -> JournalState:
    """Parse a journal file; a torn or corrupt line is counted and skipped."""
    state = JournalState(path=path)
    with path.open("rb") as f:  # bytes: a corrupt line must not stop the lines after it
        for number, line in enumerate(f, start=1):
            try:
                _apply(state, json.loads(line.decode("utf-8"), object_hook=_hook))
            except (ValueError, KeyError, TypeError, AttributeError):
                state.torn_lines += 1
                if state.first_bad_line is None:
                    state.first_bad_line = number
    for pts in state.points.values():
        pts.sort(key=lambda p: p.index)
    return state


def _apply(state: JournalState, rec: dict[str, Any]) -> None:
    kind = rec.get("t")
    if kind == "m":
        point = Point(int(rec["i"]), int(rec["s"]), float(rec["v"]), float(rec["ts"]))
        state.points.setdefault(str(rec["k"]), []).append(point)
        state.last_ts = max(state.last_ts, rec["ts"])
    elif kind == "set":
        if not isinstance(rec["f"], dict):
            raise TypeError("a set record holds a map of fields")
        state.sets.append(rec["f"])
    elif kind == "ack":
        for key, upto in rec["m"].items():
            state.acked_metrics[key] = max(state.acked_metrics.get(key, 0), upto)
        state.acked_sets = max(state.acked_sets, rec["f"])
    elif kind == "run":
        for name in ("project", "experiment", "run", "cloud_project", "pid", "host", "created"):
            setattr(state, name, rec.get(name))
        state.heartbeat_s = float(rec.get("heartbeat_s", 30.0))
        state.initial = rec.get("fields", {})
    elif kind == "end":
        state.ended = rec["status"]
    elif kind == "renamed":
        state.renamed_from = state.renamed_from or state.run
        state.run = rec["run"]
    elif kind == "synced":
        state.synced = True
