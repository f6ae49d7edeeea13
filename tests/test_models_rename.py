"""Renaming a registered model: MLflow's ``rename_registered_model`` and ``aletheia models rename``.

The same MLflow program runs against MLflow's file store and aletheia and
must observe the same: versions, aliases, tags and descriptions move, the old
name is gone, renaming onto a registered name fails. A rename interrupted
between batches loses no version, and running it again finishes it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from google.cloud import firestore
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.data import blobrefs
from aletheia.models import rename
from aletheia.tracking.metastore import Metastore

PROJECT = "modelrename"


@pytest.fixture()
def reset_uris(monkeypatch: pytest.MonkeyPatch, stack: config.Settings) -> Iterator[None]:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


def _code(call: Any) -> str | None:
    try:
        call()
    except MlflowException as exc:
        return exc.error_code
    return None


def rename_program(workdir: Path) -> dict[str, Any]:
    """Register, annotate, rename; what MLflow then shows."""
    client = MlflowClient()
    mlflow.set_experiment("ren")
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    for data in (b"one" * 10, b"two" * 10, b"three" * 10):
        (model_dir / "model.bin").write_bytes(data)
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(model_dir), "model")
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "old")
    client.create_registered_model("taken")
    client.set_registered_model_tag("old", "team", "vision")
    client.update_registered_model("old", description="a classifier")
    client.set_registered_model_alias("old", "champion", "2")
    # (No version tags before the rename: MLflow's file store fails to rename a model whose
    # versions are tagged, iterating a dict of tags as tag objects.)
    client.update_model_version("old", "3", description="the newest")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.transition_model_version_stage("old", "1", "Production")
    client.delete_model_version("old", "2")  # numbering and gaps move as they are
    client.set_registered_model_alias("old", "champion", "3")

    seen: dict[str, Any] = {}
    seen["onto taken"] = _code(lambda: client.rename_registered_model("old", "taken"))
    seen["missing"] = _code(lambda: client.rename_registered_model("nope", "other"))
    renamed = client.rename_registered_model("old", "new")
    seen["returned"] = renamed
    client.set_model_version_tag("new", "1", "checked", "yes")
    got = client.get_registered_model("new")
    seen["model"] = (got.name, got.description, got.tags, got.aliases)
    seen["versions"] = [
        (v.name, v.version, v.tags, v.description, v.current_stage, sorted(v.aliases))
        for v in sorted(client.search_model_versions("name = 'new'"), key=lambda v: v.version)
    ]
    seen["old gone"] = _code(lambda: client.get_registered_model("old"))
    seen["old versions"] = list(client.search_model_versions("name = 'old'"))
    seen["models"] = sorted(m.name for m in client.search_registered_models())
    seen["by alias"] = _code(lambda: client.get_model_version_by_alias("new", "champion"))
    out = mlflow.artifacts.download_artifacts("models:/new/3", dst_path=str(workdir / "dl"))
    seen["bytes"] = (Path(out) / "model.bin").read_bytes()
    seen["next version"] = client.create_model_version(
        "new", f"runs:/{run.info.run_id}/model"
    ).version
    seen["old name reusable"] = client.create_registered_model("old").name
    return seen


def test_rename_answers_as_on_mlflows_file_store(
    tmp_path: Path, db: firestore.Client, reset_uris: None
) -> None:
    mlflow.set_tracking_uri(f"file://{tmp_path / 'mlruns'}")
    mlflow.set_registry_uri(f"file://{tmp_path / 'mlruns'}")
    expected = rename_program(tmp_path / "file")
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    mlflow.set_registry_uri(f"aletheia://{PROJECT}")
    got = rename_program(tmp_path / "aletheia")
    # Aliases and the model's tags move, as on MLflow's SQL stores (their rows follow the
    # name); MLflow's file store drops them on a rename. The rest is as on the file store.
    assert got["model"][2:] == ({"team": "vision"}, {"champion": "3"})
    assert expected["model"][2:] == ({}, {})
    assert got["versions"][1][5] == ["champion"] and expected["versions"][1][5] == []
    assert (got.pop("by alias"), expected.pop("by alias")) == (None, "INVALID_PARAMETER_VALUE")
    for seen in (got, expected):
        seen["model"] = seen["model"][:2]
        seen["versions"] = [v[:5] for v in seen["versions"]]
    assert got == expected
    assert expected["onto taken"] == "RESOURCE_ALREADY_EXISTS"
    assert [v[1] for v in got["versions"]] == [1, 3]

    # aletheia's side: the versions are under the new name, pullable, holding their blobs.
    ms = Metastore(PROJECT)
    mv = ms.model("new").get(alias="champion")
    assert (mv.name, mv.version) == ("new", 3)
    assert (Path(mv.download(tmp_path / "pulled")) / "model.bin").read_bytes() == b"three" * 10
    assert [s.id for s in db.collection(layout.model_versions(PROJECT, "old")).stream()] == []
    assert mv.artifact is not None
    files = ms.artifacts.get(mv.artifact.experiment, mv.artifact.name, mv.artifact.version).files
    held = {h for f in files for h in blobrefs.holders(db, PROJECT, f.sha256)}
    assert blobrefs.model_holder("new") in held and blobrefs.model_holder("old") not in held
    renamed = ms.model("new").rename("newest")  # the Python API
    assert [v.version for v in renamed.versions()] == [1, 3, 4]
    assert renamed.info().aliases == {"champion": 3}


def _register(ms: Metastore, name: str, count: int) -> None:
    with ms.exper("ren", git_policy="off").start_run() as run:
        for i in range(count):
            run.log_model(name, {"w": i})


def test_an_interrupted_rename_loses_no_version_and_finishes_when_run_again(
    stack: config.Settings, db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ms = Metastore(PROJECT, settings=stack, flush_interval_s=0.2)
    _register(ms, "big", 7)
    ms.model("big").set_alias("champion", 5)
    monkeypatch.setattr(rename, "SERVER_BATCH", 2)
    real_move, calls = rename._move, []

    def crash_on_third(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("the process dies here")
        real_move(*args, **kwargs)

    monkeypatch.setattr(rename, "_move", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        ms.model_registry.rename_model("big", "bigger")

    def numbers(name: str) -> list[int]:
        return sorted(
            int(s.id) for s in db.collection(layout.model_versions(PROJECT, name)).stream()
        )

    # Each version is under exactly one of the names: none lost, none twice.
    assert sorted(numbers("big") + numbers("bigger")) == [1, 2, 3, 4, 5, 6, 7]
    assert numbers("bigger") == [1, 2, 3, 4]
    with pytest.raises(Exception, match="being renamed"):
        ms.model_registry.register("big", source="runs:/x/y")

    monkeypatch.setattr(rename, "_move", real_move)
    result = CliRunner().invoke(app, ["models", "rename", "big", "bigger", "-p", PROJECT])
    assert result.exit_code == 0, result.output
    assert numbers("bigger") == [1, 2, 3, 4, 5, 6, 7] and numbers("big") == []
    assert not db.document(layout.model(PROJECT, "big")).get().exists
    info = ms.model("bigger").info()
    assert (info.aliases, info.latest_version) == ({"champion": 5}, 7)
    doc = db.document(layout.model(PROJECT, "bigger")).get().to_dict() or {}
    assert rename.RENAMED_FROM not in doc
    taken = CliRunner().invoke(app, ["models", "rename", "bigger", "bigger", "-p", PROJECT])
    assert taken.exit_code != 0 and "already has that name" in taken.output
