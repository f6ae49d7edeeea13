"""A dataset version's own profile (its parts merged per table), on the real stack and function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT, upload
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.data.cache import LocalCache

from helpers import add_profiled, dataset_store, version_field

runner = CliRunner()
ROWS_PER_PART = 3000


def _part(seed: int, centre: float = 40.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(ROWS_PER_PART) + seed * ROWS_PER_PART,
            "age": rng.normal(centre, 8, ROWS_PER_PART),
            "country": np.array(["fr", "de", "it"])[rng.integers(0, 3, ROWS_PER_PART)],
        }
    )


def _write_parts(directory: Path, seeds: list[int], centre: float = 40.0) -> list[pa.Table]:
    (directory / "train").mkdir(parents=True, exist_ok=True)
    tables = [_part(s, centre) for s in seeds]
    for seed, table in zip(seeds, tables, strict=True):
        pa_csv.write_csv(table, directory / "train" / f"part-{seed}.csv")
    return tables


@pytest.mark.parametrize("last", ["train/part-2.csv", "README.txt"])
def test_a_multi_file_version_gets_one_merged_profile_per_table(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
    last: str,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "v1"
    tables = _write_parts(data, [0, 1, 2])
    (data / "README.txt").write_text("three parts of one table\n")
    version = add_profiled(store, db, "visits", data)
    manifest = store.manifest("visits", version)

    # The function records it when the version's last file is done, whatever its outcome (a
    # table, or a file that is none): make that file's event the last one again (forget it,
    # upload its bytes anew), on a version without a profile.
    ref = db.document(layout.dataset_version(PROJECT, "visits", version))
    version_field(db, PROJECT, "visits", version, "profile")  # by the add or the function, first
    ref.update({"profile": firestore.DELETE_FIELD})
    digest = manifest[last].sha256
    db.document(layout.file(PROJECT, digest)).delete()
    gcs.bucket(stack.bucket).blob(layout.blob_name(PROJECT, digest)).delete()
    upload(gcs, stack, (data / last).read_bytes(), last)

    profile = version_field(db, PROJECT, "visits", version, "profile")

    whole = pa.concat_tables(tables)
    assert profile["files"] == 4 and profile["files_merged"] == 3
    assert profile["files_not_tables"] == 1  # README.txt
    (table,) = profile["tables"]
    assert table["table"] == "train/*" and table["files"] == 3
    assert table["rows"] == whole.num_rows == 3 * ROWS_PER_PART
    stats = {c["name"]: c for c in table["stats"]}
    assert stats["id"]["distinct"] == whole.num_rows and stats["id"]["count"] == whole.num_rows
    ages = whole.column("age").to_numpy()
    assert stats["age"]["mean"] == pytest.approx(float(ages.mean()), rel=1e-9)
    assert stats["age"]["std"] == pytest.approx(float(ages.std(ddof=1)), rel=1e-9)
    assert (stats["age"]["min"], stats["age"]["max"]) == (float(ages.min()), float(ages.max()))
    eps = stats["age"]["error"]["quantile_rank"]
    rank = float(np.mean(ages <= stats["age"]["quantiles"]["p50"]))
    assert abs(rank - 0.5) <= eps + 1 / ages.size
    assert stats["country"]["domain"] == ["de", "fr", "it"]
    assert "sketches" not in table  # they stay in the files' profile blobs

    body = json.loads(
        runner.invoke(app, ["datasets", "stats", "visits", "-p", PROJECT, "--json"]).stdout
    )
    assert body["profile"]["recorded"] is True
    assert body["profile"]["tables"][0]["rows"] == whole.num_rows
    shown = runner.invoke(app, ["datasets", "stats", "visits", "-p", PROJECT])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "table train/* (3 files merged)" in out
    assert out.index("table train/*") < out.index("train/part-0.csv")


def test_validation_compares_dataset_versions_not_only_files(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "data"
    _write_parts(data, [10, 11, 12])
    v1 = store.add("shifting", data, lock=False).version
    version_field(db, PROJECT, "shifting", v1, "profile")
    # New parts whose ages are far higher: no file has a counterpart at its path in v1,
    # so only the comparison of the two versions' tables can see the drift.
    _write_parts(data, [13, 14, 15, 16], centre=70.0)
    v2 = store.add("shifting", data, lock=False).version

    validation = version_field(db, PROJECT, "shifting", v2, "validation")

    assert validation["files_compared"] == 0 and validation["tables_compared"] == 1
    assert validation["ok"] is False
    (table,) = validation["tables"].values()
    assert table["table"] == table["baseline_table"] == "train/*"
    found = {(a["kind"], a["column"]) for a in table["anomalies"]}
    # The appended parts have new ids too (a drift in fact); the countries did not move.
    assert found == {("drift", "age"), ("drift", "id")}


def test_a_file_event_of_an_incomplete_version_reads_a_few_files_not_all(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    """Each file event asks whether it completed its version; reading every file of the
    version to answer would cost N² reads for N files (10,000 images: 10⁸ reads)."""
    from aletheia.data import manifests
    from aletheia.stats import versioncheck, versionprofile

    from helpers import count_documents_read

    files = 60
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "images"
    data.mkdir()
    for i in range(files):
        (data / f"img-{i:03}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + i.to_bytes(4, "big"))
    version = add_profiled(store, db, "images", data)
    manifest = store.manifest("images", version)
    version_field(db, PROJECT, "images", version, "profile")
    # As while the add's events are still arriving: every file but one on its way.
    first, *others = sorted(e.sha256 for e in manifest.values())
    for sha in others:
        db.document(layout.file(PROJECT, sha)).update({"status": "seen"})
    db.document(layout.dataset_version(PROJECT, "images", version)).update(
        {"profile": firestore.DELETE_FIELD}
    )

    def manifest_of(name: str, v: str) -> dict:
        return manifests.load_manifest(
            db, store.blobs, PROJECT, name, v, cache=LocalCache(cache_dir)
        )

    with count_documents_read(db) as read:
        versioncheck.for_file(db, PROJECT, first, manifest_of, lambda sha: None)

    # The version's query, its document, and one probe of the files after this one.
    assert read["batch_get_documents"] <= 1 + versionprofile.FIRST_PENDING_PROBE, read
    assert sum(v for k, v in read.items() if not k.endswith("calls")) < files, read
    version_doc = db.document(layout.dataset_version(PROJECT, "images", version)).get()
    assert "profile" not in (version_doc.to_dict() or {})  # not complete: nothing recorded
