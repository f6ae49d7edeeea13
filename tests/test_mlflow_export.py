"""``aletheia export mlflow``: a file store MLflow itself reads back, same data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.integrations.mlflow.export import export_run_id
from aletheia.tracking.metastore import Metastore

PROJECT = "mlflowexport"
runner = CliRunner()


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow on the emulator-backed project; reading a file store needs MLflow's opt-in."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    yield f"aletheia://{PROJECT}"
    while mlflow.active_run():
        mlflow.end_run()


def _export(dest: Path, *args: str) -> dict[str, int]:
    result = runner.invoke(app, ["export", "mlflow", str(dest), "-p", PROJECT, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_round_trip_through_mlflow_file_store(tracking: str, tmp_path: Path) -> None:
    mlflow.set_experiment("roundtrip")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "curve.csv").write_text("step,loss\n0,1.0\n")
    with mlflow.start_run(run_name="main") as run:
        mlflow.log_params({"lr": 0.05, "batch": 32})
        mlflow.set_tag("team", "nlp")
        for step in range(1500):  # two metric chunks
            mlflow.log_metric("train/loss", 2.0 - step / 1000, step=step)
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("val", 0.5, step=3)
    src = MlflowClient(tracking_uri=tracking)
    before = src.get_run(run.info.run_id)

    dest = tmp_path / "mlruns"
    summary = _export(dest, "--experiment", "roundtrip")
    assert summary["runs"] == 2
    assert summary["metric_points"] == 1501

    fs = MlflowClient(tracking_uri=str(dest))
    exp = fs.get_experiment_by_name("roundtrip")
    assert exp is not None
    after = fs.get_run(run.info.run_id)
    assert after.info.experiment_id == exp.experiment_id
    assert after.data.params == before.data.params == {"lr": "0.05", "batch": "32"}
    assert after.data.tags["team"] == "nlp"
    assert after.data.tags["mlflow.runName"] == "main"
    assert after.data.metrics == before.data.metrics
    assert after.info.status == "FINISHED"
    history = fs.get_metric_history(run.info.run_id, "train/loss")
    src_history = src.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(m.step, m.value) for m in src_history]
    assert len(history) == 1500
    assert [f.path for f in fs.list_artifacts(run.info.run_id, "plots")] == ["plots/curve.csv"]
    local = fs.download_artifacts(run.info.run_id, "plots/curve.csv", str(tmp_path / "dl"))
    assert Path(local).read_text() == "step,loss\n0,1.0\n"
    nested = fs.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert [r.info.run_id for r in nested] == [child.info.run_id]


def test_export_of_native_aletheia_runs(tracking: str, tmp_path: Path) -> None:
    ms = Metastore(PROJECT)
    exper = ms.exper("native", git_policy="off")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with exper.start_run(hyper_params={"lr": 0.1}) as run:
        run.log_metrics({"acc": 0.8}, step=1)
        run.add_artifact("model", weights)
    dest = tmp_path / "mlruns"
    _export(dest)
    fs = MlflowClient(tracking_uri=str(dest))
    exp = fs.get_experiment_by_name("native")
    assert exp is not None
    (got,) = fs.search_runs([exp.experiment_id])
    assert got.info.run_id == export_run_id(PROJECT, "native", run.id)
    assert got.data.params == {"lr": "0.1"}
    assert got.data.metrics == {"acc": 0.8}
    assert got.data.tags["aletheia.run"] == f"native/{run.id}"
    local = fs.download_artifacts(got.info.run_id, "model/w.bin", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"weights"


def test_export_of_unknown_experiment_fails_with_hint(tracking: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "mlflow", str(tmp_path), "-p", PROJECT, "-e", "nope"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "nope" in str(result.exception)


def _run_shapes(tmp_path: Path) -> dict[str, str]:
    """Runs of every shape, logged by MLflow code and by aletheia: name -> MLflow run id."""
    client = MlflowClient()
    ids: dict[str, str] = {}
    mlflow.set_experiment("shapes")
    with mlflow.start_run(run_name="bare") as run:  # no params, metrics or user tags
        ids["bare"] = run.info.run_id
    with mlflow.start_run(run_name="params-only") as run:
        mlflow.log_param("only", "param")
        ids["params-only"] = run.info.run_id
    with mlflow.start_run(run_name="metrics-only") as run:
        mlflow.log_metric("m", 1.0)
        ids["metrics-only"] = run.info.run_id
    with mlflow.start_run(run_name="with-input") as run:
        frame = pd.DataFrame({"x": [1, 2]})
        mlflow.log_input(mlflow.data.from_pandas(frame, name="train"), context="training")
        ids["with-input"] = run.info.run_id
    with mlflow.start_run(run_name="parent") as run, mlflow.start_run(nested=True) as child:
        ids["parent"], ids["child"] = run.info.run_id, child.info.run_id
    with mlflow.start_run(run_name="artifact-only") as run:
        (tmp_path / "a.txt").write_text("a")
        mlflow.log_artifact(str(tmp_path / "a.txt"))
        ids["artifact-only"] = run.info.run_id
    with mlflow.start_run(run_name="failed") as run:
        ids["failed"] = run.info.run_id
    client.set_terminated(ids["failed"], "FAILED")
    with mlflow.start_run(run_name="deleted") as run:
        ids["deleted"] = run.info.run_id
    client.delete_run(ids["deleted"])

    exper = Metastore(PROJECT).exper("native-shapes", git_policy="off")
    with exper.start_run() as bare:
        pass
    ids["native-bare"] = export_run_id(PROJECT, "native-shapes", bare.id)
    with exper.start_run(params={"opt(lr)": 0.1, "plain": 1}) as odd:
        # Names aletheia accepts and MLflow's file store does not (characters, file vs dir).
        odd.log_metrics({"acc@1": 0.5, "loss": 1.0, "loss/train": 2.0}, step=0)
    ids["native-odd"] = export_run_id(PROJECT, "native-shapes", odd.id)

    mlflow.set_experiment("gone")
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 2.0)
        ids["in-deleted-experiment"] = run.info.run_id
    client.delete_experiment(run.info.experiment_id)
    return ids


def test_every_run_shape_reads_back_through_mlflows_file_store(
    tracking: str, tmp_path: Path
) -> None:
    ids = _run_shapes(tmp_path)
    dest = tmp_path / "mlruns"
    summary = _export(dest)
    assert summary["runs"] == len(ids)

    fs = MlflowClient(tracking_uri=str(dest))
    got = {name: fs.get_run(run_id) for name, run_id in ids.items()}  # none is "not found"
    assert got["bare"].data.params == {} and got["bare"].data.metrics == {}
    assert got["params-only"].data.params == {"only": "param"}
    assert got["metrics-only"].data.metrics == {"m": 1.0}
    (given,) = got["with-input"].inputs.dataset_inputs
    assert given.dataset.name == "train"
    assert {t.key: t.value for t in given.tags} == {"mlflow.data.context": "training"}
    assert got["child"].data.tags["mlflow.parentRunId"] == ids["parent"]
    assert [f.path for f in fs.list_artifacts(ids["artifact-only"])] == ["a.txt"]
    assert got["failed"].info.status == "FAILED"
    assert got["deleted"].info.lifecycle_stage == "deleted"
    assert got["native-bare"].info.status == "FINISHED"
    odd = got["native-odd"].data
    assert odd.params == {"opt_lr_": "0.1", "plain": "1"}
    assert sorted(odd.metrics.values()) == [0.5, 1.0, 2.0]
    assert odd.metrics["loss/train"] == 2.0
    renamed = json.loads(odd.tags["aletheia.renamed_keys"])
    assert renamed["params"] == {"opt_lr_": "opt(lr)"}
    assert set(renamed["metrics"].values()) == {"acc@1", "loss"}
    for name, key in renamed["metrics"].items():
        assert [m.value for m in fs.get_metric_history(ids["native-odd"], name)] == [
            {"acc@1": 0.5, "loss": 1.0}[key]
        ]

    shapes = fs.get_experiment_by_name("shapes")
    assert shapes is not None
    listed = fs.search_runs([shapes.experiment_id], run_view_type=ViewType.ALL)
    assert len(listed) == 9
    active = fs.search_runs([shapes.experiment_id])
    assert ids["deleted"] not in {r.info.run_id for r in active}
    gone = fs.get_experiment(got["in-deleted-experiment"].info.experiment_id)
    assert gone.lifecycle_stage == "deleted"
    assert "gone" not in {e.name for e in fs.search_experiments()}
    assert "gone" in {e.name for e in fs.search_experiments(view_type=ViewType.DELETED_ONLY)}
