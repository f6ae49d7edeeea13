"""MLflow 3 logged models on ``aletheia://``, compared with MLflow's own file store.

The same unchanged MLflow program runs against a file store and against
aletheia; what each store then answers (logged models, their params, tags,
metrics and files, runs and their outputs, loading back through ``runs:/`` and
``models:/``) must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

from aletheia.cloud import config, layout
from aletheia.tracking.metastore import Metastore

from helpers import lose_a_commits_answer
from mlflow_compare import assert_same, describe, run_on_both

PROJECT = "mlflowmodels"
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])
Y = np.array([0, 1, 0, 1, 0, 1])


@pytest.fixture()
def uris(
    stack: config.Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(MLflow file store, aletheia project) URIs; git capture off for speed."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    # log_model infers pip requirements in a subprocess that imports sklearn (seconds per
    # model, nothing to do with the store): both stores fall back to the flavor's defaults.
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    yield (tmp_path / "mlruns").as_uri(), f"aletheia://{PROJECT}"


def _error(call: Any) -> str:
    with pytest.raises(MlflowException) as info:
        call()
    return str(info.value.error_code)


def _predict(uri: str) -> list[int]:
    return [int(v) for v in mlflow.sklearn.load_model(uri).predict(X)]


def logged_models_program() -> dict[str, Any]:
    """An ordinary MLflow 3 program: log, search, finalize and load models."""
    exp_id = mlflow.set_experiment("models").experiment_id
    client = MlflowClient()
    clf = LogisticRegression().fit(X, Y)
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("acc", 0.75)
        info = mlflow.sklearn.log_model(
            clf, name="clf", params={"solver": "lbfgs"}, tags={"stage": "dev"}, model_type="clf"
        )
        mlflow.log_metric("val_acc", 0.25, step=0, model_id=info.model_id)
        mlflow.log_metric("val_acc", 0.5, step=1, model_id=info.model_id)
    run_id = run.info.run_id
    outside = mlflow.sklearn.log_model(clf, name="outside")  # no run: a model of its own
    with mlflow.start_run(run_name="evaluate"):  # uses a dataset and the logged model
        frame = pd.DataFrame(X, columns=["a", "b"]).assign(y=Y)
        dataset = mlflow.data.from_pandas(frame, name="holdout", targets="y")
        mlflow.log_input(dataset, context="eval", tags={"split": "test"})
        mlflow.log_input(model=LoggedModelInput(info.model_id))

    ext = client.create_logged_model(
        exp_id, name="external", params={"k": "1"}, tags={"t": "x"}, model_type="agent"
    )
    pending = str(client.get_logged_model(ext.model_id).status)
    client.log_model_params(ext.model_id, {"k2": "2"})
    client.set_logged_model_tags(ext.model_id, {"a": "b", "drop": "me"})
    client.delete_logged_model_tag(ext.model_id, "drop")
    ready = str(client.finalize_logged_model(ext.model_id, LoggedModelStatus.READY).status)
    gone = client.create_logged_model(exp_id, name="gone")
    client.delete_logged_model(gone.model_id)

    def names(**kwargs: Any) -> list[str]:
        return [m.name for m in client.search_logged_models([exp_id], **kwargs)]

    # Listed before anything is loaded: loading a models:/ URI from MLflow's file store
    # writes a "registered_model_meta" file into the store's own copy of the model.
    run_listing = [f.path for f in mlflow.artifacts.list_artifacts(f"runs:/{run_id}/clf")]
    model_listing = sorted(f.path for f in client.list_logged_model_artifacts(info.model_id))
    return {
        "run_listing": run_listing,
        "model_listing": model_listing,
        "by_run_uri": _predict(f"runs:/{run_id}/clf"),
        "by_model_uri": _predict(info.model_uri),
        "pyfunc": [int(v) for v in mlflow.pyfunc.load_model(f"models:/{info.model_id}").predict(X)],
        "outside": _predict(outside.model_uri),
        "store": describe(["models"], load=_predict),
        "statuses": (pending, ready),
        "searches": {
            "all": sorted(names()),
            "by_name": names(filter_string="name = 'clf'"),
            "by_param": names(filter_string="params.solver = 'lbfgs'"),
            "by_tag": names(filter_string="tags.a = 'b'"),
            "by_metric": names(filter_string="metrics.val_acc > 0.1"),
            "ordered": names(order_by=[{"field_name": "name", "ascending": False}]),
            "by_metric_order": names(order_by=[{"field_name": "metrics.val_acc"}]),
        },
        "errors": {
            "deleted": _error(lambda: client.get_logged_model(gone.model_id)),
            "unknown": _error(lambda: client.get_logged_model("m-" + "0" * 32)),
            "bad_name": _error(lambda: client.create_logged_model(exp_id, name="a/b")),
            "no_tag": _error(lambda: client.delete_logged_model_tag(ext.model_id, "nope")),
        },
    }


def test_logged_models_answer_as_on_mlflows_file_store(
    uris: tuple[str, str], db: firestore.Client
) -> None:
    on_file, on_aletheia = run_on_both(logged_models_program, *uris)
    assert_same(on_aletheia, on_file)
    # And the answers are the ones the program expects, not just equal.
    assert on_aletheia["by_run_uri"] == on_aletheia["by_model_uri"] == [0, 1, 0, 1, 0, 1]
    assert on_aletheia["searches"]["all"] == ["clf", "external", "outside"]
    assert on_aletheia["statuses"] == ("PENDING", "READY")
    clf = next(m for m in on_aletheia["store"]["models"]["models"] if m["name"] == "clf")
    assert ("val_acc", 0.5, 1, None) in clf["metrics"]  # one point per metric: the latest
    assert "MLmodel" in clf["files"]
    train, evaluate = on_aletheia["store"]["models"]["runs"]
    assert train["outputs"] == [("clf", 0)]
    assert train["status"] == "FINISHED"
    assert evaluate["model_inputs"] == ["clf"]
    assert [(d[0], d[3]) for d in evaluate["datasets"]] == [
        ("holdout", (("mlflow.data.context", "eval"), ("split", "test")))
    ]


def test_a_logged_models_files_are_a_versioned_aletheia_artifact(
    uris: tuple[str, str], db: firestore.Client
) -> None:
    mlflow.set_tracking_uri(uris[1])
    mlflow.set_experiment("models")
    clf = LogisticRegression().fit(X, Y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(clf, name="clf")
    doc = db.document(layout.logged_model(PROJECT, info.model_id)).get().to_dict()
    assert doc["artifact"] == {"experiment": "models", "name": info.model_id, "version": "v1"}
    art = Metastore(PROJECT).artifacts.get("models", info.model_id)
    assert art.run == run.info.run_id
    assert "MLmodel" in {f.path for f in art.files}

    # Adding a file makes the next version, which still holds the whole model.
    extra = Path(mlflow.artifacts.download_artifacts(info.model_uri)) / "NOTE.txt"
    extra.write_text("calibrated")
    MlflowClient().log_model_artifact(info.model_id, str(extra))
    art2 = Metastore(PROJECT).artifacts.get("models", info.model_id)
    assert art2.version == "v2"
    assert {f.path for f in art2.files} == {f.path for f in art.files} | {"NOTE.txt"}
    assert _predict(f"models:/{info.model_id}") == [0, 1, 0, 1, 0, 1]


def test_logged_models_export_to_a_file_store_mlflow_reads(
    uris: tuple[str, str], tmp_path: Path
) -> None:
    from aletheia.integrations.mlflow.export import export_mlflow

    mlflow.set_tracking_uri(uris[1])
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.75)
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="clf")
    ms = Metastore(PROJECT)
    dest = tmp_path / "export"
    summary = export_mlflow(ms.db, ms.blobstore, PROJECT, dest)
    assert summary.logged_models == 1
    assert not (dest / "models" / "meta.yaml").exists()  # the file store's registry folder

    mlflow.set_tracking_uri(dest.as_uri())
    client = MlflowClient()
    (model,) = client.search_logged_models([client.get_experiment_by_name("models").experiment_id])
    assert (model.model_id, model.name, model.source_run_id) == (
        info.model_id,
        "clf",
        run.info.run_id,
    )
    assert str(model.status) == "READY"
    assert [(m.key, m.value) for m in model.metrics] == [("acc", 0.75)]
    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]
    assert _predict(f"models:/{info.model_id}") == [0, 1, 0, 1, 0, 1]
    assert _predict(f"runs:/{run.info.run_id}/clf") == [0, 1, 0, 1, 0, 1]
    # The files are the model's, not duplicated among the run's artifacts.
    assert client.list_artifacts(run.info.run_id) == []


def test_a_logged_model_whose_create_answer_was_lost_is_created_once(
    uris: tuple[str, str], monkeypatch: pytest.MonkeyPatch, db: firestore.Client
) -> None:
    # The create lands and its answer is lost: the client library sends it again, which
    # found the model existing (Conflict), and MLflow's call failed for a model it made.
    from mlflow.tracking._tracking_service.utils import _get_store

    mlflow.set_tracking_uri(uris[1])
    client = MlflowClient()
    exp_id = client.create_experiment("lost-answers")
    lost = lose_a_commits_answer(
        _get_store().db, monkeypatch, lambda path: "/LoggedModels/" in path
    )
    model = client.create_logged_model(exp_id, name="once")
    assert lost
    assert model.name == "once" and lost[0].endswith(f"/LoggedModels/{model.model_id}")
    found = client.search_logged_models([exp_id])
    assert [m.model_id for m in found] == [model.model_id]
