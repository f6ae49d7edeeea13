"""``mlflow.log_input`` of data that is an aletheia dataset version links the run to it,
so "which runs used this data" finds MLflow runs as it finds aletheia's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from google.cloud import firestore, storage
from mlflow import MlflowClient

from aletheia.cloud import config, layout
from aletheia.data import datasets, lineage
from aletheia.tracking.metastore import Metastore

PROJECT = "mlflowlinks"


def test_log_input_of_an_aletheia_dataset_records_its_version(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.chdir(tmp_path)
    ms = Metastore(PROJECT)
    store = datasets.DatasetStore(db, ms.blobstore, ms.cache, PROJECT)
    src = tmp_path / "iris"
    src.mkdir()
    (src / "train.csv").write_text("a,b\n1,2\n3,4\n")
    store.add("iris", src)
    checkout = store.get("iris").local_path  # where aletheia puts a version: the cache
    assert checkout is not None
    copy = tmp_path / "elsewhere.csv"  # the same bytes anywhere else: linked by content
    shutil.copyfile(checkout / "train.csv", copy)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n9,9\n")

    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    mlflow.set_experiment("links")
    df = pd.read_csv(copy)
    with mlflow.start_run() as run:
        path = str(checkout / "train.csv")
        mlflow.log_input(mlflow.data.from_pandas(df, source=path, name="iris"), context="train")
        mlflow.log_input(mlflow.data.from_pandas(pd.read_csv(other), source=str(other)))
    with mlflow.start_run() as later:
        pass
    # An ended run, logged to from elsewhere (MlflowClient), is linked the same way.
    dataset = mlflow.data.from_pandas(df, source=copy.as_uri(), name="copy")
    MlflowClient().log_inputs(
        later.info.run_id, [mlflow.entities.DatasetInput(dataset._to_mlflow_entity(), [])]
    )

    users = sorted(lineage.runs_using_dataset(db, PROJECT, "iris", "v1"))
    assert users == sorted(layout.run(PROJECT, "links", r.info.run_id) for r in (run, later))
    doc = db.document(layout.run(PROJECT, "links", run.info.run_id)).get().to_dict()
    assert doc["datasets"] == [{"name": "iris", "version": "v1"}]
    linked = {e["name"]: e.get("aletheia_dataset") for e in doc["mlflow_inputs"].values()}
    assert linked == {"iris": {"name": "iris", "version": "v1"}, "dataset": None}
    # MLflow reads its inputs back as it logged them.
    got = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert sorted(d.dataset.name for d in got) == ["dataset", "iris"]
