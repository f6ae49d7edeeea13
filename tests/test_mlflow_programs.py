"""Ordinary MLflow programs, unchanged, on ``aletheia://``: tags, artifacts, tables, resuming."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.tracking._tracking_service.utils import _get_store

from aletheia.cloud import config, layout
from aletheia.integrations.mlflow.store import AletheiaStore

PROJECT = "mlflowprograms"


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at the emulator-backed project (git capture off for speed)."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    uri = f"aletheia://{PROJECT}"
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def _user_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.")}


# ------------------------------------------------------------------ tags and params


def test_every_tag_and_param_of_an_open_run_is_kept(tracking: str, db: firestore.Client) -> None:
    mlflow.set_experiment("tags")
    with mlflow.start_run() as run:
        mlflow.set_tag("a", "1")
        mlflow.set_tag("b", "2")
        mlflow.set_tag("c", "3")
        mlflow.log_param("p1", 1)
        mlflow.log_param("p2", 2)
        mlflow.log_params({"p3": 3})
        live = mlflow.get_run(run.info.run_id).data
        assert _user_tags(live.tags) == {"a": "1", "b": "2", "c": "3"}
        assert live.params == {"p1": "1", "p2": "2", "p3": "3"}
        mlflow.set_tag("d", "4")
        mlflow.delete_tag("d")  # right after set_tag, before any flush
        mlflow.set_tag("e", "5")
        MlflowClient().delete_tag(run.info.run_id, "a")
    done = mlflow.get_run(run.info.run_id).data
    assert _user_tags(done.tags) == {"b": "2", "c": "3", "e": "5"}
    doc = db.document(layout.run(PROJECT, "tags", run.info.run_id)).get().to_dict()
    assert _user_tags(doc["mlflow_tags"]) == {"b": "2", "c": "3", "e": "5"}
    assert doc["params"] == {"p1": "1", "p2": "2", "p3": "3"}


# ------------------------------------------------------------------ artifacts and tables


def _tree(root: Path) -> Path:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a")
    (root / "dir" / "sub" / "b.txt").write_text("bb")
    (root / "top.txt").write_text("top")
    return root


def test_listing_artifacts_by_directory(tracking: str, tmp_path: Path) -> None:
    mlflow.set_experiment("listing")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(_tree(tmp_path / "src")))
    run_id = run.info.run_id
    client = MlflowClient()

    listed = mlflow.artifacts.list_artifacts(f"runs:/{run_id}/dir")
    assert [(f.path, f.is_dir) for f in listed] == [("dir/a.txt", False), ("dir/sub", True)]
    sub = client.list_artifacts(run_id, "dir/sub")
    assert [(f.path, f.file_size) for f in sub] == [("dir/sub/b.txt", 2)]
    assert [f.path for f in client.list_artifacts(run_id)] == ["dir", "top.txt"]
    assert client.list_artifacts(run_id, "dir/a.txt") == []  # a file, as MLflow answers
    for spelling in ("dir/", "./dir"):  # listed under the normal name, as MLflow does
        assert [f.path for f in client.list_artifacts(run_id, spelling)] == ["dir/a.txt", "dir/sub"]
    assert mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="dir/sub")[0].path == (
        "dir/sub/b.txt"
    )
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/dir", dst_path=str(tmp_path / "d"))
    assert (Path(local) / "sub" / "b.txt").read_text() == "bb"


def test_log_table_appends_and_loads(tracking: str) -> None:
    mlflow.set_experiment("tables")
    with mlflow.start_run() as run:
        mlflow.log_table({"x": [1, 2], "y": ["a", "b"]}, artifact_file="eval/table.json")
        mlflow.log_table(pd.DataFrame({"x": [3], "y": ["c"]}), artifact_file="eval/table.json")
    table = mlflow.load_table("eval/table.json", run_ids=[run.info.run_id])
    assert table["x"].tolist() == [1, 2, 3]
    assert table["y"].tolist() == ["a", "b", "c"]
    assert "eval/table.json" in mlflow.get_run(run.info.run_id).data.tags["mlflow.loggedArtifacts"]


# ------------------------------------------------------------------ the rest of AbstractStore


def test_logged_models_and_traces_start_empty_not_missing(tracking: str) -> None:
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    exp_id = run.info.experiment_id
    assert mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list") == []
    assert MlflowClient().search_logged_models([exp_id], filter_string="name = 'model'") == []
    assert mlflow.search_traces(locations=[exp_id], return_type="list") == []
    with pytest.raises(MlflowException) as missing:
        mlflow.get_logged_model("m-0123456789abcdef")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    external = mlflow.create_external_model(name="model")  # logged models are kept
    assert str(external.status) == "READY"
    assert [m.name for m in MlflowClient().search_logged_models([exp_id])] == ["model"]


def test_experiment_tags_can_be_deleted(tracking: str) -> None:
    client = MlflowClient()
    exp_id = client.create_experiment("exp-tags", tags={"owner": "ana", "stage": "dev"})
    client.delete_experiment_tag(exp_id, "stage")
    assert client.get_experiment(exp_id).tags == {"owner": "ana"}
    with pytest.raises(MlflowException) as err:
        client.delete_experiment_tag(exp_id, "stage")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def _dummy_args(fn: object) -> dict[str, object]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # type: ignore[arg-type]
    return {
        p.name: None
        for p in params
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def test_no_store_method_raises_not_implemented(tracking: str) -> None:
    """Every method MLflow may call works or fails with MLflow's own error, never
    NotImplementedError (which MLflow's callers do not expect from a store)."""
    store = _get_store()
    assert isinstance(store, AletheiaStore)
    checked = 0
    for name, fn in inspect.getmembers(AbstractStore, inspect.isfunction):
        if name.startswith("__") or "async" in name:  # MLflow's own queue, not the store's
            continue
        if getattr(AletheiaStore, name).__module__.startswith("aletheia."):
            continue  # written for aletheia (other tests call it with real arguments)
        checked += 1
        try:
            getattr(store, name)(**_dummy_args(fn))
        except NotImplementedError as exc:
            pytest.fail(f"{name} raises NotImplementedError: {exc!r}")
        except Exception as exc:  # any other error is fine here: arguments are dummies
            if isinstance(exc, MlflowException) and exc.error_code == "NOT_IMPLEMENTED":
                pytest.fail(f"{name} raises MLflow's NOT_IMPLEMENTED, not FEATURE_DISABLED")
    assert checked > 100


# ------------------------------------------------------------------ finished runs


def test_resume_a_finished_run_and_log_to_it(tracking: str, db: firestore.Client) -> None:
    mlflow.set_experiment("resume")
    with mlflow.start_run() as run:
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_param("lr", 0.1)
    run_id = run.info.run_id
    assert mlflow.get_run(run_id).info.status == "FINISHED"

    with mlflow.start_run(run_id=run_id) as resumed:
        assert mlflow.get_run(run_id).info.status == "RUNNING"
        mlflow.log_metric("loss", 0.2, step=3)
        mlflow.log_metrics({"acc": 0.9}, step=3)
        mlflow.log_param("epochs", 4)
        mlflow.set_tag("resumed", "yes")
        assert resumed.info.run_id == run_id
    got = mlflow.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"lr": "0.1", "epochs": "4"}
    assert got.data.metrics == {"loss": pytest.approx(0.2), "acc": pytest.approx(0.9)}
    assert got.data.tags["resumed"] == "yes"
    history = MlflowClient().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.2)]
    doc = db.document(layout.run(PROJECT, "resume", run_id)).get().to_dict()
    assert doc["summary"]["loss"]["count"] == 4
    assert doc["summary"]["loss"]["min"] == pytest.approx(0.2)
    result = db.document(layout.result(PROJECT, "resume", run_id)).get().to_dict()
    assert result["metrics"] == {"loss": pytest.approx(0.2), "acc": pytest.approx(0.9)}
    assert result["status"] == "finished"


def test_client_logs_to_a_finished_run(tracking: str) -> None:
    client = MlflowClient()
    exp_id = client.create_experiment("late")
    run_id = client.create_run(exp_id).info.run_id
    client.log_metric(run_id, "m", 1.0, step=0)
    client.set_terminated(run_id)
    client.log_metric(run_id, "m", 2.0, step=1)  # after the end: MLflow records it
    client.log_batch(
        run_id,
        metrics=[Metric("m", 3.0, int(time.time() * 1000), 2)],
        params=[],
        tags=[],
    )
    client.log_param(run_id, "late_param", "x")
    with pytest.raises(MlflowException, match="Changing param values"):
        client.log_param(run_id, "late_param", "y")
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"m": 3.0}
    assert got.data.params == {"late_param": "x"}
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0, 2.0, 3.0]


def test_late_points_continue_a_full_chunk(tracking: str) -> None:
    """Points logged after the end land after the existing ones, across chunk borders."""
    mlflow.set_experiment("late-chunks")
    with mlflow.start_run() as run:
        for step in range(1500):
            mlflow.log_metric("loss", float(step), step=step)
    client = MlflowClient()
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("loss", float(s), 0, s) for s in range(1500, 2100)],
    )
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(2100))
    assert client.get_run(run.info.run_id).data.metrics["loss"] == 2099.0


RESUME_SCRIPT = """
import mlflow, sys
mlflow.set_tracking_uri("aletheia://{project}")
with mlflow.start_run(run_id=sys.argv[1]):
    mlflow.log_metric("test_acc", 0.77)
    mlflow.log_param("evaluated", "true")
"""


def test_resume_from_another_process(tracking: str, tmp_path: Path) -> None:
    mlflow.set_experiment("resume-elsewhere")
    with mlflow.start_run() as run:
        mlflow.log_metric("train_acc", 0.8)
    script = tmp_path / "evaluate.py"
    script.write_text(RESUME_SCRIPT.format(project=PROJECT))
    env = {**os.environ, "ALETHEIA_GIT_POLICY": "off"}
    done = subprocess.run(
        [sys.executable, str(script), run.info.run_id],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"train_acc": pytest.approx(0.8), "test_acc": pytest.approx(0.77)}
    assert got.data.params == {"evaluated": "true"}


HOLDING_SCRIPT = """
import mlflow, sys
mlflow.set_tracking_uri("aletheia://{project}")
mlflow.set_experiment("held")
with mlflow.start_run() as run:
    mlflow.log_metric("m", 1.0)
    print(run.info.run_id, flush=True)
    sys.stdin.readline()  # hold the run open until the test says so
"""


def test_a_run_another_process_is_logging_is_refused(tracking: str, tmp_path: Path) -> None:
    """Its buffered writer owns the series: a point appended from here could be overwritten."""
    script = tmp_path / "hold.py"
    script.write_text(HOLDING_SCRIPT.format(project=PROJECT))
    env = {**os.environ, "ALETHEIA_GIT_POLICY": "off"}
    with subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        client = MlflowClient()
        with pytest.raises(MlflowException) as err:
            client.log_metric(run_id, "m", 2.0)
        assert err.value.error_code == "INVALID_STATE"
        # Attaching to the running run (as MLflow allows): params and tags merge.
        mlflow.set_experiment("held")
        mlflow.start_run(run_id=run_id)
        mlflow.set_tag("reviewed", "yes")
        mlflow.log_param("attached", "true")
        with pytest.raises(MlflowException):
            mlflow.log_metric("m", 2.0)
        assert client.get_run(run_id).info.status == "RUNNING"  # still the holder's run
        mlflow.end_run()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0
    client.log_metric(run_id, "m", 3.0, step=1)  # ended: now it is MLflow's late logging
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0, 3.0]
    assert client.get_run(run_id).data.tags["reviewed"] == "yes"
    assert client.get_run(run_id).data.params == {"attached": "true"}


def test_dataset_inputs_are_recorded(tracking: str) -> None:
    mlflow.set_experiment("inputs")
    train = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2], "y": [0, 1]}), name="train")
    test = mlflow.data.from_pandas(pd.DataFrame({"x": [3]}), name="test")
    with mlflow.start_run() as run:
        mlflow.log_input(train, context="training")
        mlflow.log_input(train, context="training", tags={"fold": "1"})  # the same dataset again
    MlflowClient().log_inputs(  # after the end, as MLflow allows
        run.info.run_id,
        datasets=[mlflow.entities.DatasetInput(test._to_mlflow_entity())],
    )
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
        ("test", test.digest),
        ("train", train.digest),
    ]
    tags = {t.key: t.value for t in inputs[1].tags}
    assert tags == {"mlflow.data.context": "training", "fold": "1"}
    assert inputs[1].dataset.schema == train._to_mlflow_entity().schema
    (found,) = mlflow.search_runs(experiment_names=["inputs"], output_format="list")
    assert len(found.inputs.dataset_inputs) == 2


def test_contradicting_run_names_are_refused_like_mlflow(tracking: str) -> None:
    client = MlflowClient()
    exp_id = client.create_experiment("names")
    with pytest.raises(MlflowException) as err:
        client.create_run(exp_id, run_name="a", tags={"mlflow.runName": "b"})
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.search_runs([exp_id]) == []
    run = client.create_run(exp_id, run_name="a", tags={"mlflow.runName": "a"})
    assert client.get_run(run.info.run_id).info.run_name == "a"
    client.set_terminated(run.info.run_id)
