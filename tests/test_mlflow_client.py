"""``MlflowClient`` calls on the aletheia store: experiments, runs, tags, lifecycle, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import mlflow
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from aletheia.cloud import config, layout

PROJECT = "mlflowclient"


@pytest.fixture()
def client(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """A client on the emulator-backed project (git capture off for speed)."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    yield MlflowClient()
    while mlflow.active_run():
        mlflow.end_run()


def test_client_run_lifecycle_and_ordering(client: MlflowClient, db: firestore.Client) -> None:
    exp_id = client.create_experiment("client exp", tags={"owner": "ana"})
    assert client.get_experiment(exp_id).tags == {"owner": "ana"}
    with pytest.raises(MlflowException) as dup:
        client.create_experiment("client exp")
    assert dup.value.error_code == "RESOURCE_ALREADY_EXISTS"
    ids = []
    for i, score in enumerate((0.3, 0.9, 0.6)):
        run = client.create_run(exp_id, run_name=f"r{i}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("score", score, now, 0), Metric("score", score + 0.01, now, 1)],
            params=[Param("i", str(i))],
            tags=[RunTag("kind", "sweep")],
        )
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    ranked = client.search_runs([exp_id], order_by=["metrics.score DESC"])
    assert [r.info.run_id for r in ranked] == [ids[1], ids[2], ids[0]]
    assert ranked[0].data.metrics["score"] == pytest.approx(0.91)
    assert [m.step for m in client.get_metric_history(ids[0], "score")] == [0, 1]

    client.set_tag(ids[0], "note", "late tag on a finished run")
    client.delete_tag(ids[0], "kind")
    tags = client.get_run(ids[0]).data.tags
    assert tags["note"] == "late tag on a finished run"
    assert "kind" not in tags
    client.delete_run(ids[0])
    assert {r.info.run_id for r in client.search_runs([exp_id])} == {ids[1], ids[2]}
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids[0]]
    client.restore_run(ids[0])
    assert len(client.search_runs([exp_id])) == 3

    doc = db.document(layout.run(PROJECT, "client exp", ids[1])).get().to_dict()
    assert doc["status"] == "finished"
    assert doc["run_name"] == "r1"
    assert doc["summary"]["score"]["count"] == 2


def test_default_experiment_and_unsupported_calls(client: MlflowClient) -> None:
    mlflow.set_experiment(experiment_id="0")  # MLflow's default experiment
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    assert run.info.experiment_id == "0"
    assert client.get_experiment("0").name == "Default"
    names = {e.name for e in client.search_experiments()}
    assert "Default" in names
    with pytest.raises(MlflowException) as err:
        client.rename_experiment("0", "renamed")
    assert err.value.error_code == "FEATURE_DISABLED"
    client.log_metric(run.info.run_id, "m", 2.0, step=1)  # the run has ended: MLflow records it
    assert [m.value for m in client.get_metric_history(run.info.run_id, "m")] == [1.0, 2.0]
