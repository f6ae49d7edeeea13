"""The real ``mlflow`` package logging into aletheia through the ``aletheia://`` plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _get_store
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.integrations.mlflow.store import AletheiaStore
from aletheia.tracking.metastore import Metastore

PROJECT = "mlflowcompat"
runner = CliRunner()


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at the emulator-backed project; the git capture is off for speed."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    uri = f"aletheia://{PROJECT}"
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def training_script(workdir: Path) -> tuple[str, str]:
    """A typical MLflow training script, unchanged: returns (parent, child) run ids."""
    mlflow.set_experiment("mnist")
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({"lr": 0.01, "epochs": 3})
        mlflow.log_param("optimizer", "adam")
        mlflow.set_tags({"team": "vision", "stage": "dev"})
        for step in range(1000):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.93, "f1": 0.9}, step=999)
        report = workdir / "report.txt"
        report.write_text("accuracy 0.93\n")
        mlflow.log_artifact(str(report))
        (workdir / "model").mkdir()
        (workdir / "model" / "weights.bin").write_bytes(b"\x00\x01" * 100)
        mlflow.log_artifacts(str(workdir / "model"), artifact_path="model")
        with mlflow.start_run(run_name="eval", nested=True) as child:
            mlflow.log_metric("val_acc", 0.91)
        return run.info.run_id, child.info.run_id


def test_training_script_lands_in_firestore_and_both_views(
    tracking: str, db: firestore.Client, tmp_path: Path
) -> None:
    store = _get_store()
    assert isinstance(store, AletheiaStore)  # MLflow found the plugin through its entry point
    commits_before = store.ms.store.stats.commits
    parent_id, child_id = training_script(tmp_path)
    # 1,000 log_metric calls go through the buffered writer: batched commits, not one per point.
    assert store.ms.store.stats.commits - commits_before < 100

    doc = db.document(layout.run(PROJECT, "mnist", parent_id)).get().to_dict()
    assert doc["status"] == "finished"
    assert doc["params"] == {"lr": "0.01", "epochs": "3", "optimizer": "adam"}
    assert doc["mlflow_tags"]["team"] == "vision"
    assert doc["summary"]["loss"]["count"] == 1000
    chunks = list(db.collection(layout.metrics(PROJECT, "mnist", parent_id)).stream())
    assert len(chunks) == 3  # loss (1000 points in one chunk), acc, f1: no doc per point
    child = db.document(layout.run(PROJECT, "mnist", child_id)).get().to_dict()
    assert child["parent"] == {"experiment": "mnist", "run": parent_id}

    client = MlflowClient()
    history = client.get_metric_history(parent_id, "loss")
    assert [m.step for m in history] == list(range(1000))
    assert history[-1].value == pytest.approx(1 / 1000)

    found = mlflow.search_runs(experiment_names=["mnist"], output_format="list")
    assert {r.info.run_id for r in found} == {parent_id, child_id}
    nested = mlflow.search_runs(
        experiment_names=["mnist"],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )
    assert [r.info.run_id for r in nested] == [child_id]
    got = mlflow.get_run(parent_id)
    assert got.data.params["optimizer"] == "adam"
    assert got.data.metrics["acc"] == pytest.approx(0.93)
    assert got.info.status == "FINISHED"
    assert {f.path for f in client.list_artifacts(parent_id)} == {"model", "report.txt"}
    local = client.download_artifacts(parent_id, "model/weights.bin", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"\x00\x01" * 100

    out = runner.invoke(app, ["runs", "show", parent_id, "-e", "mnist", "-p", PROJECT, "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["params"]["optimizer"] == "adam"
    assert shown["summary"]["loss"]["count"] == 1000
    listed = runner.invoke(app, ["runs", "list", "-e", "mnist", "-p", PROJECT, "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["run"] for r in json.loads(listed.output)} == {parent_id, child_id}


def test_search_filters_and_order(tracking: str) -> None:
    mlflow.set_experiment("sweep")
    for lr, acc in ((0.1, 0.7), (0.01, 0.9), (0.001, 0.8)):
        with mlflow.start_run():
            mlflow.log_param("lr", lr)
            mlflow.log_metric("acc", acc)
            mlflow.set_tag("kind", "grid")
    best = mlflow.search_runs(
        experiment_names=["sweep"],
        filter_string="metrics.acc > 0.75 AND tags.kind = 'grid'",
        order_by=["metrics.acc DESC"],
        output_format="list",
    )
    assert [r.data.params["lr"] for r in best] == ["0.01", "0.001"]
    by_param = mlflow.search_runs(
        experiment_names=["sweep"],
        filter_string="params.lr = '0.1' AND attributes.status = 'FINISHED'",
        output_format="list",
    )
    assert [r.data.metrics["acc"] for r in by_param] == [0.7]


def test_unsupported_filter_is_mlflows_error(tracking: str) -> None:
    mlflow.set_experiment("sweep2")
    with mlflow.start_run():
        mlflow.log_metric("acc", 1.0)
    with pytest.raises(MlflowException) as err:
        mlflow.search_runs(experiment_names=["sweep2"], filter_string="datasets.name = 'mnist'")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "cannot evaluate" in err.value.message


def test_mlflow_run_nests_under_aletheia_run(tracking: str, db: firestore.Client) -> None:
    ms = Metastore(PROJECT)
    exper = ms.exper("outer", git_policy="off")
    mlflow.set_experiment("inner")
    with exper.start_run() as outer, mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0)
    doc = db.document(layout.run(PROJECT, "inner", run.info.run_id)).get().to_dict()
    assert doc["parent"] == {"experiment": "outer", "run": outer.id}
    assert mlflow.get_run(run.info.run_id).data.tags["mlflow.parentRunId"] == outer.id


def test_param_change_and_logging_to_unknown_run_fail_like_mlflow(tracking: str) -> None:
    mlflow.set_experiment("strict")
    with mlflow.start_run():
        mlflow.log_param("lr", 0.1)
        with pytest.raises(MlflowException, match="Changing param values"):
            mlflow.log_param("lr", 0.2)
    with pytest.raises(MlflowException) as err:
        MlflowClient().get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


SCRIPT = """
import mlflow, sys
mlflow.set_tracking_uri("aletheia://{project}")
mlflow.set_experiment("script")
with mlflow.start_run(run_name="from-a-script") as run:
    mlflow.log_param("lr", 0.1)
    for step in range(1000):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    print(run.info.run_id)
"""


def test_script_in_its_own_interpreter(tracking: str, tmp_path: Path) -> None:
    """A fresh Python finds the plugin by entry point; everything is flushed at the end."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(project=PROJECT))
    env = {**os.environ, "ALETHEIA_GIT_POLICY": "off"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    got = MlflowClient().get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"lr": "0.1"}
    assert len(MlflowClient().get_metric_history(run_id, "loss")) == 1000


@pytest.mark.parametrize(
    "first",
    ["aletheia.integrations.mlflow.artifacts", "aletheia.integrations.mlflow.store", "mlflow"],
)
def test_both_schemes_are_known_whatever_is_imported_first(first: str) -> None:
    """Importing a plugin before MLflow's registries still registers both schemes.

    MLflow loads plugin entry points while a registry module is first
    imported; when that happens from inside a plugin's own import, the entry
    point fails with only a warning and every ``aletheia://`` or
    ``aletheia-art://`` URI would be refused for the life of the process.
    """
    code = (
        f"import {first}\n"
        "from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository\n"
        "from mlflow.tracking._tracking_service.utils import _tracking_store_registry\n"
        "print(type(get_artifact_repository('aletheia-art://p/e/r')).__name__)\n"
        "print(_tracking_store_registry.get_store_builder('aletheia://p').__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["AletheiaArtifactRepository", "AletheiaStore"]
