"""``aletheia project list``, ``experiments list``, ``runs list`` across experiments with
model and dataset filters, and ``runs history``: against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cli.runs_cmd import sparkline
from aletheia.cloud import clients, config
from aletheia.errors import NotFoundError
from aletheia.tracking.metastore import Metastore

from helpers import count_documents_read

PROJECT = "readcli"
runner = CliRunner()


@pytest.fixture()
def two_experiments(stack: config.Settings) -> Iterator[Metastore]:
    """`vision`: two resnet runs on mnist@v1/v2; `text`: one bert run on imdb@v1."""
    ms = Metastore(PROJECT, flush_interval_s=60)
    vision = ms.exper("vision", git_policy="off")
    vision.desc = "image models"
    for version, acc in (("v1", 0.6), ("v2", 0.9)):
        with vision.start_run(model="resnet", hyper_params={"lr": 0.1}) as run:
            run.record_dataset("mnist", version)
            for step in range(30):
                run.add_metric("val/acc", acc * (step + 1) / 30, step=step)
    text = ms.exper("text", git_policy="off")
    with text.start_run(model="bert") as run:
        run.record_dataset("imdb", "v1")
        run.add_metric("val/acc", 0.75)
    yield ms


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_project_and_experiments_list(two_experiments: Metastore) -> None:
    projects = json.loads(invoke("project", "list", "--json"))
    assert PROJECT in [p["name"] for p in projects]
    assert PROJECT in invoke("project", "list")
    experiments = json.loads(invoke("experiments", "list", "-p", PROJECT, "--json"))
    assert [(e["name"], e["desc"]) for e in experiments] == [
        ("text", ""),
        ("vision", "image models"),
    ]
    table = invoke("experiments", "list", "-p", PROJECT)
    assert "image models" in table and "2 experiment(s)" in table


def test_runs_list_across_experiments_by_model_and_dataset(two_experiments: Metastore) -> None:
    def listed(*args: str) -> list[tuple[str, str]]:
        out = json.loads(invoke("runs", "list", "-p", PROJECT, "--json", *args))
        return [(r["experiment"], r["run"]) for r in out]

    assert listed() == [("text", "1"), ("vision", "1"), ("vision", "2")]
    assert listed("--sort", "val/acc") == [("vision", "2"), ("text", "1"), ("vision", "1")]
    assert listed("--sort", "val/acc", "-n", "2") == [("vision", "2"), ("text", "1")]
    assert listed("--model", "resnet") == [("vision", "1"), ("vision", "2")]
    assert listed("--model", "bert", "--sort", "val/acc") == [("text", "1")]
    assert listed("--dataset", "mnist") == [("vision", "1"), ("vision", "2")]
    assert listed("--dataset", "mnist@v2") == [("vision", "2")]
    assert listed("--dataset", "imdb@v1", "-e", "vision") == []
    assert listed("--model", "nope") == []
    bad = runner.invoke(app, ["runs", "list", "-p", PROJECT, "--dataset", "a/b"])
    assert bad.exit_code != 0


def test_runs_history_chart_table_and_json(two_experiments: Metastore) -> None:
    out = invoke("runs", "history", "2", "val/acc", "-e", "vision", "-p", PROJECT, "--rows", "4")
    assert "30 point(s)" in out
    assert sparkline([0.03 * (i + 1) for i in range(30)]) in out
    for step in ("0", "10", "19", "29"):  # evenly spaced, first and last included
        assert f"│ {step} " in out
    points = json.loads(
        invoke("runs", "history", "2", "val/acc", "-e", "vision", "-p", PROJECT, "--json")
    )
    assert [p["step"] for p in points] == list(range(30))
    assert points[-1]["value"] == pytest.approx(0.9)
    missing = runner.invoke(app, ["runs", "history", "2", "loss", "-e", "vision", "-p", PROJECT])
    assert isinstance(missing.exception, NotFoundError)
    assert "val/acc" in missing.exception.hint  # says which metrics the run has


def test_sparkline_shape() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([float("nan")]) == ""
    assert len(sparkline(list(range(1000)), width=60)) == 60


def test_top_n_across_experiments_reads_a_page_from_each(
    two_experiments: Metastore, db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "firestore_client", lambda *_a, **_k: db)  # counted below
    with count_documents_read(db) as reads:
        out = json.loads(
            invoke("runs", "list", "-p", PROJECT, "--sort", "val/acc", "-n", "1", "--json")
        )
    assert [(r["experiment"], r["run"]) for r in out] == [("vision", "2")]
    # The two experiment documents; `vision`'s top two in the server's order (one more
    # than the page says whether there is more); `text` has fewer runs with the metric
    # than that, so the rest of its page is looked for among its runs without it, in id
    # order: its one run again, and an empty page.
    assert reads["run_query"] == 2 + 2 + 1 + 1
    assert reads["run_query calls"] == 5


def test_runs_folds_is_the_cross_validation_table(stack: config.Settings) -> None:
    exper = Metastore(PROJECT, flush_interval_s=60).exper("cv", git_policy="off")
    for lr, accs in ((0.1, (0.70, 0.72, 0.74)), (0.01, (0.80, 0.80, 0.83))):
        for fold, acc in enumerate(accs, 1):
            with exper.start_run(fold=fold, hyper_params={"lr": lr}, model="mlp") as run:
                run.add_metric("acc", acc)
    rows = json.loads(invoke("runs", "folds", "-e", "cv", "-p", PROJECT, "--json"))
    by_lr = {r["hyper_params.lr"]: r for r in rows}
    assert by_lr[0.1]["folds"] == by_lr[0.01]["folds"] == 3
    assert by_lr[0.1]["metrics.acc.mean"] == pytest.approx(0.72)
    assert by_lr[0.1]["metrics.acc.std"] == pytest.approx(0.02)
    assert by_lr[0.01]["metrics.acc.mean"] == pytest.approx(0.81)
    table = invoke("runs", "folds", "-e", "cv", "-p", PROJECT)
    assert "0.72 ± 0.02" in table and "6 finished run(s)" in table


def test_runs_list_by_number_reads_only_the_page(
    two_experiments: Metastore, db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    vision = two_experiments.exper("vision", git_policy="off")
    with vision.start_run(run_id="custom"):  # no number: listed after the numbered runs
        pass
    monkeypatch.setattr(clients, "firestore_client", lambda *_a, **_k: db)  # counted below
    with count_documents_read(db) as reads:
        out = json.loads(invoke("runs", "list", "-p", PROJECT, "-e", "vision", "-n", "1", "--json"))
    assert [r["run"] for r in out] == ["1"]
    assert reads["run_query"] == 2  # the page and one more, in the run number's order
    every = json.loads(invoke("runs", "list", "-p", PROJECT, "-e", "vision", "-n", "3", "--json"))
    assert [r["run"] for r in every] == ["1", "2", "custom"]


def test_runs_list_of_runs_without_numbers_reads_only_the_page(
    stack: config.Settings, db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs without a number (MLflow's, explicit ids) are listed by start: a page of them
    reads the page, not the whole experiment."""
    exper = Metastore(PROJECT, flush_interval_s=60).exper("imported", git_policy="off")
    for name in ("zeta", "alpha", "mid", "beta", "omega", "kappa", "delta", "eta"):
        with exper.start_run(run_id=name):
            pass
    every = json.loads(invoke("runs", "list", "-p", PROJECT, "-e", "imported", "--json"))
    assert [r["run"] for r in every][:3] == ["zeta", "alpha", "mid"]  # by start
    monkeypatch.setattr(clients, "firestore_client", lambda *_a, **_k: db)  # counted below
    with count_documents_read(db) as reads:
        page = json.loads(
            invoke("runs", "list", "-p", PROJECT, "-e", "imported", "-n", "3", "--json")
        )
    assert page == every[:3]
    # None has a number (an empty page); then the page and one more, in start order.
    assert reads["run_query"] == 0 + 4
