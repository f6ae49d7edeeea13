"""MLflow's reads through the read interface: what the plugin answers for what it stores."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from mlflow import MlflowClient

from aletheia.cloud import config
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.validation import MAX_SUMMARY_KEYS

PROJECT = "mlflowreads"


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at the emulator-backed project; the git capture is off for speed."""
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    uri = f"aletheia://{PROJECT}"
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def test_history_of_a_metric_beyond_the_summary_cap(tracking: str) -> None:
    """The run's summary keeps the first 1,000 metrics; every series is still in its chunks,
    and its history reads back whole (it used to read back empty)."""
    names = [f"m{i:04d}" for i in range(MAX_SUMMARY_KEYS + 5)]
    mlflow.set_experiment("wide")
    with mlflow.start_run() as run:
        for start in range(0, len(names), 500):
            batch = names[start : start + 500]
            mlflow.log_metrics({n: float(start + j) for j, n in enumerate(batch)}, step=0)
        mlflow.log_metric(names[-1], 1.5, step=1)
    history = MlflowClient().get_metric_history(run.info.run_id, names[-1])
    assert [(m.step, m.value) for m in history] == [(0, float(len(names) - 1)), (1, 1.5)]
    view = Metastore(PROJECT).experiment("wide").run(run.info.run_id)
    assert names[-1] not in view.summary  # beyond the cap
    assert [p.value for p in view.metric_history(names[-1])] == [float(len(names) - 1), 1.5]
