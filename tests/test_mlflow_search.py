"""MLflow's ``search_runs`` on aletheia: what an index serves is read from Firestore in order.

Reads are counted (documents Firestore returns), never timed: the top ten runs
of 2,000 by a metric read the page and its look-ahead, not the experiment.
Whatever is read, MLflow's own ``SearchUtils`` still filters and sorts it, so
a table of filters and orders gives the same runs in the same order as
MLflow's own file store running the same program.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.tracking._tracking_service.utils import _get_store

from aletheia.cloud import config, layout
from aletheia.tracking import runmodel

from helpers import count_documents_read, write_documents
from mlflow_compare import assert_same, run_on_both

PROJECT = "mlflowsearch"
N_RUNS = 2_000


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at the emulator-backed project; the git capture is off for speed."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the store compared against
    uri = f"aletheia://{PROJECT}"
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def seed_mlflow_runs(db: firestore.Client, experiment: str, n: int) -> dict[str, float]:
    """``n`` finished and failed runs as the MLflow plugin stores them, committed in batches
    of 500 (four at a time). Returns each run's final ``acc`` (all different)."""
    started = runmodel.now() - dt.timedelta(days=1)
    finals: dict[str, float] = {}
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            layout.experiment(PROJECT, experiment),
            {"name": experiment, "desc": "", "next_run_id": 1, "created_at": started},
        )
    ]
    for i in range(1, n + 1):
        run_id = f"{i:032x}"
        acc = ((i * 7919) % n) / n  # a permutation of 0 .. (n-1)/n
        summary = runmodel.Summary()
        summary.add(0, acc)
        finals[run_id] = acc
        doc = {
            "run": run_id,
            "project": PROJECT,
            "experiment": experiment,
            "status": runmodel.FINISHED if i % 2 else runmodel.FAILED,
            "params": {"seed": str(i)},
            "started_at": started + dt.timedelta(seconds=i),
            "ended_at": started + dt.timedelta(seconds=i + 60),
            "heartbeat_at": started + dt.timedelta(seconds=i + 60),
            "heartbeat_interval_s": runmodel.HEARTBEAT_S,
            "summary": {"acc": summary.to_doc()},
            "run_name": f"run-{i}",
            "lifecycle_stage": "active",
            "mlflow_tags": {"mlflow.runName": f"run-{i}"},
            "source": "mlflow",
        }
        writes.append((layout.run(PROJECT, experiment, run_id), doc))
        writes.append((layout.mlflow_run(PROJECT, run_id), {"experiment": experiment}))

    write_documents(db, writes)
    return finals


def test_the_top_runs_by_a_metric_read_the_page_not_the_experiment(tracking: str) -> None:
    store = _get_store()
    client = MlflowClient()
    assert client._tracking_client.store is store  # the reads counted are the search's
    finals = seed_mlflow_runs(store.db, "many", N_RUNS)
    best = sorted(finals, key=lambda r: -finals[r])
    exp = client.get_experiment_by_name("many")
    assert exp is not None

    with count_documents_read(store.db) as reads:
        top = client.search_runs([exp.experiment_id], order_by=["metrics.acc DESC"], max_results=10)
    assert [r.info.run_id for r in top] == best[:10]
    # The page, one more (is there a next page, does the last value tie?) and the read
    # API's own look-ahead: never the 2,000 runs.
    assert reads["run_query"] == 12
    assert reads["batch_get_documents"] == reads["get_document"] == 0

    with count_documents_read(store.db) as reads:
        second = client.search_runs(
            [exp.experiment_id],
            order_by=["metrics.acc DESC"],
            max_results=10,
            page_token=top.token,
        )
    assert [r.info.run_id for r in second] == best[10:20]
    assert reads["run_query"] == 22  # page tokens are offsets: the first page again

    # Newest first is MLflow's default order: the start time's index serves it.
    with count_documents_read(store.db) as reads:
        newest = client.search_runs([exp.experiment_id], max_results=5)
    assert [r.info.run_name for r in newest] == [f"run-{i}" for i in range(N_RUNS, N_RUNS - 5, -1)]
    assert reads["run_query"] == 7

    # A status filter goes to the read API; a filter it cannot apply (20 runs have
    # acc >= 0.99) only widens the read, in doubling pages: never to the experiment.
    finished = [r for r in best if int(r, 16) % 2]
    with count_documents_read(store.db) as reads:
        top_finished = client.search_runs(
            [exp.experiment_id],
            filter_string="attributes.status = 'FINISHED' and metrics.acc < 0.99",
            order_by=["metrics.acc DESC"],
            max_results=10,
        )
    expected = [r for r in finished if finals[r] < 0.99][:10]
    assert [r.info.run_id for r in top_finished] == expected
    assert reads["run_query"] < N_RUNS / 10

    # Deleted runs are few: looking for them reads every run once, not in doubling pages.
    with count_documents_read(store.db) as reads:
        deleted = client.search_runs(
            [exp.experiment_id],
            run_view_type=ViewType.DELETED_ONLY,
            order_by=["metrics.acc DESC"],
            max_results=10,
        )
    assert list(deleted) == []
    assert reads["run_query"] == N_RUNS

    # An order no index serves (a param) reads every run, and MLflow sorts them.
    with count_documents_read(store.db) as reads:
        by_seed = client.search_runs(
            [exp.experiment_id], order_by=["params.seed DESC"], max_results=3
        )
    assert [r.data.params["seed"] for r in by_seed] == ["999", "998", "997"]  # text order
    assert reads["run_query"] == N_RUNS


# --------------------------------------------------------------------------- same as MLflow's

#: Filters, orders and view types; each is paged through two runs at a time, so that
#: pages end inside ties (MLflow breaks them by start time, the read API by run id).
CASES: list[tuple[str | None, list[str] | None, int]] = [
    ("attributes.status = 'RUNNING'", ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    (None, ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    (None, ["metrics.acc ASC"], ViewType.ACTIVE_ONLY),
    (None, None, ViewType.ACTIVE_ONLY),
    (None, ["attributes.start_time DESC"], ViewType.ACTIVE_ONLY),
    (None, ["attributes.start_time ASC"], ViewType.ACTIVE_ONLY),
    (None, ["metrics.acc DESC", "params.depth ASC"], ViewType.ACTIVE_ONLY),
    (None, ["params.depth DESC", "metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    ("attributes.status = 'FAILED'", ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    ("attributes.status != 'FINISHED'", ["metrics.loss DESC"], ViewType.ACTIVE_ONLY),
    ("attributes.status = 'KILLED'", None, ViewType.ACTIVE_ONLY),
    ("params.lr = '0.1'", ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    ("params.lr = '0.1' and tags.team = 'a'", ["metrics.loss ASC"], ViewType.ACTIVE_ONLY),
    ("tags.team = 'a'", ["metrics.loss ASC"], ViewType.ACTIVE_ONLY),
    ("tags.team LIKE 'a%'", None, ViewType.ACTIVE_ONLY),
    ("metrics.acc > 0.25", ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    ("attributes.run_name = 'r03'", ["metrics.acc DESC"], ViewType.ACTIVE_ONLY),
    (None, ["metrics.loss DESC"], ViewType.ALL),
    (None, ["metrics.acc DESC"], ViewType.DELETED_ONLY),
]


def _next_millisecond() -> None:
    """Wait until the clock's millisecond changes, so no two runs start in the same one
    (MLflow orders equal start times by run id, which differ between stores)."""
    now = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == now:
        pass


def _search_program() -> dict[str, list[list[str]]]:
    """Log 16 runs (ties, a NaN, runs without the metric, failed, killed, one deleted) and
    5 more in a second experiment, leave one running, then page through every case over
    both experiments. Returns each case's pages of run names."""
    mlflow.set_experiment("search-cases")
    client = MlflowClient()
    for i in range(16):
        _next_millisecond()
        run = mlflow.start_run(run_name=f"r{i:02d}")
        mlflow.log_params({"lr": ("0.1", "0.01")[i % 2], "depth": str(i % 3)})
        mlflow.set_tag("team", ("a", "b", "ab")[i % 3])
        if i % 5 != 4:  # some runs never log acc
            mlflow.log_metric("acc", math.nan if i == 7 else (i % 3) / 10)  # ties
        mlflow.log_metric("loss", 1 - i / 20)
        mlflow.end_run("FAILED" if i % 4 == 3 else "KILLED" if i == 5 else "FINISHED")
        if i == 10:
            client.delete_run(run.info.run_id)
    mlflow.set_experiment("search-more")
    for i in range(16, 21):  # ties with the first experiment's values, across experiments
        _next_millisecond()
        with mlflow.start_run(run_name=f"r{i:02d}"):
            mlflow.log_params({"lr": "0.1", "depth": str(i % 3)})
            mlflow.log_metrics({"acc": (i % 3) / 10, "loss": 1 - i / 20})
    _next_millisecond()
    mlflow.start_run(run_name="live")  # still running while the searches run
    mlflow.log_metric("acc", 0.45)
    ids = [e.experiment_id for e in client.search_experiments() if e.name.startswith("search-")]
    assert len(ids) == 2
    found: dict[str, list[list[str]]] = {}
    for filter_string, order_by, view in CASES:
        pages: list[list[str]] = []
        token = None
        while True:
            page = client.search_runs(
                ids,
                filter_string=filter_string or "",
                run_view_type=view,
                max_results=2,
                order_by=order_by,
                page_token=token,
            )
            pages.append([r.info.run_name for r in page])
            token = page.token
            if not token:
                break
        found[f"{filter_string} / {order_by} / {ViewType.to_string(view)}"] = pages
    mlflow.end_run()
    return found


def test_filters_and_orders_give_what_mlflows_file_store_gives(
    tracking: str, tmp_path: Path
) -> None:
    on_file, on_aletheia = run_on_both(_search_program, (tmp_path / "mlruns").as_uri(), tracking)
    best = on_file["None / ['metrics.acc DESC'] / active_only"]
    assert best[:2] == [["live", "r20"], ["r17", "r11"]]  # ties: newest first
    assert_same(on_aletheia, on_file)
