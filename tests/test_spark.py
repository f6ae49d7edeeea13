"""aletheia on Spark (PySpark local mode on this machine's Java): profiles, datasets, runs.

One SparkSession for the module (local[2], no web UI); the data go through
the real local stack: datasets are added with the normal add path, the real
storage function profiles their files, and the Spark side writes where the
function writes.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from google.cloud import firestore, storage
from pyspark.sql import SparkSession
from test_function_profiling import wait_terminal
from typer.testing import CliRunner

import aletheia.spark
from aletheia import Metastore
from aletheia.cli import app
from aletheia.cloud import config, layout, members
from aletheia.spark import versionjob
from aletheia.stats.merge import merge_profiles
from aletheia.tracking.compose import Backend

from helpers import add_profiled, dataset_store, wait_function_idle

PROJECT = "vision"  # the project test_function_profiling.wait_terminal reads
runner = CliRunner()
LABELS = ["cat", "dog", "bird", "fish"]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Python workers run this interpreter: Spark's default, python3 on PATH, lacks the venv.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("aletheia-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    score = rng.normal(10.0, 3.0, n)
    return pa.table(
        {
            "id": pa.array(np.arange(seed * n, (seed + 1) * n, dtype=np.int64)),
            "score": pa.array(score, mask=rng.random(n) < 0.05),
            "label": pa.array(
                rng.choice(["cat", "dog", "bird", "fish"], n, p=[0.4, 0.3, 0.2, 0.1])
            ),
        }
    )


def _stored_profile(gcs: storage.Client, doc: dict[str, Any]) -> dict[str, Any]:
    """The full profile blob the function (or the Spark job) wrote for a file."""
    bucket, _, name = str(doc["profile"]).removeprefix("gs://").partition("/")
    return json.loads(gcs.bucket(bucket).blob(name).download_as_bytes())


def _columns(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in profile["stats"]}


def _rank(values: np.ndarray, v: float) -> float:
    """The normalised rank of ``v`` among ``values`` (sorted)."""
    lo = np.searchsorted(values, v, side="left") / len(values)
    hi = np.searchsorted(values, v, side="right") / len(values)
    return float((lo + hi) / 2)


def assert_within_bounds(
    got: dict[str, Any], want: dict[str, Any], truth: dict[str, np.ndarray]
) -> None:
    """Exact statistics equal; quantiles and distinct counts within their stated bounds."""
    assert got["rows"] == want["rows"]
    gcols, wcols = _columns(got), _columns(want)
    assert list(gcols) == list(wcols)
    for name, w in wcols.items():
        g = gcols[name]
        assert g["type"] == w["type"], name
        assert (g["count"], g["missing"]) == (w["count"], w["missing"]), name
        assert (g.get("min"), g.get("max")) == (w.get("min"), w.get("max")), name
        for key in ("mean", "std"):
            if w.get(key) is not None:
                assert math.isclose(g[key], w[key], rel_tol=1e-9), (name, key)
        bound = g["error"]["distinct_relative"]
        true_distinct = len(np.unique(truth[name]))
        assert abs(g["distinct"] - true_distinct) <= max(3 * bound * true_distinct, 0), name
        if "quantiles" in w:
            sorted_values = np.sort(truth[name])
            rank_bound = g["error"]["quantile_rank"] + 1.0 / len(sorted_values)
            for key, value in g["quantiles"].items():
                q = int(key[1:]) / 100
                assert abs(_rank(sorted_values, value) - q) <= rank_bound, (name, key, value)
        if "top" in w:
            assert [t["value"] if isinstance(t, dict) else t[0] for t in g["top"]][:2] == [
                t["value"] if isinstance(t, dict) else t[0] for t in w["top"]
            ][:2], name


def _truth(tables: list[pa.Table]) -> dict[str, np.ndarray]:
    whole = pa.concat_tables(tables)
    out = {}
    for name in whole.column_names:
        column = whole.column(name).drop_null()
        out[name] = np.asarray(column.to_pylist(), dtype=object if name == "label" else float)
    return out


def _add(tmp_path: Path, name: str, files: dict[str, bytes]) -> tuple[Any, str]:
    root = tmp_path / name
    root.mkdir()
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    store = Backend(config.resolve(), PROJECT).datasets()
    added = store.add(name, root, lock=False)
    return store, added.version


def test_spark_profile_of_a_multi_file_dataset_equals_the_merged_function_profiles(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    tables = [_table(20_000, seed) for seed in range(3)]
    files = {}
    for i, table in enumerate(tables):
        sink = io.BytesIO()
        pq.write_table(table, sink)
        files[f"part-{i}.parquet"] = sink.getvalue()
    store, version = _add(tmp_path, "parts", files)
    docs = [wait_terminal(db, e.sha256) for e in store.manifest("parts", version).values()]
    assert [d["status"] for d in docs] == ["done"] * 3
    function_merged = merge_profiles([_stored_profile(gcs, d) for d in docs])

    parts_dir = tmp_path / "parts"
    result = aletheia.spark.profile(spark.read.parquet(str(parts_dir)))

    assert result.partitions >= 2  # really computed per partition and merged
    truth = _truth(tables)
    assert_within_bounds(result.profile, function_merged, truth)
    assert len(result.sample) == 100 and set(result.sample[0]) == {"id", "score", "label"}


def test_a_file_over_the_function_limit_is_deferred_then_profiled_by_the_spark_command(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    small, big = _table(200, 7), _table(30_000, 8)
    files = {}
    for rel, table in (("small.csv", small), ("big.csv", big)):
        sink = io.BytesIO()
        pa_csv.write_csv(table, sink)
        files[rel] = sink.getvalue()
    store, version = _add(tmp_path, "logs", files)
    manifest = store.manifest("logs", version)
    big_sha, small_sha = manifest["big.csv"].sha256, manifest["small.csv"].sha256
    before = wait_terminal(db, big_sha)
    assert before["status"] == "done" and wait_terminal(db, small_sha)["status"] == "done"
    by_function = _stored_profile(gcs, before)

    # The function's own code path, with a limit the big file is over.
    limit = str(len(files["big.csv"]) - 1)
    redo = runner.invoke(
        app,
        ["datasets", "reprofile", "logs", "-p", PROJECT, "--in-process"],
        env={"ALETHEIA_FUNCTION_MAX_BYTES": limit},
    )
    assert redo.exit_code == 0, redo.output
    deferred = db.document(layout.file(PROJECT, big_sha)).get().to_dict() or {}
    assert deferred["status"] == "deferred"
    assert f"limit of {int(limit):,} bytes" in deferred["reason"]
    assert "aletheia datasets stats NAME --engine spark" in deferred["hint"]
    assert deferred["lease_until"] is None  # nothing left for a sweep to take over
    assert (db.document(layout.file(PROJECT, small_sha)).get().to_dict() or {})["status"] == "done"
    shown = runner.invoke(app, ["datasets", "stats", "logs", "-p", PROJECT], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "deferred" in shown.output and "--engine spark" in shown.output

    # A sweep or a redelivered event leaves a deferred file alone (it is terminal for them).
    stuck = runner.invoke(app, ["datasets", "reprofile", "logs", "-p", PROJECT, "--stuck"])
    assert stuck.exit_code == 0, stuck.output
    assert (db.document(layout.file(PROJECT, big_sha)).get().to_dict() or {})["status"] == (
        "deferred"
    )

    result = runner.invoke(
        app,
        ["datasets", "stats", "logs", "-p", PROJECT, "--engine", "spark", "--json"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert {p: f["status"] for p, f in body["files"].items()} == {
        "big.csv": "done",
        "small.csv": "done",
    }
    # The version's own profile: one table of both files.
    (table,) = body["profile"]["tables"]
    assert (table["files"], table["rows"]) == (2, 30_200)
    after = db.document(layout.file(PROJECT, big_sha)).get().to_dict() or {}
    assert after["engine"] == "spark" and after.get("hint") is None
    assert after["rows"] == 30_000 and after["lease_until"] is None
    by_spark = _stored_profile(gcs, after)
    # Spark's CSV reader gives the columns the function's types, so the two merge as one table.
    assert [c["type"] for c in by_spark["schema"]] == [c["type"] for c in by_function["schema"]]
    assert_within_bounds(by_spark, by_function, _truth([big]))
    # The small file, profiled by the function, was not redone.
    small_doc = db.document(layout.file(PROJECT, small_sha)).get().to_dict() or {}
    assert "engine" not in small_doc
    sample = gcs.bucket(stack.bucket).blob(layout.sample_blob_name(PROJECT, big_sha))
    assert len(sample.download_as_bytes().splitlines()) == 100

    # Asked again, the command says what it left alone and why (it printed the status only).
    again = runner.invoke(
        app, ["datasets", "stats", "logs", "-p", PROJECT, "--engine", "spark"], terminal_width=200
    )
    assert again.exit_code == 0, again.output
    assert "spark: big.csv done (already profiled)" in again.stderr


def test_the_spark_job_does_not_revive_a_project_deleted_under_it(
    stack: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    """The deletion lands after the job listed the version's files, before it leases one.

    The lease reads the project in its transaction, as the function's does: a
    ``Files`` document written anyway would make the deleted name impossible to
    create again.
    """
    team = f"team-{uuid.uuid4().hex[:8]}"
    store = dataset_store(stack, db, gcs, tmp_path / "cache", team)
    root = tmp_path / "logs"
    root.mkdir()
    sink = io.BytesIO()
    pa_csv.write_csv(_table(500, 3), sink)
    (root / "logs.csv").write_bytes(sink.getvalue())
    version = add_profiled(store, db, "logs", root)
    (entry,) = store.manifest("logs", version).values()
    # The function is through with the version (its profile, written after the file's
    # status): a write of it could land between the deletion's listing and its deletes.
    wait_function_idle(stack)
    db.recursive_delete(db.document(layout.project(team)))  # the project and all it held

    result = versionjob.profile_file(store, spark, entry.path, entry.sha256, entry.size)

    assert result.status is None and f"project {team!r} was deleted" in str(result.reason)
    assert not db.document(layout.project(team)).get().exists
    assert list(db.collection(layout.files(team)).limit(1).stream()) == []
    members.create_project(db, team, "ada")  # the name is free again


def test_add_dataset_round_trip(
    stack: config.Settings,
    db: firestore.Client,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    rows = [(i, f"name-{i % 17}", i * 0.5) for i in range(5_000)]
    df = spark.createDataFrame(rows, "id long, name string, value double").repartition(3)

    added = aletheia.spark.add_dataset(df, "frame", project=PROJECT, desc="from Spark")
    assert added.created and added.file_count == 3

    store = Backend(config.resolve(), PROJECT).datasets()
    handle = store.get("frame", added.version, to=tmp_path / "back")
    assert handle.local_path is not None
    back = pq.read_table(handle.local_path).sort_by("id")
    assert back.column_names == ["id", "name", "value"]
    assert back.to_pylist() == [{"id": i, "name": n, "value": v} for i, n, v in rows]
    for entry in store.manifest("frame", added.version).values():
        assert entry.path.startswith("part-") and entry.path.endswith(".parquet")
        assert wait_terminal(db, entry.sha256)["status"] == "done"  # the function profiles them

    # The same DataFrame again: the same parts, so no new version (Spark's random part names
    # would otherwise make every write a new version).
    again = aletheia.spark.add_dataset(df, "frame", project=PROJECT)
    assert (again.created, again.version) == (False, added.version)


def test_a_spark_driver_logs_runs_and_metrics(stack: config.Settings, spark: SparkSession) -> None:
    df = spark.range(0, 10_000).selectExpr("id", "id % 3 as fold", "id * 2.0 as x")
    ms = Metastore(PROJECT)
    exper = ms.exper("spark-job", git_policy="off")
    with exper.start_run() as run:
        for fold, mean in sorted(df.groupBy("fold").avg("x").collect()):
            run.log_metrics({"fold_mean": float(mean)}, step=int(fold))
        run.set_hyper_params({"rows": df.count()})

    view = ms.experiment("spark-job").run(run.id)
    assert [p.value for p in view.metric_history("fold_mean")] == pytest.approx(
        [9999.0, 9998.0, 10000.0]
    )
    assert view.status == "finished"


def test_profile_of_an_empty_dataframe_has_its_columns(spark: SparkSession) -> None:
    """No partition has a row: the profile still names every column with its type."""
    df = spark.createDataFrame([], "id long, name string, value double")
    result = aletheia.spark.profile(df)
    assert (result.rows, result.partitions, result.sample) == (0, 0, [])
    assert [(c["name"], c["type"]) for c in result.profile["schema"]] == [
        ("id", "int64"),
        ("name", "string"),
        ("value", "double"),
    ]
    assert [c["count"] for c in result.profile["stats"]] == [0, 0, 0]


def _rows(n: int, line: Any) -> str:
    return "".join(line(i) for i in range(n))


#: Files as public datasets ship them, which the function reads by sniffing their first lines.
SHIPPED_CSVS = {
    "title lines": (
        "data.csv",
        (
            "Sales by city, 2024\n\nid,city,amount\n" + _rows(40, lambda i: f"{i},c{i % 3},{i}\n")
        ).encode(),
    ),
    "semicolons": (
        "data.csv",
        ("id;city;amount\n" + _rows(40, lambda i: f"{i};Zürich{i % 2};{i * 2}\n")).encode(),
    ),
    "excel separator line": (
        "data.csv",
        ("sep=;\r\nid;city\r\n" + _rows(40, lambda i: f"{i};c{i % 3}\r\n")).encode(),
    ),
    "no header": (
        "data.csv",
        _rows(40, lambda i: f"{i}.5,{i * 2},class{i % 3}\n").encode(),
    ),
    "missing and nan texts": (
        "data.csv",
        (
            "id,score,ratio,label\n"
            + _rows(
                40,
                lambda i: (
                    f"{i},{['NA', 'NULL', str(i)][i % 3]},{['nan', 'NaN', f'{i}.5'][i % 3]},NA\n"
                ),
            )
        ).encode(),
    ),
    "repeated names": (
        "data.csv",
        ("a,a,b,a\n" + _rows(40, lambda i: f"{i},{-i},x{i % 4},7\n")).encode(),
    ),
    "row names": (
        "data.csv",
        ('"","x","y"\n' + _rows(40, lambda i: f'"{i + 1}",{i},"t{i % 5}"\n')).encode(),
    ),
    "windows-1252": (
        "data.csv",
        ("id,price,quote\n" + _rows(40, lambda i: f"{i},{i} €,\u201chi{i % 3}\u201d\n")).encode(
            "cp1252"
        ),
    ),
    "utf-16": (
        "data.tsv",
        ("id\tname\n" + _rows(40, lambda i: f"{i}\tnäme{i % 3}\n")).encode("utf-16"),
    ),
    "utf-8 bom": (
        "data.csv",
        b"\xef\xbb\xbf" + ("id,name\n" + _rows(40, lambda i: f"{i},n{i % 2}\n")).encode(),
    ),
}


@pytest.mark.parametrize("kind", list(SHIPPED_CSVS))
def test_spark_reads_a_shipped_csv_as_the_function_does(
    spark: SparkSession, tmp_path: Path, kind: str
) -> None:
    # Spark read every CSV as plain comma-separated UTF-8 with its header on line 1: a
    # title line became the header, ";" files one column, repeated names were renamed
    # its own way, and Windows-1252 or UTF-16 text was garbled.
    from aletheia.spark import profiler, sources
    from aletheia.stats import profiling
    from aletheia.stats.formats import detect_format

    name, data = SHIPPED_CSVS[kind]
    path = tmp_path / name
    path.write_bytes(data)
    detected = detect_format(name, None, data[:8])
    want = profiling.profile(lambda: path.open("rb"), detected)

    source = sources.prepare(path, detected, tmp_path / "spark")
    got = profiler.profile(sources.read(spark, source), format=detected.format).profile

    assert got["rows"] == want.rows
    gcols, wcols = _columns(got), {c["name"]: c for c in want.columns}
    assert list(gcols) == list(wcols)
    for col, w in wcols.items():
        g = gcols[col]
        assert (g["type"], g["count"], g["missing"], g.get("non_finite")) == (
            w["type"],
            w["count"],
            w["missing"],
            w.get("non_finite"),
        ), col
        assert (g.get("min"), g.get("max")) == (w.get("min"), w.get("max")), col
    # What was done to read it is said as the function says it.
    assert (list(source.notes), list(source.warnings)) == (want.notes, want.warnings)


def test_spark_reads_a_parquet_file_whose_column_names_repeat(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Parquet allows two columns of one name; Spark refused the file (COLUMN_ALREADY_EXISTS).
    from aletheia.spark import profiler, sources
    from aletheia.stats import profiling
    from aletheia.stats.formats import Detected

    path = tmp_path / "frame.parquet"
    table = pa.Table.from_arrays(
        [
            pa.array(range(50)),
            pa.array(range(100, 150)),
            pa.array([f"x{i % 3}" for i in range(50)]),
        ],
        names=["a", "a", "b"],
    )
    pq.write_table(table, path, row_group_size=20)
    want = profiling.profile(lambda: path.open("rb"), Detected("parquet"))

    source = sources.prepare(path, Detected("parquet"), tmp_path / "spark")
    got = profiler.profile(sources.read(spark, source), format="parquet").profile

    assert (
        [c["name"] for c in got["stats"]] == [c["name"] for c in want.columns] == ["a", "a_1", "b"]
    )
    assert [c["max"] for c in got["stats"]] == [c["max"] for c in want.columns]
    assert list(source.notes) == want.notes
