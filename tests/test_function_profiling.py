"""Data files uploaded to the bucket get schema, statistics and a sample from the real function.

Each file goes through the whole event path (fake-gcs-server → Pub/Sub →
bridge → functions-framework); the numbers are checked against DuckDB
computing the same statistics over the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import firestore, storage
from test_terraform import _parse as parse_terraform
from test_terraform import expiring_prefixes

from aletheia.cloud import clients, config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.function.analysis import PATH_METADATA

from helpers import GENEROUS_S, wait_for_document

PROJECT = "vision"


def _table(n: int = 500) -> pa.Table:
    return pa.table(
        {
            "id": list(range(n)),
            "score": [((i * 37) % 101) / 7.0 if i % 10 else None for i in range(n)],
            "label": [("cat", "dog", "bird")[i % 3] for i in range(n)],
        }
    )


def _csv(table: pa.Table) -> bytes:
    import pyarrow.csv as pa_csv

    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    return sink.getvalue()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _jsonl(table: pa.Table) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in table.to_pylist())


def upload(gcs: storage.Client, settings: config.Settings, data: bytes, relpath: str) -> str:
    """Upload bytes content-addressed, with their original path as metadata.

    The project is created first, as every aletheia upload path does (the
    function writes only into an existing project).
    """
    members.ensure_project(clients.firestore_client(settings), PROJECT)
    digest = hashlib.sha256(data).hexdigest()
    blob = gcs.bucket(settings.bucket).blob(layout.blob_name(PROJECT, digest))
    blob.metadata = {PATH_METADATA: relpath}
    blob.upload_from_string(data)
    return digest


def wait_terminal(db: firestore.Client, digest: str, timeout: float = GENEROUS_S) -> dict[str, Any]:
    """The Files document once its status is terminal."""
    return wait_for_document(
        db,
        layout.file(PROJECT, digest),
        lambda doc: doc.get("status") in ("done", "failed", "unsupported"),
        timeout=timeout,
        what=f"terminal status of {digest[:8]}",
    )


def _expected(path: Path) -> dict[str, Any]:
    con = duckdb.connect()
    row = con.execute(
        f"select count(*), count(score), avg(score), stddev_samp(score), min(score), "
        f"max(score), quantile_cont(score, 0.5), quantile_cont(score, 0.25), "
        f"count(distinct id), count(distinct label) from '{path}'"
    ).fetchone()
    assert row is not None
    keys = ("rows", "score_count", "mean", "std", "min", "max", "p50", "p25", "ids", "labels")
    return dict(zip(keys, row, strict=True))


@pytest.mark.parametrize(
    ("relpath", "encode"),
    [
        ("train/part-0.csv", _csv),
        ("train/part-0.parquet", _parquet),
        ("train/part-0.jsonl", _jsonl),
        ("train/part-0.csv.gz", lambda t: gzip.compress(_csv(t))),
    ],
)
def test_uploaded_data_file_gets_schema_stats_and_sample(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    tmp_path: Path,
    relpath: str,
    encode: Any,
) -> None:
    table = _table()
    data = encode(table)
    local = tmp_path / relpath.replace("/", "_")
    local.write_bytes(data)
    expected = _expected(local)

    doc = wait_terminal(db, upload(gcs, stack, data, relpath))

    assert doc["status"] == "done", doc.get("reason")
    assert doc["rows"] == expected["rows"] == 500
    assert doc["path"] == relpath
    names = [c["name"] for c in doc["schema"]["columns"]]
    assert names == ["id", "score", "label"]
    schema = {c["name"]: c for c in doc["schema"]["columns"]}
    assert schema["score"]["nullable"] is True and schema["id"]["nullable"] is False
    assert schema["label"]["domain"] == ["bird", "cat", "dog"]
    stats = {c["name"]: c for c in doc["stats"]["columns"]}
    score = stats["score"]
    assert score["count"] - score["missing"] == expected["score_count"]
    assert score["mean"] == pytest.approx(expected["mean"])
    assert score["std"] == pytest.approx(expected["std"])
    assert (score["min"], score["max"]) == pytest.approx((expected["min"], expected["max"]))
    assert score["quantiles"]["p50"] == pytest.approx(expected["p50"])
    assert score["quantiles"]["p25"] == pytest.approx(expected["p25"])
    assert sum(score["histogram"]["counts"]) == expected["score_count"]
    assert stats["id"]["distinct"] == expected["ids"]
    assert stats["label"]["distinct"] == expected["labels"]
    assert {t["value"]: t["count"] for t in stats["label"]["top"]} == {
        "cat": 167,
        "dog": 167,
        "bird": 166,
    }

    sample_name = doc["sample"]["blob"].split("/", 3)[3]
    assert sample_name == layout.sample_blob_name(PROJECT, hashlib.sha256(data).hexdigest())
    lines = gcs.bucket(stack.bucket).blob(sample_name).download_as_bytes().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == doc["sample"]["rows"] == 100
    originals = {r["id"]: r for r in table.to_pylist()}
    assert all(originals[r["id"]]["label"] == r["label"] for r in rows)
    assert doc["timings"]["bytes_read"] >= len(data)


def test_nothing_a_files_document_links_to_is_deleted_by_the_buckets_lifecycle(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    doc = wait_terminal(db, upload(gcs, stack, _csv(_table(50)), "eval/part-0.csv"))
    assert doc["status"] == "done", doc.get("reason")

    linked = [doc["blob"], doc["profile"], doc["sample"]["blob"]]
    expiring = expiring_prefixes(parse_terraform(), PROJECT)
    assert expiring  # tmp/ still expires; the rule is read, not assumed
    for uri in linked:
        bucket, name = uri.removeprefix("gs://").split("/", 1)
        assert bucket == stack.bucket and gcs.bucket(bucket).blob(name).exists(), uri
        assert not [p for p in expiring if name.startswith(p)], f"{uri} expires ({expiring})"


def test_blobstore_upload_names_the_file_for_the_function(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client, tmp_path: Path
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(_csv(_table(10)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    members.ensure_project(db, PROJECT)  # what the write paths that upload do first

    BlobStore(gcs, stack.bucket, PROJECT).upload_file(
        path, digest, path.stat().st_size, relpath="eval/part-1.csv"
    )

    doc = wait_terminal(db, digest)
    assert doc["status"] == "done" and doc["path"] == "eval/part-1.csv"
    assert doc["rows"] == 10


def test_the_function_reads_an_object_once_even_where_a_file_would_be_read_in_parts(
    stack: config.Settings, gcs: storage.Client
) -> None:
    """The function verifies an object's name by hashing its bytes as the profile reads
    them front to back; a profile read in parts would leave that hash unfinished and
    cost a second download of the whole object to verify it."""
    from aletheia.function.analysis import analyse
    from aletheia.stats.options import ProfileOptions

    data = _csv(_table(40_000))
    digest = upload(gcs, stack, data, "train/big.csv")
    name = layout.blob_name(PROJECT, digest)
    obj = gcs.bucket(stack.bucket).get_blob(name)._properties
    ref = layout.parse_blob_name(name)
    assert ref is not None and len(data) > 4 * (64 << 10)

    one_pass = analyse(obj, ref, gcs, ProfileOptions(parts=1))
    split_if_allowed = analyse(obj, ref, gcs, ProfileOptions(parts=2, min_part_bytes=64 << 10))

    for fields in (one_pass, split_if_allowed):
        assert fields["status"] == "done", fields.get("reason")
        assert fields["rows"] == 40_000
    read = split_if_allowed["timings"]["bytes_read"]
    assert len(data) <= read == one_pass["timings"]["bytes_read"]
