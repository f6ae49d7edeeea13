"""MLflow's model-registry API on ``aletheia://``, compared with MLflow's own file store.

The same program runs against both stores; what it observes (versions,
aliases, tags, descriptions, stages, searches, error codes, the bytes loaded
back through ``models:/NAME@ALIAS``) must be the same. The aletheia side's
versions are the registry's documents, with the run's lineage.
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
from test_auth import as_user, rules_stack, uid_of

from aletheia.cloud import config, layout, members
from aletheia.integrations.mlflow.registry import AletheiaRegistryStore
from aletheia.tracking.metastore import Metastore

PROJECT = "mlflowregistry"
__all__ = ["rules_stack"]  # the fixture, shared with test_auth


@pytest.fixture()
def reset_uris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    yield
    while mlflow.active_run():
        mlflow.end_run()
    # set_registry_uri also exports MLFLOW_REGISTRY_URI (for subprocesses): drop both, so
    # that later tests' registry follows their tracking URI again.
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


def _code(call: Any) -> str | None:
    try:
        call()
    except MlflowException as exc:
        return exc.error_code
    return None


def registry_program(workdir: Path) -> dict[str, Any]:
    """An ordinary MLflow program using the registry; returns what it observed."""
    seen: dict[str, Any] = {}
    client = MlflowClient()
    mlflow.set_experiment("reg")
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    run_ids = []
    for i, data in enumerate((b"weights-1" * 100, b"weights-2" * 50)):
        (model_dir / "model.bin").write_bytes(data)
        with mlflow.start_run() as run:
            mlflow.log_param("lr", 0.1 / (i + 1))
            mlflow.log_metric("acc", 0.8 + i / 10)
            mlflow.log_artifacts(str(model_dir), "model")
        run_ids.append(run.info.run_id)
    first = mlflow.register_model(f"runs:/{run_ids[0]}/model", "clf")
    second = mlflow.register_model(f"runs:/{run_ids[1]}/model", "clf")
    seen["versions"] = [first.version, second.version]
    seen["run_ids_kept"] = [first.run_id == run_ids[0], second.run_id == run_ids[1]]
    seen["status"] = second.status
    client.set_registered_model_alias("clf", "champion", "1")
    client.set_registered_model_alias("clf", "staging", "2")
    seen["by_alias"] = client.get_model_version_by_alias("clf", "champion").version
    client.set_registered_model_alias("clf", "champion", "2")  # aliases move
    seen["moved"] = client.get_model_version_by_alias("clf", "champion").version
    seen["model_aliases"] = client.get_registered_model("clf").aliases
    seen["version_aliases"] = sorted(client.get_model_version("clf", "2").aliases)
    seen["latest_alias"] = client.get_model_version_by_alias("clf", "latest").version

    client.set_registered_model_tag("clf", "team", "vision")
    client.set_model_version_tag("clf", "1", "validated", "yes")
    client.update_registered_model("clf", description="digits classifier")
    client.update_model_version("clf", "1", description="the first")
    got = client.get_registered_model("clf")
    seen["model"] = (got.name, got.description, got.tags)
    v1 = client.get_model_version("clf", "1")
    seen["v1"] = (v1.version, v1.description, v1.tags, v1.current_stage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow
        client.transition_model_version_stage("clf", "1", "Production")
        seen["latest_per_stage"] = sorted(
            (v.current_stage, v.version) for v in client.get_latest_versions("clf")
        )
    client.delete_model_version_tag("clf", "1", "validated")
    seen["v1_tags_after"] = client.get_model_version("clf", "1").tags
    client.create_registered_model("other", tags={"kind": "baseline"}, description="x")
    client.create_model_version("other", f"runs:/{run_ids[0]}/model", run_ids[0], tags={"k": "v"})
    seen["search_models"] = [m.name for m in client.search_registered_models()]
    seen["search_filtered"] = [
        m.name for m in client.search_registered_models(filter_string="name = 'other'")
    ]
    seen["search_tagged"] = [
        m.name for m in client.search_registered_models(filter_string="tags.kind = 'baseline'")
    ]
    seen["search_versions"] = sorted(
        (v.name, v.version) for v in client.search_model_versions("name = 'clf'")
    )
    seen["search_by_run"] = sorted(
        (v.name, v.version) for v in client.search_model_versions(f"run_id = '{run_ids[0]}'")
    )
    paged = client.search_registered_models(max_results=1)
    seen["paged"] = ([m.name for m in paged], paged.token is not None)

    out = mlflow.artifacts.download_artifacts("models:/clf@champion", dst_path=str(workdir / "dl"))
    seen["champion_bytes"] = (Path(out) / "model.bin").read_bytes()
    source = client.get_model_version("clf", "1").source
    seen["download_uri_is_source"] = client.get_model_version_download_uri("clf", "1") == source
    seen["source_is_the_runs_artifacts"] = source.endswith(f"{run_ids[0]}/artifacts/model") or (
        source.endswith(f"{run_ids[0]}/model")
    )

    copied = client.copy_model_version("models:/clf/1", "copy")
    back = mlflow.artifacts.download_artifacts("models:/copy/1", dst_path=str(workdir / "cp"))
    seen["copy"] = (copied.name, copied.version, (Path(back) / "model.bin").read_bytes()[:9])
    client.delete_registered_model("copy")

    seen["errors"] = {
        "missing model": _code(lambda: client.get_registered_model("nope")),
        "missing version": _code(lambda: client.get_model_version("clf", "9")),
        "duplicate model": _code(lambda: client.create_registered_model("clf")),
        "alias to missing version": _code(
            lambda: client.set_registered_model_alias("clf", "x", "9")
        ),
        "reserved alias": _code(lambda: client.set_registered_model_alias("clf", "latest", "1")),
        "missing alias": _code(lambda: client.get_model_version_by_alias("clf", "nope")),
        "bad name": _code(lambda: client.create_registered_model("a/b")),
    }
    client.delete_registered_model_alias("clf", "staging")
    seen["after_alias_delete"] = client.get_registered_model("clf").aliases
    client.delete_model_version("clf", "2")
    seen["after_version_delete"] = (
        sorted(v.version for v in client.search_model_versions("name = 'clf'")),
        client.get_registered_model("clf").aliases,
    )
    third = client.create_model_version("clf", f"runs:/{run_ids[1]}/model", run_ids[1])
    seen["numbering_after_delete"] = third.version
    client.delete_registered_model("other")
    seen["after_model_delete"] = [m.name for m in client.search_registered_models()]
    seen["run_ids"] = run_ids
    return seen


def test_the_registry_program_sees_what_mlflows_file_store_shows(
    stack: config.Settings, db: firestore.Client, tmp_path: Path, reset_uris: None
) -> None:
    mlflow.set_tracking_uri(f"file://{tmp_path / 'mlruns'}")
    mlflow.set_registry_uri(f"file://{tmp_path / 'mlruns'}")
    expected = registry_program(tmp_path / "file")

    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    mlflow.set_registry_uri(f"aletheia://{PROJECT}")
    assert isinstance(MlflowClient()._get_registry_client().store, AletheiaRegistryStore)
    got = registry_program(tmp_path / "aletheia")

    run_ids = got.pop("run_ids")
    expected.pop("run_ids")
    assert got == expected

    # The versions are aletheia's registry: lineage from the MLflow run, `aletheia models`.
    doc = db.document(layout.model_version(PROJECT, "clf", 1)).get().to_dict() or {}
    assert (doc["run"], doc["experiment"], doc["source"]) == (
        run_ids[0],
        "reg",
        f"aletheia-art://{PROJECT}/reg/{run_ids[0]}/model",
    )
    assert doc["params"] == {"lr": "0.1"} and doc["metrics"] == {"acc": 0.8}
    ms = Metastore(PROJECT, settings=stack)
    info = ms.model("clf").info()
    assert info.aliases == {} and info.tags == {"team": "vision"}
    assert [v.version for v in ms.model("clf").versions()] == [1, 3]


def test_aletheia_registered_models_are_visible_to_mlflow(
    stack: config.Settings, tmp_path: Path, reset_uris: None
) -> None:
    ms = Metastore(PROJECT, settings=stack, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "cache")
    with ms.exper("native", git_policy="off").start_run(hyper_params={"lr": 0.5}) as run:
        run.add_metric("acc", 0.7)
        mv = run.log_model("native-clf", {"w": 1})
    ms.model("native-clf").set_alias("champion", mv.version)
    mlflow.set_tracking_uri(f"aletheia://{PROJECT}")
    client = MlflowClient()
    got = client.get_model_version_by_alias("native-clf", "champion")
    assert (got.version, got.run_id, got.aliases) == (1, run.id, ["champion"])
    assert client.get_registered_model("native-clf").aliases == {"champion": "1"}
    assert [m.name for m in client.search_registered_models()] == ["native-clf"]


def test_signed_in_users_register_under_the_rules(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reset_uris: None,
) -> None:
    """A writer registers and moves aliases through MLflow; only owners delete versions."""
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(ana.user_credentials))
    monkeypatch.setenv("ALETHEIA_IDENTITY", "user")
    mlflow.set_tracking_uri("aletheia://regrules")  # a new project: it becomes ana's
    mlflow.set_experiment("e")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.5)
        mlflow.log_artifacts(str(model_dir), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "clf").version
    assert (version, MlflowClient().get_model_version("clf", 1).user_id) == (1, uid_of(ana))

    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, "regrules", uid_of(bob), "writer")
    monkeypatch.setenv("ALETHEIA_USER_CREDENTIALS", str(bob.user_credentials))
    as_bob = AletheiaRegistryStore("aletheia://regrules")  # MLflow caches stores per URI
    assert as_bob.create_model_version("clf", f"runs:/{run.info.run_id}/model").version == 2
    as_bob.set_registered_model_alias("clf", "champion", 2)
    assert as_bob.get_model_version_by_alias("clf", "champion").user_id == uid_of(bob)
    with pytest.raises(MlflowException) as err:
        as_bob.delete_model_version("clf", 1)
    assert err.value.error_code == "PERMISSION_DENIED"
    assert [int(v.version) for v in as_bob.search_model_versions(max_results=10)] == [2, 1]
