"""Versions registered through MLflow are aletheia model versions like any other.

A model MLflow logged to ``aletheia://PROJECT`` is stored as aletheia
artifacts; registering it (``mlflow.register_model`` with ``runs:/``,
``models:/m-…``, ``aletheia-art://``, ``aletheia-model://`` or a registered
``models:/NAME/VERSION``) records that artifact version, so ``aletheia models
pull``, ``ms.model(name).get(...).download()`` and lineage work as for
natively registered versions. A source aletheia does not store is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.data import datasets
from aletheia.tracking.metastore import Metastore

PROJECT = "mlflowregpull"
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])


@pytest.fixture()
def mlflow_env(
    stack: config.Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    yield
    while mlflow.active_run():
        mlflow.end_run()


def _tree(root: Path) -> dict[str, bytes]:
    """A model's files; MLflow's client writes ``registered_model_meta`` into what it
    downloads through ``models:/NAME/VERSION`` (whatever the store): not a stored file."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != "registered_model_meta"
    }


def _pull(name: str, version: int, to: Path) -> dict:
    result = CliRunner().invoke(
        app, ["models", "pull", name, "-v", str(version), "--to", str(to), "-p", PROJECT, "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_mlflow_registered_model_is_pulled_by_aletheia_with_its_lineage(
    db: firestore.Client, tmp_path: Path, mlflow_env: None
) -> None:
    ms = Metastore(PROJECT)
    store = datasets.DatasetStore(db, ms.blobstore, ms.cache, PROJECT)
    src = tmp_path / "digits"
    src.mkdir()
    (src / "train.csv").write_text("a,b,y\n0,1,0\n1,0,1\n0.2,0.9,0\n0.9,0.1,1\n")
    store.add("digits", src)
    checkout = store.get("digits").local_path
    assert checkout is not None

    # An ordinary MLflow program: train on the dataset, log the model, register it.
    mlflow.set_experiment("train")
    frame = pd.read_csv(checkout / "train.csv")
    with mlflow.start_run() as run:
        source = str(checkout / "train.csv")
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name="digits"))
        clf = LogisticRegression().fit(frame[["a", "b"]].to_numpy(), frame["y"])
        mlflow.sklearn.log_model(clf, name="model")
    run_id = run.info.run_id
    mv = mlflow.register_model(f"runs:/{run_id}/model", "clf")
    assert int(mv.version) == 1
    loaded = mlflow.sklearn.load_model("models:/clf/1")
    by_mlflow = mlflow.artifacts.download_artifacts("models:/clf/1", dst_path=str(tmp_path / "ml"))

    pulled = _pull("clf", 1, tmp_path / "pulled")
    assert _tree(Path(pulled["local_path"])) == _tree(Path(by_mlflow))
    again = mlflow.sklearn.load_model(pulled["local_path"])
    assert list(again.predict(X)) == list(loaded.predict(X))

    # The Python API and lineage, as for a natively registered version.
    got = ms.model("clf").get(1)
    assert (got.run, got.experiment, got.datasets) == (run_id, "train", (("digits", "v1"),))
    assert got.artifact is not None and got.artifact.experiment == "train"
    assert _tree(got.download(tmp_path / "api")) == _tree(Path(by_mlflow))
    assert got.run_view().id == run_id
    assert [(v.name, v.version) for v in ms.models_trained_on("digits", "v1")] == [("clf", 1)]


def test_every_aletheia_source_is_pullable_and_a_foreign_one_is_refused(
    db: firestore.Client, tmp_path: Path, mlflow_env: None
) -> None:
    mlflow.set_experiment("sources")
    files = tmp_path / "plain"
    files.mkdir()
    (files / "MLmodel").write_text("artifact_path: plain\nflavors: {}\n")
    (files / "weights.bin").write_bytes(b"w" * 1000)
    (files / "sub").mkdir()
    (files / "sub" / "extra.txt").write_text("extra")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(files), "plain")  # run artifacts, not a logged model
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, [0, 1, 0, 1, 0, 1]), name="m")
    run_id = run.info.run_id
    client = MlflowClient()
    client.create_registered_model("src")
    art_uri = client.get_run(run_id).info.artifact_uri
    sources = [
        f"runs:/{run_id}/plain",  # MLflow's register_model turns this into the next one
        f"{art_uri}/plain",
        f"models:/{info.model_id}",
        client.get_logged_model(info.model_id).artifact_location,  # aletheia-model://
        "models:/src/1",  # a registered version (copy_model_version)
    ]
    versions = []
    for source in sources:
        versions.append(int(client.create_model_version("src", source, run_id).version))
    client.copy_model_version("models:/src/3", "copied")

    plain = _tree(files)
    model_files = _tree(Path(mlflow.artifacts.download_artifacts(f"models:/{info.model_id}")))
    wanted = {1: plain, 2: plain, 3: model_files, 4: model_files, 5: plain}
    for number in versions:
        assert (
            _tree(Path(_pull("src", number, tmp_path / f"v{number}")["local_path"]))
            == (wanted[number])
        ), number
    assert _tree(Path(_pull("copied", 1, tmp_path / "copied")["local_path"])) == model_files
    # Registering the same files again names the same artifact version (nothing re-stored).
    ms = Metastore(PROJECT)
    assert ms.model("src").get(1).artifact == ms.model("src").get(2).artifact

    for foreign in ("s3://bucket/model", "/tmp/somewhere/model", "aletheia-art://other/e/r/m"):
        with pytest.raises(MlflowException) as err:
            client.create_model_version("src", foreign, run_id)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "aletheia://" in str(err.value)  # the hint: log it to the tracking store
    with pytest.raises(MlflowException) as missing:
        client.create_model_version("src", f"runs:/{run_id}/nothing-here", run_id)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [int(v.version) for v in client.search_model_versions("name = 'src'")] == sorted(
        versions, reverse=True
    )


def test_log_model_with_a_registered_name_and_a_model_without_files(
    tmp_path: Path, mlflow_env: None
) -> None:
    """``log_model(..., registered_model_name=...)`` registers a pullable version; a
    logged model without files registers as on MLflow's stores, with nothing to pull."""
    mlflow.set_experiment("named")
    clf = LogisticRegression().fit(X, [0, 1, 0, 1, 0, 1])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(clf, name="model", registered_model_name="named")
    assert info.registered_model_version == 1
    pulled = mlflow.sklearn.load_model(_pull("named", 1, tmp_path / "named")["local_path"])
    assert list(pulled.predict(X)) == list(clf.predict(X))

    exp_id = mlflow.get_experiment_by_name("named").experiment_id
    bare = MlflowClient().create_logged_model(exp_id, name="agent")  # no files logged
    mv = mlflow.register_model(f"models:/{bare.model_id}", "agent")
    assert (int(mv.version), mv.model_id) == (1, bare.model_id)
    result = CliRunner().invoke(app, ["models", "pull", "agent", "-p", PROJECT])
    assert result.exit_code != 0 and "not from an aletheia artifact" in result.output


#: Every registry method the issue's flows call (register, aliases, tags, search, rename ...).
FLOW_METHODS = {
    "create_registered_model",
    "get_registered_model",
    "update_registered_model",
    "rename_registered_model",
    "delete_registered_model",
    "search_registered_models",
    "get_latest_versions",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "create_model_version",
    "get_model_version",
    "update_model_version",
    "transition_model_version_stage",
    "delete_model_version",
    "get_model_version_download_uri",
    "search_model_versions",
    "set_model_version_tag",
    "delete_model_version_tag",
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "get_model_version_by_alias",
}


def test_no_registry_method_raises_not_implemented(mlflow_env: None) -> None:
    """The flows' methods are aletheia's own; every other one works or answers MLflow's
    FEATURE_DISABLED (prompts, webhooks), never NotImplementedError."""
    import inspect

    from mlflow.store.model_registry.abstract_store import AbstractStore

    from aletheia.integrations.mlflow.registry import AletheiaRegistryStore

    for name in FLOW_METHODS:
        assert AletheiaRegistryStore.__dict__.get(name) is not None, name
        source = inspect.getsource(getattr(AletheiaRegistryStore, name))
        assert "FEATURE_DISABLED" not in source and "unsupported(" not in source, name
    store = AletheiaRegistryStore(f"aletheia://{PROJECT}")
    checked = 0
    for name, fn in inspect.getmembers(AbstractStore, inspect.isfunction):
        if name.startswith("_") or name in FLOW_METHODS:
            continue
        params = list(inspect.signature(fn).parameters.values())[1:]
        args = {
            p.name: None
            for p in params
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        checked += 1
        try:
            result = getattr(store, name)(**args)
            if inspect.iscoroutine(result):
                result.close()
        except NotImplementedError as exc:
            pytest.fail(f"{name} raises NotImplementedError: {exc!r}")
        except Exception as exc:  # any other error is fine: the arguments are dummies
            if isinstance(exc, MlflowException) and exc.error_code == "NOT_IMPLEMENTED":
                pytest.fail(f"{name} raises MLflow's NOT_IMPLEMENTED, not FEATURE_DISABLED")
    assert checked > 10
