"""``aletheia runs list | show | compare``: filter, sort, compare, against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import clients, config, layout
from aletheia.errors import NotFoundError
from aletheia.tracking.metastore import Metastore

from helpers import count_documents_read

PROJECT = "cli"
runner = CliRunner()


@pytest.fixture()
def runs(stack: config.Settings, db: firestore.Client) -> Iterator[Metastore]:
    """Four runs of `sweep`: three finished with different lr/acc, one failed, one stale."""
    ms = Metastore(PROJECT, flush_interval_s=60)
    exper = ms.exper("sweep", git_policy="off")
    for lr, acc in ((0.1, 0.7), (0.01, 0.9), (0.001, 0.8)):
        with exper.start_run(fold=1, hyper_params={"lr": lr, "layers": 2}) as run:
            run.set_model("mlp")
            for step in range(3):
                run.log_metrics({"val/acc": acc - 0.1 * (2 - step), "loss": 1 - acc}, step=step)
    with pytest.raises(RuntimeError), exper.start_run(hyper_params={"lr": 0.5}) as run:
        raise RuntimeError("diverged")
    stale = exper.start_run(hyper_params={"lr": 1.0})
    assert stale.flush()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    db.document(layout.run(PROJECT, "sweep", stale.id)).update({"heartbeat_at": old})
    yield ms
    stale.finish()


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["runs", *args, "-p", PROJECT])
    assert result.exit_code == 0, result.output
    return result.output


def test_list_sorts_by_metric_and_filters(runs: Metastore) -> None:
    out = json.loads(invoke("list", "-e", "sweep", "--sort", "val/acc", "--json"))
    assert [r["run"] for r in out[:3]] == ["2", "3", "1"]  # best accuracy first
    assert len(out) == 5
    out = json.loads(invoke("list", "--sort", "loss", "--asc", "--limit", "1", "--json"))
    assert [r["run"] for r in out] == ["2"]
    failed = json.loads(invoke("list", "-e", "sweep", "--status", "failed", "--json"))
    assert [r["run"] for r in failed] == ["4"]
    crashed = json.loads(invoke("list", "--status", "crashed", "--json"))
    assert [r["run"] for r in crashed] == ["5"]  # running, but its heartbeat is stale
    by_param = json.loads(invoke("list", "--param", "lr=0.01", "--json"))
    assert [r["run"] for r in by_param] == ["2"]
    table = invoke("list", "-e", "sweep", "--sort", "val/acc", "--param", "layers=2")
    assert "finished" in table and "val/acc" in table and "3 run(s)" in table


def test_top_n_of_one_experiment_reads_in_the_servers_order_without_a_full_scan(
    runs: Metastore, db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned = json.loads(invoke("list", "-e", "sweep", "--sort", "val/acc", "--json"))
    monkeypatch.setattr(clients, "firestore_client", lambda *_a, **_k: db)  # counted below
    with count_documents_read(db) as reads:
        top = json.loads(invoke("list", "-e", "sweep", "--sort", "val/acc", "-n", "2", "--json"))
    assert [r["run"] for r in top] == [r["run"] for r in scanned[:2]] == ["2", "3"]
    assert reads["run_query"] == 3  # the two runs and one more (is there a next page?)
    with count_documents_read(db) as reads:
        worst = json.loads(
            invoke("list", "-e", "sweep", "--sort", "val/acc", "--asc", "-n", "1", "--json")
        )
    assert [r["run"] for r in worst] == ["1"] and reads["run_query"] == 2
    # More runs asked for than have the metric: the runs without it come from the full scan.
    with count_documents_read(db) as reads:
        everything = json.loads(
            invoke("list", "-e", "sweep", "--sort", "val/acc", "-n", "5", "--json")
        )
    assert [r["run"] for r in everything] == [r["run"] for r in scanned]
    # The ordered query runs out at 3; the rest come in run id order, skipping those 3 again.
    assert reads["run_query"] == 3 + 3 + 2


def test_show_and_compare(runs: Metastore) -> None:
    shown = invoke("show", "2", "-e", "sweep")
    assert "hyper_params.lr" in shown and "0.01" in shown and "val/acc" in shown
    failed = invoke("show", "4", "-e", "sweep")
    assert "RuntimeError: diverged" in failed
    compared = invoke("compare", "1", "2", "3", "-e", "sweep")
    assert "hyper_params.lr" in compared and "val/acc" in compared
    assert "hyper_params.layers" not in compared  # equal params are hidden
    data = json.loads(invoke("compare", "1", "2", "-e", "sweep", "--json"))
    assert data["params"]["hyper_params.lr"] == [0.1, 0.01]
    assert data["metrics"]["val/acc"] == pytest.approx([0.7, 0.9])


def test_bad_input(runs: Metastore) -> None:
    bad_status = runner.invoke(app, ["runs", "list", "--status", "done", "-p", PROJECT])
    assert bad_status.exit_code == 2 and "done" in bad_status.output
    bad_param = runner.invoke(app, ["runs", "list", "--param", "lr", "-p", PROJECT])
    assert bad_param.exit_code == 2
    one = runner.invoke(app, ["runs", "compare", "1", "-e", "sweep", "-p", PROJECT])
    assert one.exit_code == 2
    missing = runner.invoke(app, ["runs", "show", "99", "-e", "sweep", "-p", PROJECT])
    assert isinstance(missing.exception, NotFoundError)
