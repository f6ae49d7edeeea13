"""The public read API against the emulator: projects, experiments, runs, histories, frames.

Reads are counted (documents Firestore returns), never timed: a leaderboard of
the top runs of 10,000 reads about as many documents as it shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.errors import AletheiaError, NotFoundError, ValidationError
from aletheia.tracking import runmodel, runsearch
from aletheia.tracking.firestore_reader import FirestoreReader
from aletheia.tracking.metastore import Experiment, Metastore
from aletheia.tracking.readapi import ArtifactEntry, DatasetEntry, RunView

from helpers import count_documents_read, write_documents

PROJECT = "reads"


@pytest.fixture()
def cv(stack: config.Settings, db: firestore.Client, tmp_path: Path) -> Iterator[Experiment]:
    """A 3-fold sweep of two learning rates, one failed run, one stale, one debug run."""
    ms = Metastore(PROJECT, flush_interval_s=60)
    exper = ms.exper("cv", git_policy="off")
    for lr, base in ((0.1, 0.70), (0.01, 0.80)):
        for fold in (1, 2, 3):
            with exper.start_run(fold=fold, hyper_params={"lr": lr}, model="mlp") as run:
                run.set_params({"optimizer": "sgd"})
                run.record_dataset("mnist", "v1" if lr == 0.1 else "v2")
                for step in range(3):
                    run.log_metrics({"val/acc": base + fold / 100 - (2 - step) / 10}, step=step)
    with pytest.raises(RuntimeError), exper.start_run(hyper_params={"lr": 0.5}, model="cnn"):
        raise RuntimeError("diverged")
    stale = exper.start_run(hyper_params={"lr": 1.0}, model="cnn")
    assert stale.flush()
    old = runmodel.now() - dt.timedelta(hours=1)
    db.document(layout.run(PROJECT, "cv", stale.id)).update({"heartbeat_at": old})
    debug = ms.exper("cv", debug=True, git_policy="off")
    with debug.start_run(hyper_params={"lr": 0.1}, model="mlp") as run:
        run.log_metrics({"val/acc": 0.99})
    yield exper
    stale.finish()


def ids(runs: list[RunView]) -> list[str]:
    return [r.id for r in runs]


def test_projects_and_experiments(cv: Experiment) -> None:
    ms = cv.ms
    ms.exper("other", git_policy="off")
    assert [e.name for e in ms.experiments()] == ["cv", "other"]
    assert PROJECT in [p.name for p in ms.projects()]
    view = ms.experiment("cv")
    assert view.name == "cv" and view.created_at is not None
    assert ids(view.runs(order_by="attributes.number")) == [str(n) for n in range(1, 10)]
    with pytest.raises(NotFoundError):
        ms.experiment("nope")
    assert "nope" not in [e.name for e in ms.experiments()]  # reading created nothing


def test_runs_filter_on_effective_status_params_model_and_dataset(cv: Experiment) -> None:
    by_number = "attributes.number"
    assert ids(cv.runs(status="failed")) == ["7"]
    assert ids(cv.runs(status="crashed")) == ["8"]  # stored running, heartbeat stale
    assert ids(cv.runs(status="running")) == []
    assert ids(cv.runs(params={"lr": 0.01}, order_by=by_number)) == ["4", "5", "6"]
    assert ids(cv.runs(params={"lr": "0.01"}, order_by=by_number)) == ["4", "5", "6"]
    assert ids(cv.runs(params={"optimizer": "sgd", "lr": 0.1}, debug=False)) == ["3", "2", "1"]
    assert ids(cv.runs(model="cnn", order_by=by_number)) == ["7", "8"]
    assert ids(cv.runs(dataset="mnist@v2", limit=2)) == ["6", "5"]
    assert ids(cv.runs(dataset="mnist", order_by=by_number)) == [str(n) for n in range(1, 7)]
    assert ids(cv.runs(debug=True)) == ["9"]
    with pytest.raises(ValidationError, match="unknown run status"):
        cv.runs(status="done")
    with pytest.raises(ValidationError, match="cannot order by"):
        cv.runs(order_by="metrics.")
    with pytest.raises(ValidationError):
        cv.runs(limit=0)
    with pytest.raises(ValidationError, match="takes no 'stauts'"):  # a typo is no filter
        cv.runs(stauts="failed")


def test_order_by_metric_puts_runs_without_it_last_either_way(cv: Experiment) -> None:
    best = cv.runs(order_by="metrics.val/acc DESC", debug=False)
    # Runs without it tie, and ties go in the direction of the first term (as Firestore's).
    assert ids(best) == ["6", "5", "4", "3", "2", "1", "8", "7"]
    worst = cv.runs(order_by="metrics.val/acc ASC", debug=False)
    assert ids(worst) == ["1", "2", "3", "4", "5", "6", "7", "8"]
    # The server's order with a limit gives the same runs as sorting everything.
    assert ids(cv.runs(order_by="metrics.val/acc DESC", limit=3, debug=False)) == ["6", "5", "4"]
    assert ids(cv.runs(order_by=["params.lr DESC", "attributes.fold"], debug=False)) == [
        "8", "7", "1", "2", "3", "4", "5", "6"
    ]  # fmt: skip


def test_a_nan_final_value_sorts_last_in_the_servers_order_too(
    stack: config.Settings,
) -> None:
    """Firestore puts NaN before every number; a limited ascending read must not let a
    diverged run take the place of a real one."""
    exper = Metastore(PROJECT, flush_interval_s=60).exper("nan", git_policy="off")
    for loss in (float("nan"), 0.3, float("nan"), 0.1, 0.2):
        with exper.start_run() as run:
            run.add_metric("loss", loss)
    whole = ids(exper.runs(order_by="metrics.loss"))
    assert whole == ["4", "5", "2", "1", "3"]  # NaN runs tie; ties ascending by id
    assert ids(exper.runs(order_by="metrics.loss", limit=2)) == ["4", "5"]
    assert ids(exper.runs(order_by="metrics.loss DESC", limit=3)) == ["2", "5", "4"]


def test_ties_at_the_edge_of_a_page_are_cut_as_a_full_sort_cuts_them(
    stack: config.Settings,
) -> None:
    exper = Metastore(PROJECT, flush_interval_s=60).exper("ties", git_policy="off")
    for acc in (0.5, 0.9, 0.9, 0.9, 0.1):
        with exper.start_run() as run:
            run.add_metric("acc", acc)
    for order in ("metrics.acc DESC", "metrics.acc ASC"):
        whole = ids(exper.runs(order_by=order))
        for limit in (1, 2, 3):
            assert ids(exper.runs(order_by=order, limit=limit)) == whole[:limit], (order, limit)
    assert whole[:3] == ["5", "1", "2"]


def test_pages_walk_every_run_once_in_order(cv: Experiment) -> None:
    for order in ("metrics.val/acc DESC", "attributes.start_time DESC", "params.lr"):
        whole = ids(cv.runs(order_by=order))
        seen: list[str] = []
        token = None
        while True:
            page = cv.runs(order_by=order, limit=2, page_token=token)
            seen += ids(page)
            token = page.next_page_token
            if token is None:
                break
        assert seen == whole, order
    with pytest.raises(ValidationError, match="page token"):
        cv.runs(limit=2, page_token="not-a-token")


def test_a_run_read_back_is_read_only(cv: Experiment, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with cv.start_run(fold=1, hyper_params={"lr": 0.1}) as live:
        live.add_artifact("weights", weights)
        live.record_dataset("mnist", "v1")
        for i in range(2 * runmodel.CHUNK_POINTS + 500):
            live.add_metric("loss", 1 / (i + 1), step=i)
        assert len(live.metric_history("loss")) == 2 * runmodel.CHUNK_POINTS + 500
        assert live.artifacts() == [ArtifactEntry("weights", "v1")]
    run = cv.run(live.id)
    assert run.status == "finished" and run.fold == 1 and run.hyper_params["lr"] == 0.1
    assert run.artifacts() == [ArtifactEntry("weights", "v1")]
    assert run.datasets() == [DatasetEntry("mnist", "v1")]
    history = run.metric_history("loss")
    assert [p.step for p in history] == list(range(2 * runmodel.CHUNK_POINTS + 500))
    assert history[-1].value == pytest.approx(1 / (2 * runmodel.CHUNK_POINTS + 500))
    assert run.metric_history("never-logged") == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "running"  # type: ignore[misc]
    with pytest.raises(TypeError):
        run.hyper_params["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        run.summary["loss"]["last"] = 0.0  # type: ignore[index]
    assert not hasattr(run, "add_metric") and not hasattr(run, "set_params")
    changed = run.to_dict()  # a plain copy: changing it changes nothing stored
    changed["hyper_params"]["lr"] = 2.0
    assert cv.run(live.id).hyper_params["lr"] == 0.1
    with pytest.raises(NotFoundError, match="no run '404'"):
        cv.run("404")


def test_runs_frame_and_fold_table(cv: Experiment) -> None:
    frame = cv.runs_frame(debug=False, order_by="attributes.number")
    assert list(frame["run"]) == [str(n) for n in range(1, 9)]
    assert {"params.optimizer", "hyper_params.lr", "metrics.val/acc", "fold", "model"} <= set(
        frame.columns
    )
    table = cv.fold_table(debug=False).set_index("hyper_params.lr")
    assert list(table["folds"].sort_index()) == [3, 3]
    assert table.loc[0.1, "metrics.val/acc.mean"] == pytest.approx(0.72)
    assert table.loc[0.01, "metrics.val/acc.mean"] == pytest.approx(0.82)
    assert table.loc[0.1, "metrics.val/acc.std"] == pytest.approx(0.01)
    assert table.loc[0.1, "model"] == "mlp"


def test_frames_without_pandas_say_what_to_install(
    cv: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without it gives
    with pytest.raises(AletheiaError, match="need pandas") as err:
        cv.runs_frame()
    assert "pip install pandas" in err.value.hint
    assert len(cv.runs()) == 9  # the runs themselves read without it


# --------------------------------------------------------------------------- 10,000 runs

N_RUNS = 10_000


def seed_runs(db: firestore.Client, experiment: str, n: int) -> dict[str, float]:
    """``n`` finished and failed runs in the shape the tracker writes, committed in batches
    of 500 (four at a time). Returns each run's final ``val/acc``."""
    started = runmodel.now() - dt.timedelta(days=1)
    finals: dict[str, float] = {}
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            layout.experiment(PROJECT, experiment),
            {"name": experiment, "desc": "", "next_run_id": n + 1, "created_at": started},
        )
    ]
    for i in range(1, n + 1):
        acc = ((i * 7919) % n) / n  # a permutation of 0 .. (n-1)/n
        summary = runmodel.Summary()
        for step, value in enumerate((acc / 2, acc)):
            summary.add(step, value)
        loss = runmodel.Summary()
        loss.add(1, 1 - acc)
        finals[str(i)] = acc
        doc: dict[str, Any] = {
            "run": str(i),
            "number": i,
            "project": PROJECT,
            "experiment": experiment,
            "status": runmodel.FINISHED if i % 2 else runmodel.FAILED,
            "fold": i % 5,
            "model": {"name": "resnet18"},
            "params": {"seed": i},
            "hyper_params": {"lr": 10 ** -(i % 4)},
            "started_at": started + dt.timedelta(seconds=i),
            "heartbeat_at": started + dt.timedelta(seconds=i + 60),
            "heartbeat_interval_s": runmodel.HEARTBEAT_S,
            "ended_at": started + dt.timedelta(seconds=i + 60),
            "summary": {"val/acc": summary.to_doc(), "loss": loss.to_doc()}
            | ({"test/acc": loss.to_doc()} if i % 1000 == 0 else {}),  # a rare metric
            "datasets": [{"name": "imagenet", "version": "v1"}],
            "dataset_refs": ["imagenet@v1"],
            "artifacts": [],
            "debug": False,
        }
        writes.append((layout.run(PROJECT, experiment, str(i)), doc))

    write_documents(db, writes)
    return finals


def test_top_runs_of_ten_thousand_read_only_what_the_page_shows(
    stack: config.Settings, db: firestore.Client
) -> None:
    finals = seed_runs(db, "big", N_RUNS)
    reader = FirestoreReader(db, PROJECT)  # reads through the client whose reads are counted
    best = sorted(finals, key=lambda r: -finals[r])

    with count_documents_read(db) as reads:
        top = reader.search_runs(["big"], order_by="metrics.val/acc DESC", limit=10)
    assert ids(top) == best[:10]
    assert reads["run_query"] == 11  # the page and one more: is there a next page?
    assert reads["batch_get_documents"] == reads["get_document"] == 0

    with count_documents_read(db) as reads:
        second = reader.search_runs(
            ["big"], order_by="metrics.val/acc DESC", limit=10, page_token=top.next_page_token
        )
    assert ids(second) == best[10:20]
    assert reads["run_query"] == 21

    # A filter Firestore does not apply here (status) only widens the read to what it skips.
    finished = [r for r in best if int(r) % 2]
    with count_documents_read(db) as reads:
        top_finished = reader.search_runs(
            ["big"], status="finished", order_by="metrics.val/acc DESC", limit=10
        )
    assert ids(top_finished) == finished[:10]
    assert reads["run_query"] <= 11 + 22  # two pages: 11, then twice as many

    with count_documents_read(db) as reads:
        worst = reader.search_runs(["big"], order_by="metrics.loss DESC", limit=5)
    assert ids(worst) == sorted(finals, key=lambda r: finals[r])[:5]
    assert reads["run_query"] == 6

    # A metric only ten runs have: those ten, then the runs without it in id order (they
    # tie), read from the documents' own order; never the whole experiment.
    rare = sorted((r for r in finals if int(r) % 1000 == 0), key=lambda r: -(1 - finals[r]))
    with count_documents_read(db) as reads:
        page = reader.search_runs(["big"], order_by="metrics.test/acc DESC", limit=15)
    assert ids(page) == rare + sorted(set(finals) - set(rare), reverse=True)[:5]
    assert reads["run_query"] == 10 + 6  # ten with it; the five without it and one more

    # Newest first, only resnet18 runs (the model's composite index): also bounded.
    with count_documents_read(db) as reads:
        newest = reader.search_runs(["big"], model="resnet18", limit=3)
    assert ids(newest) == [str(N_RUNS), str(N_RUNS - 1), str(N_RUNS - 2)]
    assert reads["run_query"] == 4

    # Across experiments: each one contributes at most the page (plus one), then a merge.
    small = seed_runs(db, "small", 20)
    with count_documents_read(db) as reads:
        across = reader.search_runs(None, order_by="metrics.val/acc DESC", limit=10)
    merged = sorted(  # ties (equal values) in the direction of the order, as Firestore's
        [(v, "big", r) for r, v in finals.items()] + [(v, "small", r) for r, v in small.items()],
        reverse=True,
    )
    assert [(r.experiment, r.id) for r in across] == [(e, r) for _, e, r in merged[:10]]
    assert reads["run_query"] == 2 + 2 * 11  # the two experiments, then a page from each

    # Ordering on a param has no index: the whole experiment is read, and says so by count.
    with count_documents_read(db) as reads:
        by_seed = reader.search_runs(["small"], order_by="params.seed DESC", limit=3)
    assert ids(by_seed) == ["20", "19", "18"]
    assert reads["run_query"] == 20


def test_a_param_filter_matches_the_params_full_text() -> None:
    """``params={"lr": "0.123456789"}`` finds the run that logged 0.123456789 (its text as
    MLflow shows it), not only the six digits ``aletheia runs list`` prints."""
    doc = {"run": "1", "status": "finished", "params": {"lr": 0.123456789}}
    assert runsearch.run_search(params={"lr": "0.123456789"}).matches(doc)
    assert runsearch.run_search(params={"lr": "0.123457"}).matches(doc)
    assert not runsearch.run_search(params={"lr": "0.12"}).matches(doc)
