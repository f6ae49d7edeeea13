"""Credentials in URLs never reach Firestore, where every viewer of the project reads them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from google.cloud import firestore
from test_datasets import make_tree, store_for
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.cloud.redact import redact_text, redact_url
from aletheia.data.artifacts import ArtifactStore

SECRET = "Tok3nS3cret"
runner = CliRunner()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://alice:{SECRET}@host.example/data.csv", "https://host.example/data.csv"),
        (f"https://{SECRET}@github.com/o/r.git", "https://github.com/o/r.git"),
        (
            f"https://bucket.s3.amazonaws.com/k.csv?X-Amz-Credential=AK&X-Amz-Signature={SECRET}"
            "&versionId=3",
            "https://bucket.s3.amazonaws.com/k.csv?versionId=3",
        ),
        (f"https://h.example/f?access_token={SECRET}&page=2", "https://h.example/f?page=2"),
        (f"https://acct.blob.core.windows.net/c/b?sv=2022&sig={SECRET}", None),
        (f"s3://key:{SECRET}@bucket/path", "s3://key@bucket/path"),
        (f"ssh://git:{SECRET}@host.example/o/r.git", "ssh://git@host.example/o/r.git"),
        ("gs://bucket/data/train.csv", "gs://bucket/data/train.csv"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/data", "/srv/data"),
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted
    if expected is not None:
        assert redacted == expected


def test_urls_inside_text_are_redacted() -> None:
    text = f"scraped from https://u:{SECRET}@h.example/x and http://h2.example/y?token={SECRET}"
    assert redact_text(text) == "scraped from https://h.example/x and http://h2.example/y"


@pytest.fixture()
def project_dir(stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    return tmp_path


def test_dataset_source_is_stored_without_credentials(
    project_dir: Path, db: firestore.Client
) -> None:
    data = make_tree(project_dir / "d", {"a.csv": b"x\n1\n"})
    source = f"https://alice:{SECRET}@data.example/export?api_key={SECRET}&v=2"
    args = ["datasets", "add", "ds", str(data), "--source", source, "-p", "redact"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = db.document(layout.dataset("redact", "ds")).get().to_dict() or {}
    assert doc["source"] == "https://data.example/export?v=2"


def test_remote_artifact_uri_is_stored_without_credentials(
    stack: config.Settings, db: firestore.Client, gcs, cache_dir: Path
) -> None:
    blobs = store_for(db, gcs, stack, cache_dir).blobs
    store = ArtifactStore(db, blobs, None, blobs.project)
    uri = f"https://bob:{SECRET}@models.example/m.bin?X-Goog-Signature={SECRET}"
    store.add("e", "model", uri, run_id=None, is_local=False)
    docs = db.collection(layout.artifact_versions(blobs.project, "e", "model")).stream()
    assert [d.get("uri") for d in docs] == ["https://models.example/m.bin"]


@pytest.fixture()
def tracking(stack: config.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALETHEIA_GIT_POLICY", "off")
    mlflow.set_tracking_uri("aletheia://redact")
    yield
    while mlflow.active_run():
        mlflow.end_run()


def test_mlflow_tags_holding_urls_are_stored_without_credentials(
    tracking: None, db: firestore.Client
) -> None:
    mlflow.set_experiment("tags")
    repo = f"https://ci:{SECRET}@git.example/team/model.git"
    with mlflow.start_run(tags={"mlflow.source.git.repoURL": repo}) as run:
        mlflow.set_tag("data", f"s3://bucket/x?token={SECRET}")
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.set_tag("late", f"https://u:{SECRET}@h.example/")
    mlflow.MlflowClient().set_tag(run.info.run_id, "ended", f"ftp://u:{SECRET}@h.example/")
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.repoURL"] == "https://git.example/team/model.git"
    assert tags["data"] == "s3://bucket/x"
    assert SECRET not in str(tags)
    found = list(db.collection_group(layout.RUNS).stream())
    assert found and SECRET not in str([d.to_dict() for d in found])
