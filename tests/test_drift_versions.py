"""Validation lands on dataset versions: a shifted column and a new one are flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from google.cloud import firestore, storage
from test_function_profiling import PROJECT, wait_terminal
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.stats import versioncheck


def _write(directory: Path, seed: int, shift: float = 0.0, extra: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.normal(40 + shift, 8, 2000),
        "country": np.array(["fr", "de", "it"])[rng.integers(0, 3, 2000)],
    }
    if extra:
        columns["score"] = rng.random(2000)
    directory.mkdir(parents=True)
    pa_csv.write_csv(pa.table(columns), directory / "train.csv")
    return directory


def _add_and_wait(store: DatasetStore, db: firestore.Client, path: Path) -> str:
    result = store.add("clicks", path, lock=False)
    digest = store.manifest("clicks", result.version)["train.csv"].sha256
    assert wait_terminal(db, digest)["status"] == "done"
    return result.version


def test_version_validation_flags_drift_and_new_column_but_not_an_unchanged_version(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    blobs = BlobStore(gcs, stack.bucket, PROJECT)
    store = DatasetStore(db, blobs, LocalCache(cache_dir), PROJECT)
    v1 = _add_and_wait(store, db, _write(tmp_path / "v1", seed=1))
    v2 = _add_and_wait(store, db, _write(tmp_path / "v2", seed=2))  # same distribution
    v3 = _add_and_wait(store, db, _write(tmp_path / "v3", seed=3, shift=6.0, extra=True))
    assert versioncheck.record(db, PROJECT, "clicks", v1, store.manifest) is None  # no parent

    same = versioncheck.record(db, PROJECT, "clicks", v2, store.manifest)
    shifted = versioncheck.record(db, PROJECT, "clicks", v3, store.manifest)

    assert same is not None and same["ok"] is True and same["files_compared"] == 1
    assert shifted is not None and shifted["ok"] is False
    found = shifted["files"]["train.csv"]["anomalies"]
    assert {(a["kind"], a["column"]) for a in found} == {("new_column", "score"), ("drift", "age")}
    stored = db.document(layout.dataset_version(PROJECT, "clicks", v3)).get().to_dict()
    assert stored["validation"]["ok"] is False and stored["validation"]["anomalies"] == 2

    shown = CliRunner().invoke(app, ["datasets", "show", "clicks", "-v", v3, "-p", PROJECT])
    assert shown.exit_code == 0, shown.output
    assert "2 anomalies" in shown.stdout
    assert "new_column score" in shown.stdout and "drift age" in shown.stdout
    calm = CliRunner().invoke(app, ["datasets", "show", "clicks", "-v", v2, "-p", PROJECT])
    assert "no anomalies" in calm.stdout
