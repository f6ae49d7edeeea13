"""MLflow programs of a signed-in Firebase user: the rules judge every write, resuming too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from test_auth import as_user, rules_stack
from test_rules import RULES_FILE, load_rules

from aletheia.cloud import config, layout
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

#: The clause of firestore.rules that lets an ended run run again.
RESUME_CLAUSE = (
    "\n        || (after == 'running' && incoming().get('resumed_at', null) == request.time)"
)


@pytest.fixture()
def signed_in(
    rules_stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[config.Settings]:
    """MLflow acting as a fresh Firebase user (a project of its own: MLflow caches stores)."""
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(ana.user_credentials))
    monkeypatch.setenv("ALETHEIA_IDENTITY", "user")
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    yield ana
    while mlflow.active_run():
        mlflow.end_run()
    load_rules(rules_stack, RULES_FILE.read_text(encoding="utf-8"))


def _train_then_resume(project: str) -> str:
    mlflow.set_tracking_uri(f"aletheia://{project}")
    mlflow.set_experiment("resume")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0, step=0)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metric("loss", 0.5, step=1)
    MlflowClient().log_metric(run.info.run_id, "loss", 0.25, step=2)  # finished again
    return run.info.run_id


def test_a_signed_in_writer_resumes_and_logs_to_finished_runs(
    signed_in: config.Settings, db: firestore.Client
) -> None:
    run_id = _train_then_resume("rulesresume")  # a new project: it becomes ana's
    doc = db.document(layout.run("rulesresume", "resume", run_id)).get().to_dict() or {}
    assert doc["status"] == "finished"
    assert doc["summary"]["loss"]["count"] == 3
    history = MlflowClient().get_metric_history(run_id, "loss")
    assert [m.value for m in history] == [1.0, 0.5, 0.25]
    project = db.document(layout.project("rulesresume")).get().to_dict() or {}
    assert list(project["members"].values()) == ["owner"]


def test_a_user_of_no_project_role_gets_mlflows_permission_denied(
    signed_in: config.Settings,
    rules_stack: config.Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Metastore("owned", settings=signed_in).exper("e", git_policy="off")  # ana's project
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(bob.user_credentials))
    mlflow.set_tracking_uri("aletheia://owned")
    with pytest.raises(MlflowException) as err:
        mlflow.set_experiment("e")
    assert err.value.error_code == "PERMISSION_DENIED"
    assert "members add" in err.value.message


def test_without_the_resume_clause_the_rules_refuse_it(
    signed_in: config.Settings, rules_stack: config.Settings
) -> None:
    """The clause is what allows resuming (and nothing else does)."""
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(RESUME_CLAUSE) == 1
    load_rules(rules_stack, rules.replace(RESUME_CLAUSE, ""))
    with pytest.raises(gexc.PermissionDenied) as err:
        _train_then_resume("rulesnoresume")
    assert "'update'" in str(err.value)  # the run document's update rule said no
