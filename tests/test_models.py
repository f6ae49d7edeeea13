"""The model registry: runs register models, aliases move, lineage answers both ways."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore
from test_datasets import make_tree
from test_metastore import git_repo

from aletheia.cloud import config, layout
from aletheia.data import blobrefs, datasets
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.errors import ConflictError, NotFoundError, ValidationError
from aletheia.tracking.metastore import Metastore

from helpers import lose_a_commits_answer

P, E = "models", "train"


@pytest.fixture()
def ms(stack: config.Settings, gcs, db, tmp_path: Path) -> Metastore:
    """A Metastore on a wiped stack, with a dataset ``digits`` in versions v1 and v2."""
    store = datasets.DatasetStore(
        db, BlobStore(gcs, stack.bucket, P), LocalCache(tmp_path / "dc"), P
    )
    data = make_tree(tmp_path / "digits", {"train.csv": b"x,y\n1,2\n"})
    store.add("digits", data)
    make_tree(data, {"train.csv": b"x,y\n1,2\n3,4\n"})
    store.add("digits", data)
    metastore = Metastore(P, settings=stack, flush_interval_s=0.2)
    metastore.set_downloader(tmp_path / "cache")
    return metastore


def test_register_alias_and_load_by_alias_gives_the_same_bytes(
    ms: Metastore, db: firestore.Client, tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    exper = ms.exper(E, git_policy="off")
    weights = {1: b"\x00weights one\xff" * 1000, 2: b"\x01weights two" * 777}
    for fold, data in weights.items():
        (tmp_path / "model.bin").write_bytes(data)
        with exper.start_run(fold=fold, hyper_params={"lr": 0.1 * fold}, repo_path=repo) as run:
            run.get_dataset("digits", version="v1", download=False)
            run.log_metrics({"acc": 0.5 + fold / 10}, step=0)
            mv = run.log_model("clf", tmp_path / "model.bin", flavor="bytes")
        assert (mv.version, mv.run, mv.experiment, mv.flavor) == (fold, run.id, E, "bytes")
        assert mv.metrics == {"acc": 0.5 + fold / 10}
        assert mv.hyper_params == {"lr": 0.1 * fold}
        assert mv.git["commit"] == commit
        assert mv.datasets == (("digits", "v1"),)
        assert mv.artifact is not None and mv.artifact.version == f"v{fold}"

    model = ms.model("clf")
    assert [v.version for v in model.versions()] == [1, 2]
    model.set_alias("champion", 1)
    model.set_alias("staging", "v2")
    got = model.get(alias="champion")
    assert (got.version, got.aliases) == (1, ("champion",))
    out = got.download(tmp_path / "pulled")
    assert (out / "model.bin").read_bytes() == weights[1]

    model.set_alias("champion", 2)  # aliases move; versions do not
    again = Metastore(P, settings=ms.settings)
    again.set_downloader(tmp_path / "cache2")  # a fresh cache: bytes come from the bucket
    champion = again.model("clf").get(alias="champion")
    assert champion.version == 2
    assert set(champion.aliases) == {"champion", "staging"}
    assert (champion.download(tmp_path / "pulled2") / "model.bin").read_bytes() == weights[2]
    assert again.model("clf").get(1).aliases == ()
    doc = db.document(layout.model(P, "clf")).get().to_dict() or {}
    assert (doc["aliases"], doc["version_count"], doc["latest_version"]) == (
        {"champion": 2, "staging": 2},
        2,
        2,
    )

    # The model holds its blobs: a dataset rm would keep them whatever the artifact says.
    held = blobrefs.holders(db, P, champion.artifact.manifest_sha256)  # type: ignore[union-attr]
    assert "model:clf" in held


def test_an_object_is_pickled_and_loads_back(ms: Metastore, tmp_path: Path) -> None:
    exper = ms.exper(E, git_policy="off")
    trained = {"weights": [0.25, 0.5], "bias": -1.0, "classes": ("cat", "dog")}
    with exper.start_run() as run:
        mv = run.log_model("tiny", trained, description="a dict is a model too")
    assert (mv.flavor, mv.description) == ("pickle", "a dict is a model too")
    ms.model("tiny").set_alias("champion", mv.version)
    fresh = Metastore(P, settings=ms.settings)
    fresh.set_downloader(tmp_path / "other-cache")
    assert fresh.model("tiny").get(alias="champion").load() == trained

    with exper.start_run() as run:
        named = run.log_model("tiny", trained, flavor="sklearn")  # pickled whatever the flavor
    assert (named.flavor, named.serialization, named.load()) == ("sklearn", "pickle", trained)
    with pytest.raises(ValidationError, match="logged as files"):
        _files_version(ms, tmp_path).load()

    with exper.start_run() as run, pytest.raises(ValidationError, match="cannot be pickled"):
        run.log_model("bad", lambda x: x)


def test_lineage_both_ways(ms: Metastore) -> None:
    exper = ms.exper(E, git_policy="off")
    with exper.start_run() as run:
        run.get_dataset("digits", version="v1", download=False)
        on_v1 = run.log_model("a", {"k": 1})
    with exper.start_run() as run:
        run.get_dataset("digits", version="v2", download=False)
        on_v2 = run.log_model("a", {"k": 2})
        b_on_v2 = run.log_model("b", {"k": 3})
    ms.model("a").set_alias("champion", 2)

    # model version -> run -> data
    version = ms.model("a").get(1)
    assert version.dataset_refs == ["digits@v1"]
    trained_by = version.run_view()
    assert (trained_by.experiment, trained_by.id) == (E, on_v1.run)
    assert [(d["name"], d["version"]) for d in trained_by.doc["datasets"]] == [("digits", "v1")]

    # dataset version -> model versions trained on it
    assert [(m.name, m.version) for m in ms.models_trained_on("digits", "v1")] == [("a", 1)]
    on = ms.models_trained_on("digits", "v2")
    assert [(m.name, m.version) for m in on] == [("a", 2), ("b", 1)]
    assert on[0].aliases == ("champion",) and on[0].run == on_v2.run == b_on_v2.run
    # another project's models on a dataset of the same name are not mixed in
    other = Metastore("rival", settings=ms.settings)
    other.set_downloader(ms.cache.root)
    with other.exper(E, git_policy="off").start_run() as run:
        run.record_dataset("digits", "v1")
        run.log_model("a", {"k": 0})
    assert [(m.name, m.version) for m in ms.models_trained_on("digits", "v1")] == [("a", 1)]


def test_register_model_from_a_run_read_back(ms: Metastore, tmp_path: Path) -> None:
    exper = ms.exper(E, git_policy="off")
    out = make_tree(tmp_path / "out", {"w.bin": b"w1", "cfg/c.json": b"{}"})
    with exper.start_run(params={"layers": 3}) as run:
        run.add_artifact("weights", out, is_dir=True)
        run.add_artifact("weights", out, is_dir=True)  # v2, the run's latest save
        run.add_metric("loss", 0.3)
    view = exper.run(run.id)
    mv = ms.register_model("net", run=view, artifact="weights", tags={"team": "vision"})
    assert (mv.version, mv.artifact.version, mv.params) == (1, "v2", {"layers": 3})  # type: ignore[union-attr]
    older = ms.register_model("net", run=f"{E}/{run.id}", artifact="weights", version="v1")
    assert (older.version, older.artifact.version) == (2, "v1")  # type: ignore[union-attr]
    files = older.download(tmp_path / "net")
    assert (files / "w.bin").read_bytes() == b"w1" and (files / "cfg/c.json").read_bytes() == b"{}"
    assert ms.model("net").get().version == 2  # the latest
    ms.model("net").set_alias("champion", 2)
    ms.model_registry.delete_version("net", 2)  # server credentials: an owner's delete
    assert [v.version for v in ms.model("net").versions()] == [1]
    assert (ms.model("net").info().latest_version, ms.model("net").info().aliases) == (1, {})
    assert ms.model_registry.register("net", artifact=older_artifact(ms, run.id)).version == 3
    assert ms.model("net").get(1).tags == {"team": "vision"}
    assert [m.name for m in ms.models()] == ["net"]


def test_concurrent_registrations_get_distinct_numbers(ms: Metastore) -> None:
    exper = ms.exper(E, git_policy="off")
    with exper.start_run() as run:
        run.add_artifact("w", __file__)
    registry = ms.model_registry
    artifact = ms.artifacts.get(E, "w")

    def register(_: int) -> int:
        return registry.register("busy", artifact=artifact).version

    with ThreadPoolExecutor(8) as pool:
        numbers = sorted(pool.map(register, range(12)))
    assert numbers == list(range(1, 13))
    assert [v.version for v in ms.model("busy").versions()] == numbers


def test_a_registration_whose_answer_was_lost_is_one_version(
    ms: Metastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit lands and its answer is lost (UNAVAILABLE): the client library sends it
    # again, the version exists by then, and it was registered once more as the next one.
    exper = ms.exper(E, git_policy="off")
    with exper.start_run() as run:
        run.add_artifact("w", __file__)
    registry = ms.model_registry
    lost = lose_a_commits_answer(registry.db, monkeypatch, lambda path: "/Versions/" in path)
    version = registry.register("once", artifact=ms.artifacts.get(E, "w")).version

    assert lost and version == 1
    assert [v.version for v in ms.model("once").versions()] == [1]
    assert ms.model("once").info().latest_version == 1


def test_a_model_whose_create_answer_was_lost_is_created_not_refused(
    ms: Metastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The create lands and its answer is lost: the client library sends it again, which
    # found the model existing, and the call was refused as "already exists".
    registry = ms.model_registry
    lost = lose_a_commits_answer(registry.db, monkeypatch, lambda p: p.endswith("/Models/new"))
    info = registry.create_model("new", description="made once", exist_ok=False)
    assert lost and info.name == "new"
    with pytest.raises(ConflictError, match="already exists"):  # another call is refused
        registry.create_model("new", exist_ok=False)


def test_bad_names_and_missing_things_are_clear_errors(ms: Metastore) -> None:
    exper = ms.exper(E, git_policy="off")
    with exper.start_run() as run:
        run.log_model("m", {"k": 1})
    model = ms.model("m")
    with pytest.raises(NotFoundError, match="no alias 'champion'"):
        model.get(alias="champion")
    with pytest.raises(NotFoundError, match="no version 7"):
        model.set_alias("champion", 7)
    for alias in ("latest", "v3", "a b", ""):
        with pytest.raises(ValidationError):
            model.set_alias(alias, 1)
    with pytest.raises(ValidationError, match="model version"):
        model.get("seven")
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        ms.model("nope").versions()
    with pytest.raises(ValidationError, match="slash"):
        ms.model("a/b")
    with pytest.raises(NotFoundError, match="does not exist"), exper.start_run() as run:
        run.log_model("m", Path("/nonexistent/model.pt"))


def _files_version(ms: Metastore, tmp_path: Path) -> Any:
    (tmp_path / "m.bin").write_bytes(b"m")
    with ms.exper(E, git_policy="off").start_run() as run:
        return run.log_model("as-files", tmp_path / "m.bin")


def older_artifact(ms: Metastore, run_id: str) -> Any:
    return ms.artifacts.get(E, "weights", "v1", run=run_id)
