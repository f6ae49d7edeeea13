"""Values that pass a call and would then poison a run are refused at that call.

Each case is written as a user would: a training script logging through
``Metastore``, or an MLflow script through ``aletheia://``. The value
Firestore would refuse (a step or int beyond int64, a reserved ``__x__``
name, a document id over 1,500 bytes, a document over 1 MiB, a number no
double can hold) must raise a clear error at the call that carries it; the
run goes on, everything logged before and after arrives, and the run ends
``finished`` with Firestore holding all of it.
"""

from __future__ import annotations

import fractions
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import pandas
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _get_store

from aletheia.cloud import config, layout
from aletheia.data.datasets import DatasetStore
from aletheia.errors import ValidationError
from aletheia.tracking import journal
from aletheia.tracking.metastore import Metastore, Run

PROJECT = "poisoned"
KB = 1000

# (case, the call with the bad value, what the error says)
METASTORE_CASES: list[tuple[str, Callable[[Run], Any], str]] = [
    ("step 2**70", lambda r: r.add_metric("loss", 0.5, step=2**70), "64-bit"),
    ("step 2**70 in log_metrics", lambda r: r.log_metrics({"acc": 0.9}, step=2**70), "64-bit"),
    ("metric key __name__", lambda r: r.add_metric("__name__", 0.5), "reserved"),
    ("metric key __name__ in a batch", lambda r: r.log_metrics({"acc": 1, "__x__": 2}), "reserved"),
    ("250 emoji", lambda r: r.add_metric("\U0001f600" * 250, 0.5), "document id"),
    ("250 CJK", lambda r: r.add_metric("中" * 250, 0.5), "document id"),
    ("int param 2**70", lambda r: r.set_params({"seed": 2**70}), "64-bit"),
    ("nested int param 2**70", lambda r: r.set_params({"seeds": [1, {"s": 2**70}]}), "64-bit"),
    ("int hyper-param 2**70", lambda r: r.set_hyper_params({"n": -(2**70)}), "64-bit"),
    ("model info 2**70", lambda r: r.set_model("mlp", size=2**70), "64-bit"),
    ("fold 2**70", lambda r: r.set_fold(2**70), "64-bit"),
    ("metric value 10**400", lambda r: r.add_metric("loss", 10**400), "64-bit float"),
    ("metric value 10**400 in a batch", lambda r: r.log_metrics({"a": 1, "b": 10**400}), "float"),
    (
        "param 10**400 as a fraction",
        lambda r: r.set_params({"q": fractions.Fraction(10**400)}),
        "float",
    ),
    (
        "params and hyper_params together over 1 MiB",
        lambda r: (r.set_params({"a": "p" * 500 * KB}), r.set_hyper_params({"b": "h" * 500 * KB})),
        "run document",
    ),
]


@pytest.mark.parametrize("case,call,says", METASTORE_CASES, ids=[c[0] for c in METASTORE_CASES])
def test_a_poisoning_value_is_refused_at_the_call_and_the_run_goes_on(
    stack: config.Settings,
    db: firestore.Client,
    caplog: pytest.LogCaptureFixture,
    case: str,
    call: Callable[[Run], Any],
    says: str,
) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    run = ms.exper("train", git_policy="off").start_run(params={"lr": 0.1})
    run.add_metric("loss", 1.0, step=0)
    with pytest.raises(ValidationError, match=says) as refused:
        call(run)
    assert refused.value.hint  # says what to do
    run.add_metric("loss", 0.25, step=1)
    assert run.finish()  # Firestore holds everything
    doc = db.document(layout.run(PROJECT, "train", run.id)).get().to_dict() or {}
    assert doc["status"] == "finished"
    assert doc["summary"]["loss"]["count"] == 2 and set(doc["summary"]) == {"loss"}
    assert doc["params"]["lr"] == 0.1
    assert db.document(layout.result(PROJECT, "train", run.id)).get().get("status") == "finished"
    state = journal.read(run.journal.path)
    assert state.complete and state.synced
    assert ms.store.stats.rejected == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


START_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("params 2**70", {"params": {"seed": 2**70}}, "64-bit"),
    ("hyper_params nested 2**70", {"hyper_params": {"grid": [[1], {"n": 2**70}]}}, "64-bit"),
    ("fold 2**70", {"fold": 2**70}, "64-bit"),
    ("model 2**70", {"model": {"name": "m", "size": 2**70}}, "64-bit"),
    ("reserved param key", {"params": {"__name__": 1}}, "reserved"),
    ("param 10**400", {"params": {"q": fractions.Fraction(10**400)}}, "float"),
    (
        "params and hyper_params together over 1 MiB",
        {"params": {"a": "p" * 500 * KB}, "hyper_params": {"b": "h" * 500 * KB}},
        "run document",
    ),
]


@pytest.mark.parametrize("case,fields,says", START_CASES, ids=[c[0] for c in START_CASES])
def test_start_run_refuses_a_poisoning_field_before_writing_anything(
    stack: config.Settings, db: firestore.Client, case: str, fields: dict[str, Any], says: str
) -> None:
    exper = Metastore(PROJECT).exper("train", git_policy="off")
    with pytest.raises(ValidationError, match=says):
        exper.start_run(**fields)
    assert list(db.collection(layout.runs(PROJECT, "train")).stream()) == []
    assert exper.active_run is None


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    mlflow.set_experiment("mlflow-train")
    yield
    while mlflow.active_run():
        mlflow.end_run()


def _tags(n: int, size: int) -> dict[str, str]:
    return {f"note{i}": "t" * size for i in range(n)}


def _late_param() -> None:
    """Log to a run after it ended (MLflow's client may do that)."""
    client = MlflowClient()
    ended = client.create_run(mlflow.active_run().info.experiment_id)
    client.set_terminated(ended.info.run_id)
    client.log_param(ended.info.run_id, "__name__", "x")


def _end_time_overflow() -> None:
    client = MlflowClient()
    other = client.create_run(mlflow.active_run().info.experiment_id).info.run_id
    try:
        client.set_terminated(other, end_time=2**70)
    finally:
        client.set_terminated(other)


MLFLOW_CASES: list[tuple[str, Callable[[], Any]]] = [
    ("step 2**70", lambda: mlflow.log_metric("acc", 0.5, step=2**70)),
    ("metric key __name__", lambda: mlflow.log_metric("__name__", 0.5)),
    ("250 emoji", lambda: mlflow.log_metric("\U0001f600" * 250, 0.5)),
    ("250 CJK", lambda: mlflow.log_metric("中" * 250, 0.5)),
    ("a batch with one bad key", lambda: mlflow.log_metrics({"acc": 0.5, "__x__": 1.0})),
    ("param key __name__", lambda: mlflow.log_param("__name__", 1)),
    ("tag key __name__", lambda: mlflow.set_tag("__name__", "x")),
    (
        "timestamp 2**70 ms",
        lambda: MlflowClient().log_metric(mlflow.active_run().info.run_id, "acc", 1.0, 2**70),
    ),
    (
        "params over 512 KiB",
        lambda: [
            mlflow.log_params({f"p{j}_{i}": "x" * 6000 for i in range(100)}) for j in range(3)
        ],
    ),
    (
        "params and tags together over 1 MiB",
        lambda: (
            [mlflow.log_params({f"p{j}_{i}": "x" * 6000 for i in range(80)}) for j in range(1)],
            mlflow.set_tags(_tags(80, 5000)),
            mlflow.set_tags({f"more{i}": "y" * 5000 for i in range(80)}),
        ),
    ),
    ("a late param key __name__", _late_param),
    ("end time 2**70 ms", _end_time_overflow),
    ("experiment tag key __name__", lambda: mlflow.set_experiment_tag("__name__", "x")),
    (
        "dataset input tag key __name__",
        lambda: mlflow.log_input(
            mlflow.data.from_pandas(pandas.DataFrame({"x": [1]})), tags={"__name__": "x"}
        ),
    ),
]


@pytest.mark.parametrize("case,call", MLFLOW_CASES, ids=[c[0] for c in MLFLOW_CASES])
def test_mlflow_refuses_a_poisoning_value_with_invalid_parameter_value(
    tracking: None,
    db: firestore.Client,
    caplog: pytest.LogCaptureFixture,
    case: str,
    call: Callable[[], Any],
) -> None:
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_metric("loss", 1.0, step=0)
        with pytest.raises(MlflowException) as refused:
            call()
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
        mlflow.log_metric("loss", 0.25, step=1)
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"loss": 0.25}  # a refused batch logs none of its metrics
    assert got.data.params["lr"] == "0.1"
    assert not any(k.startswith("__") for k in got.data.tags)
    doc = db.document(layout.run(PROJECT, "mlflow-train", run.info.run_id)).get().to_dict() or {}
    assert doc["status"] == "finished" and doc["summary"]["loss"]["count"] == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_mlflow_store_refuses_a_metric_no_double_can_hold(
    tracking: None, db: firestore.Client
) -> None:
    # MLflow's own client turns 10**400 into an OverflowError before any store is called;
    # a caller of the store (MLflow's server, an integration) gets MLflow's error for it.
    store = _get_store()
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0)
        big = Metric("loss", 10**400, int(time.time() * 1000), 1)
        with pytest.raises(MlflowException, match="64-bit float") as refused:
            store.log_batch(run.info.run_id, [big], [], [])
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.data.metrics == {"loss": 1.0}


def test_a_big_int_param_in_mlflow_is_kept_as_mlflow_keeps_it(
    tracking: None, db: firestore.Client
) -> None:
    with mlflow.start_run() as run:
        mlflow.log_param("seed", 2**70)  # MLflow params are strings
        mlflow.log_metric("loss", 1.0, step=-1)  # MLflow allows negative steps
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.data.params["seed"] == str(2**70)
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(-1, 1.0)]


# ------------------------------------------------------------------- datasets and artifacts


def test_dataset_and_artifact_documents_are_checked_before_they_are_written(
    stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    ms = Metastore(PROJECT)
    store = DatasetStore(ms.db, ms.blobstore, ms.cache, PROJECT)
    with pytest.raises(ValidationError, match="dataset description"):
        store.add("tables", data, desc="d" * 2_000_000)
    with pytest.raises(ValidationError, match="reserved"):
        store.add("__tables__", data)
    assert list(db.collection(layout.datasets(PROJECT)).stream()) == []
    assert store.add("tables", data, desc="small").version == "v1"

    exper = ms.exper("train", git_policy="off")
    with pytest.raises(ValidationError, match="URI"):
        exper.add_artifact("weights", "gs://bucket/" + "w" * 2_000_000, is_local=False)
    with pytest.raises(ValidationError, match="reserved"):
        exper.add_artifact("__weights__", data / "a.csv")
    assert list(db.collection(layout.artifacts(PROJECT, "train")).stream()) == []
    assert exper.add_artifact("weights", data / "a.csv")["version"] == "v1"


# ------------------------------------------------------------------- whole scripts

TRAINING_SCRIPT = """
import sys
from aletheia import Metastore
from aletheia.errors import AletheiaError

run = Metastore(sys.argv[1]).exper("script").start_run(params={"lr": 0.1})
attempts = [
    lambda: run.add_metric("loss", 0.5, step=2**70),
    lambda: run.add_metric("__name__", 0.5),
    lambda: run.add_metric("\\U0001f600" * 250, 0.5),
    lambda: run.add_metric("中" * 250, 0.5),
    lambda: run.set_params({"seed": 2**70}),
    lambda: (run.set_params({"a": "p" * 500_000}), run.set_hyper_params({"b": "h" * 500_000})),
    lambda: run.add_metric("loss", 10**400),
]
for step, attempt in enumerate(attempts):
    run.add_metric("loss", 1.0 / (step + 1), step=step)
    try:
        attempt()
    except AletheiaError as exc:
        print("refused:", type(exc).__name__, exc)
try:
    Metastore(sys.argv[1]).exper("script").start_run(params={"seed": 2**70})
except AletheiaError as exc:
    print("refused:", type(exc).__name__, exc)
print("complete:", run.finish())
"""

MLFLOW_SCRIPT = """
import sys
import mlflow
from mlflow.exceptions import MlflowException

mlflow.set_tracking_uri("aletheia://" + sys.argv[1])
mlflow.set_experiment("mlflow-script")
attempts = [
    lambda: mlflow.log_metric("acc", 0.5, step=2**70),
    lambda: mlflow.log_metric("__name__", 0.5),
    lambda: mlflow.log_metric("\\U0001f600" * 250, 0.5),
    lambda: mlflow.log_metric("中" * 250, 0.5),
    lambda: mlflow.log_params({"__seed__": 2**70}),
    lambda: mlflow.set_tag("__name__", "x"),
]
with mlflow.start_run() as run:
    mlflow.log_param("seed", 2**70)
    for step, attempt in enumerate(attempts):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        try:
            attempt()
        except MlflowException as exc:
            print("refused:", exc.error_code, exc.message.splitlines()[0])
print("run:", run.info.run_id)
"""


@pytest.mark.parametrize(
    "script,exper,refusals,code",
    [
        (TRAINING_SCRIPT, "script", 8, "ValidationError"),
        (MLFLOW_SCRIPT, "mlflow-script", 6, "INVALID_PARAMETER_VALUE"),
    ],
    ids=["Metastore", "MLflow"],
)
def test_a_training_script_is_told_at_each_bad_call_and_its_run_ends_finished(
    stack: config.Settings,
    db: firestore.Client,
    script: str,
    exper: str,
    refusals: int,
    code: str,
) -> None:
    env = {**os.environ, "ALETHEIA_GIT_POLICY": "off"}
    done = subprocess.run(
        [sys.executable, "-c", script, PROJECT],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == refusals and all(code in line for line in refused), done.stdout
    assert "Traceback" not in done.stderr and "Firestore refused" not in done.stderr
    assert code != "ValidationError" or "complete: True" in done.stdout
    runs = [r.to_dict() or {} for r in db.collection(layout.runs(PROJECT, exper)).stream()]
    assert len(runs) == 1
    assert runs[0]["status"] == "finished"
    assert runs[0]["summary"]["loss"]["count"] == refusals - (code == "ValidationError")
