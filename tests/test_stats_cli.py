"""``datasets stats`` and ``datasets split`` against the real stack and the real function."""

from __future__ import annotations

import json
from pathlib import Path

from google.cloud import firestore, storage
from test_drift_versions import _write
from test_function_profiling import PROJECT
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout

from helpers import add_profiled, dataset_store

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, ["datasets", *args, "-p", PROJECT, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_prints_schema_stats_validation_and_writes_html(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    add_profiled(store, db, "clicks", _write(tmp_path / "v1", seed=1))
    add_profiled(store, db, "clicks", _write(tmp_path / "v2", seed=2, shift=6.0, extra=True))

    body = _json(["stats", "clicks"])
    assert body["version"] == "v2"
    train = body["files"]["train.csv"]
    assert train["status"] == "done" and train["rows"] == 2000
    assert [c["name"] for c in train["schema"]["columns"]] == ["age", "country", "score"]
    assert body["validation"]["ok"] is False
    kinds = {
        (a["kind"], a["column"]) for a in body["validation"]["files"]["train.csv"]["anomalies"]
    }
    assert kinds == {("new_column", "score"), ("drift", "age")}

    page = tmp_path / "report.html"
    result = runner.invoke(
        app, ["datasets", "stats", "clicks", "-p", PROJECT, "--version", "v1", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    assert "2,000 rows" in result.stdout and "age" in result.stdout
    text = page.read_text()
    assert text.count("class='histogram'") == 1  # age; country gets top-value bars
    assert text.count("class='bars'") == 1
    assert "<script" not in text and "src=" not in text and "href=" not in text

    missing = runner.invoke(app, ["datasets", "stats", "nope", "-p", PROJECT])
    assert missing.exit_code == 5 and "no dataset" in missing.output


def test_split_makes_deterministic_datasets_with_lineage(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    add_profiled(store, db, "clicks", _write(tmp_path / "v1", seed=1))

    args = ["split", "clicks", "--ratios", "0.7,0.3", "--seed", "3", "--names", "train,test"]
    first = _json(args)
    again = _json(args)

    rows = {p["name"]: p["rows"] for p in first["parts"]}
    assert sum(rows.values()) == 2000 and 1300 < rows["train"] < 1500
    assert again["parts"] == first["parts"]  # same split: no new versions
    assert [v["version"] for v in store.versions("test")] == ["v1"]
    source = db.document(layout.dataset(PROJECT, "test")).get().to_dict()["source"]
    assert source == "split of clicks@v1: ratios 0.7,0.3, seed 3, part 1"
