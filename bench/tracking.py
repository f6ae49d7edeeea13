"""The tracking sides of the logging and ingest benchmarks: aletheia and MLflow.

Both sides run the same training-like loop: a little arithmetic per step,
then one metric call per key, timed call by call with ``perf_counter_ns``.
"Durable" means the run's end returned (aletheia flushes its buffer and
writes the journal's tail; MLflow's calls are synchronous).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import module_available
from bench.fsize import document_size


@dataclass
class LoopResult:
    """Per-call times of one loop and what it took until the data was durable."""

    calls: int
    per_call_s: list[float]
    loop_s: float
    durable_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def train_step(step: int) -> float:
    """A stand-in for a training step: a value that moves like a loss."""
    return 1.0 / math.sqrt(step + 1) + 0.01 * math.sin(step)


def aletheia_available() -> str | None:
    """None when the tracking API exists, else why not."""
    if not module_available("aletheia.tracking.metastore"):
        return "aletheia.tracking.metastore is not in this checkout yet"
    return None


def aletheia_loop(project: str, exper_name: str, keys: list[str], steps: int) -> LoopResult:
    """Log ``steps`` values for each key through ``run.add_metric``."""
    from aletheia.tracking.metastore import Metastore

    set_up = time.perf_counter()
    ms = Metastore(project)
    exper = ms.exper(exper_name)  # set-up, as MLflow's set_experiment is on its side
    per_call: list[float] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    with exper.start_run() as run:
        # Starting a run (its document, the git state at start) is reported apart; the rest of
        # the capture (diff, untracked files, packages, blobs) goes on beside the loop.
        t0 = time.perf_counter()
        start_s = t0 - started
        for step in range(steps):
            value = train_step(step)
            for key in keys:
                c0 = clock()
                run.add_metric(key, value, step)
                per_call.append((clock() - c0) / 1e9)
        loop_s = time.perf_counter() - t0
    durable_s = time.perf_counter() - t0
    extra = {
        "run_id": str(run.id),
        "run": run,
        "start_s": start_s,
        "setup_s": started - set_up,
        "capture": dict(run.fields.get("capture") or {}),
    }
    return LoopResult(len(per_call), per_call, loop_s, durable_s, extra)


def baseline_loop(keys: list[str], steps: int) -> list[float]:
    """The same loop appending to a list: what the machine's own stalls (other processes,
    the scheduler) cost a call that does nearly nothing, under the same load."""
    sink: list[tuple[str, float, int]] = []
    per_call: list[float] = []
    clock = time.perf_counter_ns
    for step in range(steps):
        value = train_step(step)
        for key in keys:
            c0 = clock()
            sink.append((key, value, step))
            per_call.append((clock() - c0) / 1e9)
    return per_call


def writer_stats(run: Any) -> dict[str, Any]:
    """The counters of the run's Firestore store (commit RPCs, writes) and its writer.

    Each benchmark loop uses a fresh ``Metastore``, so the store's counts are
    that run's alone (its creation, metric chunks, summary and result).
    """
    out: dict[str, Any] = {}
    stats = getattr(getattr(getattr(run, "ms", None), "store", None), "stats", None)
    if stats is not None and hasattr(stats, "__dataclass_fields__"):
        out.update({k: getattr(stats, k) for k in stats.__dataclass_fields__})
    writer = getattr(run, "writer", None)
    if writer is not None and hasattr(writer, "points_logged"):
        out["points_logged"] = writer.points_logged
    return out


def read_back(db: Any, metrics_path: str) -> dict[str, int]:
    """Documents, points and storage bytes of a run's metric chunks, as stored."""
    docs = points = size = 0
    for snap in db.collection(metrics_path).stream():
        data = snap.to_dict() or {}
        docs += 1
        points += len(data.get("steps", []))
        size += document_size(snap.reference.path, data)
    return {"documents": docs, "points": points, "bytes": size}


def mlflow_available() -> str | None:
    """None when MLflow imports, else the peer-missing reason."""
    return None if module_available("mlflow") else "peer not installed (mlflow)"


def mlflow_sqlite_available() -> str | None:
    """None when MLflow's SQLite store can run (it needs SQLAlchemy and Alembic)."""
    if module_available("sqlalchemy") and module_available("alembic"):
        return None
    return "peer not installed (sqlalchemy, alembic for MLflow's SQLite store)"


def mlflow_loop(uri: str, keys: list[str], steps: int) -> LoopResult:
    """Log ``steps`` values for each key through ``mlflow.log_metric`` to ``uri``."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow >= 3 refuses file stores without it
    import mlflow

    set_up = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    # Creating the store (SQLite runs its migrations) is set-up, not per-call cost.
    mlflow.set_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    setup_s = time.perf_counter() - set_up
    per_call: list[float] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    run = mlflow.start_run()
    t0 = time.perf_counter()
    start_s = t0 - started
    for step in range(steps):
        value = train_step(step)
        for key in keys:
            c0 = clock()
            mlflow.log_metric(key, value, step=step)
            per_call.append((clock() - c0) / 1e9)
    loop_s = time.perf_counter() - t0
    mlflow.end_run()
    durable_s = time.perf_counter() - t0
    extra = {"run_id": run.info.run_id, "start_s": start_s, "setup_s": setup_s}
    return LoopResult(len(per_call), per_call, loop_s, durable_s, extra)


def mlflow_file_uri(root: Path) -> str:
    """A file-store tracking URI under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return (root / "mlruns").resolve().as_uri()


def mlflow_sqlite_uri(root: Path) -> str:
    """A SQLite tracking URI under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def commit_floor(project: str, chunks: int) -> dict[str, float]:
    """What the server costs a final flush: ``chunks`` full metric chunks committed one batch
    at a time, the same batches side by side (as a flush sends them), and the same number of
    documents of the same size holding one opaque bytes field instead of three arrays."""
    from aletheia.cloud import clients, config, layout
    from aletheia.tracking.runmodel import CHUNK_POINTS, Point, chunk_doc
    from aletheia.tracking.store import PARALLEL_COMMITS, FirestoreStore, Write, split_batches

    db = clients.firestore_client(config.resolve())
    store = FirestoreStore(lambda: db)
    tag = uuid.uuid4().hex[:8]

    def chunk_writes(name: str) -> list[Write]:
        size = CHUNK_POINTS
        return [
            Write(
                layout.metric_chunk(project, "bench-floor", f"{name}-{tag}", "loss", n),
                chunk_doc(
                    "loss",
                    n,
                    [
                        Point(i, i, train_step(i), 1.7e9 + i)
                        for i in range(n * size, (n + 1) * size)
                    ],
                ),
            )
            for n in range(chunks)
        ]

    out: dict[str, float] = {"chunk_points": float(CHUNK_POINTS)}
    writes = chunk_writes("one")
    t0 = time.perf_counter()
    for batch in split_batches(writes, parts=PARALLEL_COMMITS):
        store.commit(list(batch))
    out["chunks_one_at_a_time_s"] = time.perf_counter() - t0
    writes = chunk_writes("side")
    t0 = time.perf_counter()
    store.commit(writes)
    out["chunks_side_by_side_s"] = time.perf_counter() - t0
    size = document_size("x", writes[0].data)
    opaque = [
        Write(
            layout.metric_chunk(project, "bench-floor", f"bytes-{tag}", "loss", n),
            {"blob": os.urandom(size)},
        )
        for n in range(chunks)
    ]
    t0 = time.perf_counter()
    store.commit(opaque)
    out["opaque_bytes_side_by_side_s"] = time.perf_counter() - t0
    return out
