"""Bad data files end in a recorded status with a reason: never a crash loop, never a huge doc."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import firestore, storage
from test_function_profiling import PROJECT, upload, wait_terminal

from aletheia import config, layout

WIDE = 10_000


def _wide() -> bytes:
    header = ",".join(f"feature_{i:05d}" for i in range(WIDE))
    rows = [",".join(str((i * r) % 97) for i in range(WIDE)) for r in range(3)]
    return "\n".join([header, *rows, ""]).encode()


def _long_line() -> bytes:
    return b"a,b\n1," + b"x" * (100 << 20) + b"\n"


def _assert_empty(doc: dict[str, Any]) -> None:
    assert doc["status"] == "failed"
    assert "empty" in doc["reason"]


def _assert_header_only(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["partial"] is True
    assert doc["rows"] == 0
    assert [c["name"] for c in doc["schema"]["columns"]] == ["a", "b"]
    assert "no rows" in doc["reason"]


def _assert_ragged(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["partial"] is True
    assert doc["rows"] == 2
    assert "1 row(s) with the wrong number of fields were skipped" in doc["warnings"]


def _assert_binary(doc: dict[str, Any]) -> None:
    assert doc["status"] == "failed"
    assert "binary content" in doc["reason"]


def _assert_latin1(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["partial"] is True
    assert "Latin-1" in doc["reason"]
    city = next(c for c in doc["stats"]["columns"] if c["name"] == "city")
    assert city["domain"] == ["Zürich", "été"]


def _assert_wide(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done"
    schema = doc["schema"]
    assert schema["columns_total"] == WIDE and schema["truncated"] is True
    assert 0 < schema["columns_in_doc"] <= 100
    assert len(doc["stats"]["columns"]) == schema["columns_in_doc"]
    assert "only the first 1000 of 10000 columns profiled" in doc["warnings"]
    assert doc["profile"].endswith(".profile.json")


def _assert_long_line(doc: dict[str, Any]) -> None:
    assert doc["status"] == "failed"
    assert "longer than 16 MiB" in doc["reason"]


CASES: list[tuple[str, Callable[[], bytes], Callable[[dict[str, Any]], None]]] = [
    ("empty.csv", lambda: b"", _assert_empty),
    ("header.csv", lambda: b"a,b\n", _assert_header_only),
    ("ragged.csv", lambda: b"a,b\n1,x\n2,y,extra\n3,z\n", _assert_ragged),
    ("garbage.csv", lambda: bytes(range(256)) * 64 + os.urandom(4096), _assert_binary),
    ("latin1.csv", lambda: "n,city\n1,été\n2,Zürich\n".encode("latin-1"), _assert_latin1),
    ("wide.csv", _wide, _assert_wide),
    ("long-line.csv", _long_line, _assert_long_line),
]


@pytest.mark.parametrize(("relpath", "make", "check"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_terminal_status_and_a_bounded_document(
    stack: config.Settings,
    gcs: storage.Client,
    db: firestore.Client,
    relpath: str,
    make: Callable[[], bytes],
    check: Callable[[dict[str, Any]], None],
) -> None:
    digest = upload(gcs, stack, make(), relpath)

    doc = wait_terminal(db, digest)

    check(doc)
    assert doc["attempts"] == 1  # answered 2xx the first time: no redelivery loop
    assert len(json.dumps(doc, default=str)) < 300_000


def test_bytes_that_do_not_match_their_name_fail(
    stack: config.Settings, gcs: storage.Client, db: firestore.Client
) -> None:
    data = b"a,b\n1,2\n"
    wrong = hashlib.sha256(b"something else").hexdigest()
    blob = gcs.bucket(stack.bucket).blob(layout.blob_name(PROJECT, wrong))
    blob.metadata = {"aletheia-path": "a.csv"}
    blob.upload_from_string(data)

    doc = wait_terminal(db, wrong)

    assert doc["status"] == "failed"
    assert "does not match its name" in doc["reason"]
