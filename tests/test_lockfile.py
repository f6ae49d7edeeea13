"""The lock file: found from any sub-directory of a repo, stable on disk, strict on input."""

from __future__ import annotations

import json
import subprocess

import pytest

from aletheia.data.lockfile import LockFile, find_repo_root, lock_path
from aletheia.errors import ConfigError, ValidationError


def test_pins_round_trip_and_are_found_from_a_subdirectory(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    root = find_repo_root(deep)
    assert root == tmp_path.resolve()

    lock = LockFile.load(root)
    lock.pin("default", "mnist", "v2", "ab" * 32)
    lock.pin("default", "cifar", "v1", None)
    lock.save()
    text = lock_path(root).read_text()
    assert text.endswith("\n") and text.index('"cifar"') < text.index('"mnist"')  # sorted
    again = LockFile.load(root)
    assert again.get("default", "mnist").version == "v2"
    assert again.get("default", "cifar").manifest_sha256 is None
    assert again.get("other", "mnist") is None
    assert again.unpin("default", "mnist") and not again.unpin("default", "mnist")


def test_outside_a_repo_there_is_no_root(tmp_path):
    assert find_repo_root(tmp_path) is None


def test_broken_lock_files_say_how_to_fix_them(tmp_path):
    path = lock_path(tmp_path)
    path.parent.mkdir()
    path.write_text("<<<<<<< HEAD\n")
    with pytest.raises(ConfigError, match="merge conflict"):
        LockFile.load(tmp_path)
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(ConfigError, match="format"):
        LockFile.load(tmp_path)
    with pytest.raises(ValidationError):
        LockFile(path).pin("default", "../evil", "v1", None)
