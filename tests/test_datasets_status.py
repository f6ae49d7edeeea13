"""``aletheia datasets status``: pinned workspaces vs their pins in a real git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.errors import ValidationError

runner = CliRunner()
P = "status"


@pytest.fixture(autouse=True)
def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def cli(*args: str) -> dict | list:
    result = runner.invoke(app, ["datasets", *args, "-p", P, "--json"])
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    return json.loads(result.stdout)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture()
def repo(stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    (repo / "data" / "images" / "sub").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "data" / "images" / "a.png").write_bytes(b"aaaa")
    (repo / "data" / "images" / "b.png").write_bytes(b"bbbb")
    (repo / "data" / "images" / "sub" / "c.png").write_bytes(b"cccc")
    (repo / "data" / "labels.csv").write_text("id,label\n0,cat\n")
    monkeypatch.chdir(repo)
    cli("add", "images", "data/images")
    cli("add", "labels", "data/labels.csv")
    return repo


def by_name(found: list) -> dict:
    return {s["name"]: s for s in found}


def test_status_names_modified_missing_and_extra_files(repo: Path) -> None:
    assert all(s["clean"] for s in cli("status"))
    images = repo / "data" / "images"
    (images / "a.png").write_bytes(b"AAAA")  # same size, other bytes
    (images / "b.png").write_bytes(b"longer now")
    (images / "sub" / "c.png").unlink()
    (images / "new.png").write_bytes(b"new")
    (repo / "data" / "labels.csv").unlink()
    found = by_name(cli("status"))
    assert found["images"]["modified"] == ["a.png", "b.png"]
    assert found["images"]["missing"] == ["sub/c.png"]
    assert found["images"]["extra"] == ["new.png"]
    assert found["labels"]["missing"] == ["labels.csv"] and not found["labels"]["clean"]
    # The plain output reads like git status.
    result = runner.invoke(app, ["datasets", "status", "-p", P])
    assert "modified: a.png" in result.stdout and "extra: new.png" in result.stdout
    # Pulling the pins puts the pinned bytes back (the extra file is the user's: kept).
    (images / "a.png").write_bytes(b"aaaa")
    (images / "b.png").write_bytes(b"bbbb")
    cli("pull")
    found = by_name(cli("status"))
    assert found["labels"]["clean"]
    assert found["images"]["extra"] == ["new.png"] and not found["images"]["missing"]


def test_status_outside_a_repository_is_a_clear_error(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["datasets", "status", "-p", P])
    assert isinstance(result.exception, ValidationError)
    assert "not inside a git repository" in result.exception.message
