"""A signed-in Firebase user logs and loads MLflow models: the rules judge every write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from sklearn.linear_model import LogisticRegression
from test_auth import as_user, rules_stack
from test_rules import RULES_FILE, load_rules

from aletheia.cloud import config, layout

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
Y = np.array([0, 1, 0, 1])
#: The block of firestore.rules that lets members write logged models.
LOGGED_MODELS_RULE = """      match /LoggedModels/{m} {
        allow read: if canRead(p);
        allow create, update: if canWrite(p) && inProject(p);
        allow delete: if isOwner(p);
      }
"""


@pytest.fixture()
def signed_in(
    rules_stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[config.Settings]:
    """MLflow acting as a fresh Firebase user."""
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(ana.user_credentials))
    monkeypatch.setenv("ALETHEIA_IDENTITY", "user")
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")  # see test_mlflow_models
    yield ana
    while mlflow.active_run():
        mlflow.end_run()
    load_rules(rules_stack, RULES_FILE.read_text(encoding="utf-8"))


def _log_and_load(project: str) -> str:
    mlflow.set_tracking_uri(f"aletheia://{project}")
    mlflow.set_experiment("models")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, Y), name="clf")
    assert list(mlflow.sklearn.load_model(info.model_uri).predict(X)) == [0, 1, 0, 1]
    return info.model_id


def test_a_signed_in_writer_logs_and_loads_a_model(
    signed_in: config.Settings, db: firestore.Client
) -> None:
    model_id = _log_and_load("rulesmodels")
    doc = db.document(layout.logged_model("rulesmodels", model_id)).get().to_dict() or {}
    assert doc["status"] == "READY"
    assert doc["artifact"]["version"] == "v1"


def test_without_the_logged_models_rule_the_rules_refuse_it(
    signed_in: config.Settings, rules_stack: config.Settings
) -> None:
    """The block is what lets members write logged models (and nothing else does)."""
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(LOGGED_MODELS_RULE) == 1
    load_rules(rules_stack, rules.replace(LOGGED_MODELS_RULE, ""))
    with pytest.raises(gexc.PermissionDenied):
        _log_and_load("rulesnomodels")
