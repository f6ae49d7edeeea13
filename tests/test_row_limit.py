"""The 16 MiB row limit the README states is enforced by the storage function.

Arrow grows its read block to hold a whole row, so without a check a 20 MB
row was profiled ``done`` (and memory grew with the row, not the block).
"""

from __future__ import annotations

import gzip
import io

import pytest
from google.cloud import firestore, storage
from test_function_profiling import upload, wait_terminal

from aletheia.cloud import config
from aletheia.stats.rowlimit import MAX_ROW_BYTES, RowLimitedReader, RowTooLongError

TWENTY_MB = 20_000_000


def _csv_with_row(length: int, end: bytes = b"\n") -> bytes:
    small = b"".join(b"%d,short%d" % (i, i) + end for i in range(100))
    return b"id,text" + end + small + b"100," + b"x" * length + end + small


@pytest.mark.parametrize(
    ("relpath", "data"),
    [
        ("long-row.csv", _csv_with_row(TWENTY_MB)),
        ("long-row.csv.gz", gzip.compress(_csv_with_row(TWENTY_MB), compresslevel=1)),
        ("long-row.jsonl", b'{"a": "x"}\n{"a": "' + b"z" * TWENTY_MB + b'"}\n{"a": "y"}\n'),
    ],
)
def test_a_row_over_16_mib_fails_the_file_with_the_reason(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client, relpath: str, data: bytes
) -> None:
    digest = upload(gcs, stack, data, relpath)

    doc = wait_terminal(db, digest)

    assert doc["status"] == "failed", doc
    assert "longer than 16 MiB" in doc["reason"]
    assert "the row starting at byte" in doc["reason"]
    assert doc["attempts"] == 1


def test_a_row_just_under_the_limit_is_profiled(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    data = _csv_with_row(MAX_ROW_BYTES - 100, end=b"\r\n")
    digest = upload(gcs, stack, data, "almost.csv")

    doc = wait_terminal(db, digest)

    assert doc["status"] == "done", doc
    assert doc["rows"] == 201


@pytest.mark.parametrize("read_size", [1, 7, 1 << 20, 64 << 20])
def test_the_limit_holds_for_any_read_size(read_size: int) -> None:
    """Where a read starts or ends must not hide a long line or invent one."""
    limit = 1000
    fine = (b"a" * limit + b"\n") * 3 + b"b" * limit + b"\r" + b"c" * limit
    reader = RowLimitedReader(io.BytesIO(fine), limit=limit)
    assert b"".join(iter(lambda: reader.read(read_size), b"")) == fine

    long = fine + b"\n" + b"d" * 10 + b"\n" + b"e" * (limit + 1) + b"\n"
    reader = RowLimitedReader(io.BytesIO(long), limit=limit)
    with pytest.raises(RowTooLongError, match=f"starting at byte {long.index(b'e'):,}"):
        while reader.read(read_size):
            pass
