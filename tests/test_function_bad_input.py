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

from aletheia.cloud import config, layout, members

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


def _r_style() -> bytes:
    header = '"height","weight","team"\n'
    rows = "".join(f'"{i + 1}",{150 + i % 50},{50.5 + i % 30},"t{i % 4}"\n' for i in range(300))
    return (header + rows).encode()


def _assert_r_style(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["rows"] == 300 and doc["partial"] is False
    names = [c["name"] for c in doc["schema"]["columns"]]
    assert names == ["index", "height", "weight", "team"]
    assert any("no name for the first column" in n for n in doc["notes"])


def _titled() -> bytes:
    rows = "".join(f"{i},{i * 2.5}\n" for i in range(200))
    return f"Quarterly export\n\nday,amount\n{rows}".encode()


def _assert_titled(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["rows"] == 200
    assert [c["name"] for c in doc["schema"]["columns"]] == ["day", "amount"]
    assert doc["notes"] == ["1 line(s) before the header (fewer fields than the rows) were skipped"]


def _mostly_ragged() -> bytes:
    rows = "".join(f"{i},{i},{i}\n" if i % 2 else f"{i},{i},{i},{i}\n" for i in range(400))
    return ("a,b\n" + rows).encode()


def _assert_mostly_ragged(doc: dict[str, Any]) -> None:
    assert doc["status"] == "failed"
    assert "400 of 400 rows have a different number of fields than the header" in doc["reason"]


def _json_array() -> bytes:
    return json.dumps([{"id": i, "tag": "abc"[i % 3]} for i in range(1000)], indent=1).encode()


def _assert_json_array(doc: dict[str, Any]) -> None:
    assert doc["status"] == "done" and doc["rows"] == 1000 and doc["format"] == "jsonl"
    assert [c["name"] for c in doc["schema"]["columns"]] == ["id", "tag"]
    assert any("JSON array" in n for n in doc["notes"])


CASES: list[tuple[str, Callable[[], bytes], Callable[[dict[str, Any]], None]]] = [
    ("empty.csv", lambda: b"", _assert_empty),
    ("header.csv", lambda: b"a,b\n", _assert_header_only),
    ("ragged.csv", lambda: b"a,b\n1,x\n2,y,extra\n3,z\n", _assert_ragged),
    ("garbage.csv", lambda: bytes(range(256)) * 64 + os.urandom(4096), _assert_binary),
    ("latin1.csv", lambda: "n,city\n1,été\n2,Zürich\n".encode("latin-1"), _assert_latin1),
    ("wide.csv", _wide, _assert_wide),
    ("long-line.csv", _long_line, _assert_long_line),
    ("r-style.csv", _r_style, _assert_r_style),
    ("titled.csv", _titled, _assert_titled),
    ("mostly-ragged.csv", _mostly_ragged, _assert_mostly_ragged),
    ("records.json", _json_array, _assert_json_array),
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
    members.ensure_project(db, PROJECT)  # as every upload path does
    blob = gcs.bucket(stack.bucket).blob(layout.blob_name(PROJECT, wrong))
    blob.metadata = {"aletheia-path": "a.csv"}
    blob.upload_from_string(data)

    doc = wait_terminal(db, wrong)

    assert doc["status"] == "failed"
    assert "does not match its name" in doc["reason"]
