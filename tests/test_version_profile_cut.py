"""A version whose table statistics do not fit its document: cut there, merged again by readers.

The version document keeps at most 64 KB of table statistics (every listing
of versions reads it whole); the columns past that are cut and the table
says ``truncated``. Readers (``datasets stats``, the notebook profile) and
the validation merge the files' stored profiles again, so they see every
column, with the same statistics an uncut profile has (exact fields equal,
quantiles within the stated rank error). On the real stack and function.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT, wait_terminal
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.stats import versionprofile
from aletheia.stats.profiling import profile_batches

from helpers import GENEROUS_S, dataset_store, version_field

runner = CliRunner()
ROWS = 2000
#: Enough numeric columns (~1 KB of statistics each) that a table passes the document's budget.
WIDE = 80
EXACT = ("count", "missing", "min", "max", "zeros", "distinct", "distinct_exact")


def _part(seed: int, tail_centre: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {f"c{i:02}": rng.normal(i, 1, ROWS) for i in range(WIDE)}
    # The last columns, the first ones the document leaves out.
    columns["tail"] = rng.normal(tail_centre, 1, ROWS)
    columns["city"] = np.array(["paris", "lima", "rome"])[rng.integers(0, 3, ROWS)]
    return pa.table(columns)


def _write(directory: Path, seeds: list[int], tail_centre: float = 0.0) -> pa.Table:
    (directory / "train").mkdir(parents=True, exist_ok=True)
    tables = [_part(s, tail_centre) for s in seeds]
    for seed, table in zip(seeds, tables, strict=True):
        pa_csv.write_csv(table, directory / "train" / f"part-{seed}.csv")
    return pa.concat_tables(tables)


def _assert_same_as_uncut(columns: list[dict[str, Any]], whole: pa.Table) -> None:
    """Every column, with the statistics of the concatenated parts' own profile."""
    truth = {c["name"]: c for c in profile_batches(whole.to_batches()).to_dict()["stats"]}
    assert [c["name"] for c in columns] == list(truth)
    for column in columns:
        expected = truth[column["name"]]
        for key in EXACT:
            assert column.get(key) == expected.get(key), (column["name"], key)
        if expected.get("mean") is not None:
            assert column["mean"] == pytest.approx(expected["mean"], rel=1e-9)
            assert column["std"] == pytest.approx(expected["std"], rel=1e-9)
            values = np.sort(whole.column(column["name"]).to_numpy())
            eps = column["error"]["quantile_rank"]
            p50 = column["quantiles"]["p50"]
            assert abs(np.searchsorted(values, p50) / values.size - 0.5) <= eps + 1 / values.size
    assert {c["name"]: c for c in columns}["city"]["domain"] == ["lima", "paris", "rome"]


def test_a_table_too_wide_for_the_document_is_cut_there_and_readers_merge_every_column(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    whole = _write(tmp_path / "data", [0, 1, 2])
    version = store.add("wide", tmp_path / "data", lock=False).version
    for entry in store.manifest("wide", version).values():
        wait_terminal(db, entry.sha256)

    recorded = version_field(db, PROJECT, "wide", version, "profile")

    (table,) = recorded["tables"]
    assert table["truncated"] is True and table["files"] == 3
    assert table["columns_total"] == table["columns_profiled"] == WIDE + 2
    assert 0 < table["columns_in_doc"] == len(table["stats"]) == len(table["schema"]) < WIDE
    assert len(json.dumps(table["stats"])) <= versionprofile.DOC_BUDGET_BYTES

    shown = runner.invoke(app, ["datasets", "stats", "wide", "-p", PROJECT, "--json"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)["profile"]
    assert body["recorded"] is False  # what is shown was merged again, not read
    (merged,) = body["tables"]
    assert merged["rows"] == whole.num_rows and not merged.get("truncated")
    _assert_same_as_uncut(merged["stats"], whole)
    kept = {c["name"]: c for c in table["stats"]}
    for column in merged["stats"][: len(kept)]:  # what the document kept agrees
        for key in EXACT:
            assert kept[column["name"]].get(key) == column.get(key), (column["name"], key)
    text = runner.invoke(app, ["datasets", "stats", "wide", "-p", PROJECT])
    assert text.exit_code == 0, text.output
    section = text.stdout[text.stdout.index("table train/*") : text.stdout.index("part-0.csv")]
    assert "tail" in section and "columns shown" not in section  # every column, none cut

    notebook = store.profile("wide")
    (read,) = notebook.to_dict()["tables"]
    assert read["table"] == "train/*" and read["rows"] == whole.num_rows
    _assert_same_as_uncut(read["stats"], whole)
    page = notebook._repr_html_()
    assert page.index("<b>table train/*</b> (3 files merged") < page.index("<td>tail</td>")
    assert page.index("<td>tail</td>") < page.index("part-0.csv")


def test_readers_read_the_files_profiles_side_by_side(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    """Merging again reads every file's profile: one after another, a version of 1,000 files
    waits for 1,000 round trips to the bucket."""
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    _write(tmp_path / "data", [20, 21, 22])
    version = store.add("parallel", tmp_path / "data", lock=False).version
    assert version_field(db, PROJECT, "parallel", version, "profile")["tables"][0]["truncated"]
    # Each load returns only once all three are in flight (else the barrier breaks).
    together = threading.Barrier(3, timeout=GENEROUS_S)
    loads: list[str] = []

    def load(sha256: str) -> dict[str, Any] | None:
        loads.append(sha256)
        together.wait()
        return store.file_profile(sha256)

    merged = versionprofile.compute(db, PROJECT, "parallel", version, store.manifest, load)

    assert merged is not None and len(loads) == 3
    (table,) = merged["tables"]
    assert table["files"] == 3 and len(table["stats"]) == WIDE + 2


def test_validation_sees_drift_in_a_column_the_document_left_out(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    store = dataset_store(stack, db, gcs, cache_dir, PROJECT)
    data = tmp_path / "data"
    _write(data, [10, 11, 12])
    v1 = store.add("widening", data, lock=False).version
    assert version_field(db, PROJECT, "widening", v1, "profile")["tables"][0]["truncated"]
    # New parts (no file has a counterpart in v1) whose last numeric column moved: only the
    # tables' comparison, on columns the recorded profile does not hold, can see it.
    _write(data, [13, 14, 15, 16], tail_centre=8.0)
    v2 = store.add("widening", data, lock=False).version

    validation = version_field(db, PROJECT, "widening", v2, "validation")

    assert version_field(db, PROJECT, "widening", v2, "profile")["tables"][0]["truncated"]
    assert validation["files_compared"] == 0 and validation["tables_compared"] == 1
    (compared,) = validation["tables"].values()
    found = {(a["kind"], a["column"]) for a in compared["anomalies"]}
    assert found == {("drift", "tail")}, found
    assert validation["ok"] is False
