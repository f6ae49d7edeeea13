"""``mlflow.sklearn.autolog()`` with its defaults on ``aletheia://``, compared with MLflow's
own file store: training metrics, the post-training score, the model, GridSearchCV
parent and child runs, dataset inputs, statuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV

from aletheia.cloud import config

from mlflow_compare import assert_same, describe, run_on_both

PROJECT = "mlflowautolog"
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
    # Autologging is global to the process: later tests' fits must not log.
    mlflow.sklearn.autolog(disable=True)


def _predict(uri: str) -> list[float]:
    return [round(float(v), 6) for v in mlflow.sklearn.load_model(uri).predict(X)]


def autolog_program() -> dict[str, Any]:
    """What people write: autolog on, fit (inside and outside runs), score, search."""
    mlflow.set_experiment("auto")
    mlflow.sklearn.autolog()
    clf = LogisticRegression().fit(X, Y)  # no run open: autolog starts and ends one
    score = clf.score(X, Y)  # the post-training metric, logged to that run
    with mlflow.start_run(run_name="search"):
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2).fit(X, Y)
    mlflow.sklearn.autolog(log_models=False)
    LinearRegression().fit(X, Y.astype(float))
    return {"score": round(score, 6), "store": describe(["auto"], load=_predict)}


def _model_param_names(described: dict[str, Any]) -> dict[str, Any]:
    """Logged models' params as names only.

    ``Model.log`` copies the run's params onto a new model while autologging's
    client is still writing them from its own thread, and MLflow's file store
    can then read a param file not yet filled (``''``): the values race on the
    reference side. They are the run's params, compared in full with the runs.
    """
    for model in described["store"]["auto"]["models"]:
        model["params"] = sorted(model["params"])
    return described


def test_sklearn_autolog_logs_what_it_logs_on_mlflows_file_store(uris: tuple[str, str]) -> None:
    on_file, on_aletheia = run_on_both(autolog_program, *uris)
    assert_same(_model_param_names(on_aletheia), _model_param_names(on_file))

    # And what it logs is what autolog is for, not merely the same.
    runs = {r["label"]: r for r in on_aletheia["store"]["auto"]["runs"]}
    assert len(runs) == 5  # fit, search + two children, log_models=False fit
    assert {r["status"] for r in runs.values()} == {"FINISHED"}
    fit = runs["run0"]
    assert "training_accuracy_score" in fit["metrics"]
    assert any(k.startswith("LogisticRegression_score") for k in fit["metrics"])  # clf.score
    assert fit["outputs"] == [("model", 0)]
    assert fit["datasets"] and fit["datasets"][0][3] == (("mlflow.data.context", "train"),)
    children = [label for label in runs if label.startswith("run1/")]
    assert len(children) == 2
    assert "mean_test_score" in runs[children[0]]["metrics"]
    assert "best_cv_score" in runs["run1"]["metrics"]
    assert runs["run2"]["outputs"] == []  # log_models=False
    models = on_aletheia["store"]["auto"]["models"]
    assert sorted((m["run"], m["name"]) for m in models) == [
        ("run0", "model"),
        ("run1", "best_estimator"),
        ("run1", "model"),
    ]
    assert all(m["status"] == "READY" for m in models)
    assert "training_accuracy_score" in {m[0] for m in models[0]["metrics"]}
