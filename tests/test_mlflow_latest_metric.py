"""A metric's latest value on ``aletheia://`` is MLflow's: the greatest (step, timestamp, value).

MLflow's stores report as ``run.data.metrics[key]`` the point with the greatest
``(step, timestamp, value)``, not the last one logged; aletheia's own summary
keeps the last logged. The same MLflow program (steps out of order, equal steps
with other timestamps, equal step and timestamp with other values, non-finite
values; live runs, a batch, and points logged to an ended run) runs against
MLflow's file store and against aletheia, and each answers the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import Metric

from aletheia.cloud import config, layout
from aletheia.devstack import local
from aletheia.tracking import runmodel
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.sync import sync_all

from mlflow_compare import assert_same, run_on_both

PROJECT = "mlflowlatest"
T = 1_700_000_000_000  # epoch ms: every point gets an explicit time, the same on both stores
NAN, INF = float("nan"), float("inf")


@pytest.fixture()
def uris(
    stack: config.Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(MLflow file store, aletheia project) URIs; git capture off for speed."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    yield (tmp_path / "mlruns").as_uri(), f"aletheia://{PROJECT}"


def _text(value: float) -> str:
    """A value compared as text (NaN equals NaN)."""
    return repr(float(value))


def _log(key: str, points: list[tuple[float, int, int]]) -> None:
    for value, step, ms in points:
        mlflow.log_metric(key, value, step=step, timestamp=T + ms)


#: Per metric, (value, step, ms after T) in logging order, and what MLflow reports as latest.
SERIES: dict[str, list[tuple[float, int, int]]] = {
    "back": [(1.0, 5, 0), (2.0, 3, 1)],  # steps backwards: 1.0
    "same_step": [(1.0, 1, 2), (2.0, 1, 1)],  # equal step, earlier time: 1.0
    "same_time": [(3.0, 2, 0), (1.0, 2, 0)],  # equal step and time: the greater, 3.0
    "nan_first": [(NAN, 1, 0), (1.0, 1, 0)],  # NaN compares false: the first stays
    "nan_last": [(1.0, 1, 0), (NAN, 1, 0)],
    "inf": [(INF, 0, 0), (-INF, 1, 0), (5.0, 0, 9)],  # -inf at the greatest step
    "forward": [(1.0, 0, 0), (2.0, 1, 1), (0.5, 2, 2)],  # in order: last logged
    "back_then_ahead": [(1.0, 5, 0), (2.0, 3, 1), (4.0, 7, 2)],  # parted, then rejoined
}


def latest_program() -> dict[str, Any]:
    """Log out-of-order metrics in live runs, a batch and an ended run; read them back."""
    client = MlflowClient()
    exp_id = mlflow.set_experiment("latest").experiment_id
    with mlflow.start_run(run_name="a") as a:
        for key, points in SERIES.items():
            _log(key, points)
        _log("m", [(1.0, 5, 0), (2.0, 3, 1)])  # MLflow: 1.0; last logged: 2.0
    with mlflow.start_run(run_name="b") as b:
        _log("m", [(1.5, 1, 0), (0.5, 0, 1)])  # MLflow: 1.5; last logged: 0.5
        batch = [Metric("batched", v, T + i, s) for i, (v, s) in enumerate([(7.0, 9), (8.0, 2)])]
        client.log_batch(b.info.run_id, metrics=batch)
    with mlflow.start_run(run_name="c") as c:
        _log("m", [(0.25, 2, 5), (0.75, 1, 6)])  # parted while live
        _log("ended", [(1.0, 4, 0)])
        _log("ended_full", [(float(i), i, i) for i in range(runmodel.CHUNK_POINTS)])
    # Points logged to the ended run: continuing the stored latest.
    client.log_metric(c.info.run_id, "m", 0.125, timestamp=T + 7, step=2)  # (2, 7) is greater
    client.log_metric(c.info.run_id, "ended", 9.0, timestamp=T - 1, step=4)  # earlier: stays 1.0
    client.log_metric(c.info.run_id, "ended_full", -1.0, timestamp=T, step=999)  # stays 999.0
    ids = {"a": a.info.run_id, "b": b.info.run_id, "c": c.info.run_id}

    def describe(run_id: str) -> dict[str, Any]:
        run = client.get_run(run_id)
        latest = {m.key: (_text(m.value), m.step) for m in run.to_proto().data.metrics}
        return {
            "metrics": {k: _text(v) for k, v in sorted(run.data.metrics.items())},
            "latest": dict(sorted(latest.items())),
            "histories": {
                k: [
                    (_text(m.value), m.step, m.timestamp)
                    for m in client.get_metric_history(run_id, k)
                ]
                for k in sorted(run.data.metrics)
                if k != "ended_full"
            },
        }

    def names(**kwargs: Any) -> list[str]:
        return [r.info.run_name for r in client.search_runs([exp_id], **kwargs)]

    return {
        "runs": {name: describe(run_id) for name, run_id in ids.items()},
        "by_m": names(order_by=["metrics.m ASC"]),
        "by_m_desc": names(order_by=["metrics.m DESC"]),
        "m_over_1": names(filter_string="metrics.m > 1.2"),
        "by_back": names(filter_string="metrics.back < 1.5"),
    }


def test_latest_metrics_answer_as_on_mlflows_file_store(uris: tuple[str, str]) -> None:
    on_file, on_aletheia = run_on_both(latest_program, *uris)
    assert_same(on_aletheia, on_file)
    # And the answers are MLflow's rule, not just equal.
    a = on_aletheia["runs"]["a"]["metrics"]
    assert a["back"] == a["same_step"] == "1.0" and a["same_time"] == "3.0"
    assert a["nan_first"] == "nan" and a["nan_last"] == "1.0" and a["inf"] == "-inf"
    assert a["forward"] == "0.5" and a["back_then_ahead"] == "4.0" and a["m"] == "1.0"
    assert on_aletheia["runs"]["b"]["metrics"]["batched"] == "7.0"
    c = on_aletheia["runs"]["c"]["metrics"]
    assert (c["m"], c["ended"], c["ended_full"]) == ("0.125", "1.0", "999.0")
    assert on_aletheia["by_m"] == ["c", "a", "b"]
    assert on_aletheia["m_over_1"] == ["b"]


def test_aletheia_keeps_the_last_logged_value_and_mlflow_reads_its_latest(
    stack: config.Settings, db: firestore.Client
) -> None:
    """A native run's summary stays last-logged; the same run read through MLflow is MLflow's."""
    ms = Metastore(PROJECT, flush_interval_s=60)
    exper = ms.exper("native", git_policy="off")
    with exper.start_run() as run:
        run.log_metrics({"loss": 1.0, "acc": 0.1}, step=5)
        run.log_metrics({"loss": 2.0, "acc": 0.2}, step=3)
        run.log_metrics({"acc": 0.3}, step=6)
    view = ms.experiment("native").run(run.id)
    assert view.metrics["loss"] == 2.0 and view.summary["loss"]["last_step"] == 3
    assert view.metrics["acc"] == 0.3
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    (found,) = MlflowClient().search_runs(["native"])  # an MLflow experiment id is its name
    assert found.data.metrics == {"loss": 1.0, "acc": 0.3}
    doc = db.document(layout.run(PROJECT, "native", run.id)).get().to_dict() or {}
    # Only metrics whose latest and last point ever parted store a latest ("acc" did, then
    # rejoined at step 6: its stored latest is kept up to date instead of deleted).
    assert sorted(doc[runmodel.LATEST_FIELD]) == ["acc", "loss"]
    assert doc[runmodel.LATEST_FIELD]["loss"]["value"] == 1.0


def test_a_run_synced_from_its_journal_stores_the_same_latest(
    stack: config.Settings, db: firestore.Client
) -> None:
    """``aletheia sync`` replays the journal through the same fold as the live writer."""
    offline = config.resolve({"firestore_emulator_host": f"127.0.0.1:{local.free_port()}"})
    ms = Metastore(PROJECT, settings=offline, flush_interval_s=0.2, final_retry_s=0.5)
    ms.store.commit_timeout_s = 0.5
    with ms.exper("offline", git_policy="off").start_run() as run:
        run.log_metrics({"loss": 1.0}, step=5)
        run.log_metrics({"loss": 2.0, "acc": 0.5}, step=3)
    synced = [r.action for r in sync_all(stack, project=PROJECT) if r.run == run.id]
    assert synced == ["synced"]
    doc = db.document(layout.run(PROJECT, "offline", run.id)).get().to_dict() or {}
    assert doc["summary"]["loss"]["last"] == 2.0  # aletheia's own rule: last logged
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    (found,) = MlflowClient().search_runs(["offline"])
    assert found.data.metrics == {"loss": 1.0, "acc": 0.5}
    assert sorted(doc[runmodel.LATEST_FIELD]) == ["loss"]


def test_the_summary_folds_the_latest_as_mlflows_stores_pick_it() -> None:
    """Every writer folds through ``Summary``: it agrees with MLflow's ``max`` on any order."""
    rng = random.Random(15)
    values = [0.0, 1.0, -1.0, NAN, INF, -INF]
    for _ in range(2000):
        n = rng.randint(1, 8)
        points = [
            runmodel.Point(i, rng.randint(0, 3), rng.choice(values), (T + rng.randint(0, 2)) / 1000)
            for i in range(n)
        ]
        best = max(points, key=lambda p: (p.step, runmodel.epoch_ms(p.ts), p.value))
        summary = runmodel.summarize(points)
        assert summary.latest is not None
        assert summary.latest[:2] == (best.step, runmodel.epoch_ms(best.ts))
        assert _text(summary.latest[2]) == _text(best.value)
        assert summary.last == points[-1].value or math.isnan(points[-1].value)
        # Resumed from what the run document stores, it folds on the same.
        head, tail = points[: n // 2], points[n // 2 :]
        if not head:
            continue
        first = runmodel.summarize(head)
        resumed = runmodel.Summary.stored(first.to_doc(), first.latest_doc(), head[-1].ts)
        for p in tail:
            resumed.add(p.step, p.value, p.ts)
        assert resumed.latest is not None and summary.latest is not None
        assert _text(resumed.latest[2]) == _text(summary.latest[2])
        assert resumed.latest[:2] == summary.latest[:2]
