"""Firestore paths and user-supplied ids."""

from __future__ import annotations

import hashlib

import pytest

from aletheia.cloud import layout
from aletheia.errors import ValidationError

DIGEST = hashlib.sha256(b"x").hexdigest()

BAD_IDS = [
    "",
    " ",
    " leading",
    "trailing ",
    "a/b",
    "a\\b",
    ".",
    "..",
    "__reserved__",
    "__x__",
    "x" * (layout.MAX_ID_LENGTH + 1),
    "tab\there",
    "new\nline",
    "nul\x00byte",
    "bell\x07",
    "zero\u200bwidth",  # a format character, invisible in the console
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        layout.experiment("proj", bad)
    assert "experiment name" in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("bad", [None, 3, b"bytes"])
def test_non_string_ids_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        layout.validate_id(bad, "run id")


@pytest.mark.parametrize("good", ["resnet sweep", "exper Name", "a.b-c_d:e@f+g", "ünïcode", "7"])
def test_reasonable_ids_are_accepted(good: str) -> None:
    assert layout.experiment("p", good) == f"Projects/p/Experiments/{good}"


def test_hierarchy_matches_the_documented_layout() -> None:
    assert layout.run("p", "e", "3") == "Projects/p/Experiments/e/Runs/3"
    assert layout.result("p", "e", "3") == "Projects/p/Experiments/e/Results/3"
    assert (
        layout.artifact_files("p", "e", "model") == "Projects/p/Experiments/e/Artifacts/model/files"
    )
    assert layout.dataset_version("p", "cifar", "v2") == "Projects/p/Datasets/cifar/Versions/v2"
    assert layout.file("p", DIGEST) == f"Projects/p/Files/{DIGEST}"
    assert layout.metadata_doc("p", "team") == "Projects/p/Metadata/team"


def test_metric_chunk_ids_encode_slashes_and_sort_by_chunk() -> None:
    doc_id = layout.metric_chunk_id("train/loss", 12)
    assert "/" not in doc_id
    assert layout.parse_metric_chunk_id(doc_id) == ("train/loss", 12)
    ids = [layout.metric_chunk_id("loss", n) for n in (2, 10, 1)]
    assert sorted(ids) == [layout.metric_chunk_id("loss", n) for n in (1, 2, 10)]


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x", "a/../../b", "a\\b", "ctrl\x01", "a/..", "./.."]
)
def test_relative_paths_that_escape_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        layout.validate_relpath(bad)


@pytest.mark.parametrize(
    ("bad", "says", "hint"),
    [
        ("data/new\nline.csv", "control character", "rename"),
        ("data/tab\there.csv", "control character", "rename"),
        ("data\\win.csv", "backslash", "rename"),
        ("/etc/passwd", "invalid relative path", "relative to the dataset root"),
    ],
)
def test_a_refused_path_says_what_is_wrong_with_it(bad: str, says: str, hint: str) -> None:
    # A file named with a line break was told to "use '/' separators".
    with pytest.raises(ValidationError) as refused:
        layout.validate_relpath(bad)
    assert says in refused.value.message and hint in (refused.value.hint or "")


def test_relative_paths_are_normalised() -> None:
    assert layout.validate_relpath("./train//a.csv") == "train/a.csv"


def test_file_doc_ids_are_readable_and_bounded() -> None:
    assert layout.file_doc_id("train/a.csv") == "train%2Fa.csv"
    long_id = layout.file_doc_id("d/" * 400 + "f")
    assert long_id.startswith("h-")
    assert len(long_id) < 100


def test_blob_names_round_trip_and_foreign_objects_are_not_blobs() -> None:
    name = layout.blob_name("vision", DIGEST)
    assert name == f"vision/sha256/{DIGEST[:2]}/{DIGEST[2:]}"
    assert layout.parse_blob_name(name) == layout.BlobRef("vision", DIGEST)
    assert layout.parse_blob_name(layout.sample_blob_name("vision", DIGEST)) is None
    assert layout.parse_blob_name("vision/sha256/zz/" + "0" * 62) is None
    assert layout.parse_blob_name("__x__/sha256/" + DIGEST[:2] + "/" + DIGEST[2:]) is None


def test_sha256_is_validated() -> None:
    with pytest.raises(ValidationError):
        layout.file("p", "not-a-digest")
