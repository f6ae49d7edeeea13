"""``aletheia export mlflow``: a file store MLflow itself reads back, same data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from aletheia import config
from aletheia.cli import app
from aletheia.export_mlflow import export_run_id
from aletheia.metastore import Metastore

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
