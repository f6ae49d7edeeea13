"""The DVC-like loop in a real git repository: ``datasets add`` keeps the data out of
git and records where it lives; ``datasets pull`` in a fresh clone puts it back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_datasets import make_tree
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import layout
from aletheia.data import gitignore
from aletheia.data.lockfile import LockFile, lock_path
from aletheia.errors import ConfigError, ValidationError

runner = CliRunner()
P = "loop"


@pytest.fixture(autouse=True)
def _no_colour(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def cli(*args: str, project: str = P) -> dict | list:
    result = runner.invoke(app, ["datasets", *args, "-p", project, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "code")
    return path


def test_add_keeps_data_out_of_git_and_a_fresh_clone_pulls_it_back(stack, tmp_path, monkeypatch):
    repo = new_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("*.pyc")  # no final newline: the entry goes on a new line
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore bytecode")
    # A rule only this clone has does not count: a fresh clone would not ignore the data.
    (repo / ".git" / "info" / "exclude").write_text("/data/images\n")
    make_tree(repo / "data" / "images", {"0.png": b"zero", "sub/1.png": b"one"})
    make_tree(repo / "data", {"labels.csv": b"id,label\n0,cat\n"})
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")  # paths are taken relative to the repo root, not cwd

    assert cli("add", "images", "../data/images")["version"] == "v1"
    assert cli("add", "labels", "../data/labels.csv")["version"] == "v1"
    make_tree(repo / "data" / "images", {"2.png": b"two"})
    assert cli("add", "images", "../data/images")["version"] == "v2"
    assert cli("add", "images", "../data/images")["created"] is False

    lines = (repo / ".gitignore").read_text().splitlines()
    assert lines.count("/data/images") == 1 and lines.count("/data/labels.csv") == 1
    assert lines[0] == "*.pyc"
    pins = json.loads(lock_path(repo).read_text())["projects"][P]
    assert pins["images"]["path"] == "data/images" and pins["images"]["version"] == "v2"
    assert pins["labels"]["path"] == "data/labels.csv"
    status = git(repo, "status", "--porcelain", "--untracked-files=all").split("\n")
    assert sorted(filter(None, status)) == [" M .gitignore", "?? .aletheia/datasets.lock"]

    git(repo, "add", ".gitignore", ".aletheia/datasets.lock")
    git(repo, "commit", "-q", "-m", "data: images v2, labels v1")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    pulled = cli("pull")
    assert {(p["name"], p["version"], p["path"]) for p in pulled} == {
        ("images", "v2", "data/images"),
        ("labels", "v1", "data/labels.csv"),
    }
    assert (clone / "data" / "images" / "sub" / "1.png").read_bytes() == b"one"
    assert (clone / "data" / "images" / "2.png").read_bytes() == b"two"
    assert (clone / "data" / "labels.csv").read_bytes() == b"id,label\n0,cat\n"
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == ""

    # In the clone: edit, add, and the new version descends from the pulled one.
    make_tree(clone / "data" / "images", {"3.png": b"three"})
    again = cli("add", "images", "data/images")
    assert (again["version"], again["parent"]) == ("v3", "v2")
    assert git(clone, "status", "--porcelain") == " M .aletheia/datasets.lock\n"


def test_parent_on_a_branch_pinned_to_an_older_version(stack, tmp_path, monkeypatch):
    repo = new_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    data = repo / "data"
    make_tree(data, {"a.csv": b"x,y\n1,2\n"})
    cli("add", "d", "data")
    make_tree(data, {"b.csv": b"x,y\n3,4\n"})
    assert cli("add", "d", "data")["version"] == "v2"
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "d v2")
    git(repo, "checkout", "-q", "-b", "feat")
    make_tree(data, {"a.csv": b"x,z\n1,2\n"})
    assert cli("add", "d", "data")["version"] == "v3"
    git(repo, "commit", "-q", "-am", "d v3")

    git(repo, "checkout", "-q", "main")
    pulled = cli("pull", "d")  # no --to: into the workspace path the lock file records
    assert (pulled["version"], pulled["local_path"]) == ("v2", str(data))
    assert (data / "a.csv").read_bytes() == b"x,y\n1,2\n"
    make_tree(data, {"c.csv": b"x,y\n5,6\n"})
    v4 = cli("add", "d", "data")
    assert (v4["version"], v4["parent"], v4["parent_from"]) == ("v4", "v2", "pull-state")
    assert v4["changes"] == {"added": 1, "removed": 0, "changed": 0}
    assert cli("versions", "d")[-1]["parent"] == "v2"
    make_tree(data, {"c.csv": b"x,y\n7,8\n"})
    text = runner.invoke(app, ["datasets", "add", "d", "data", "-p", P, "--parent", "v3"])
    assert text.exit_code == 0 and "parent v3" in text.output


def test_data_outside_the_repo_is_pinned_without_a_path(stack, tmp_path, monkeypatch):
    repo = new_repo(tmp_path / "repo")
    outside = make_tree(tmp_path / "elsewhere", {"f.bin": b"far away"})
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["datasets", "add", "far", str(outside), "-p", P])
    assert result.exit_code == 0, result.output
    assert "outside the repository" in result.output
    pin = LockFile.load(repo).get(P, "far")
    assert pin is not None and pin.version == "v1" and pin.path is None
    assert not (repo / ".gitignore").exists()

    # pull without a name: a pin without a path goes to the cache checkout
    (pulled,) = cli("pull")
    assert pulled["path"] is None and Path(pulled["local_path"]).is_dir()

    # A path outside the repository never enters the lock file.
    lock = LockFile.load(repo)
    for bad in ("../x", "/etc", "data/../../x", ".", ".git/hooks", ".aletheia"):
        with pytest.raises(ValidationError):
            lock.pin(P, "far", "v1", None, path=bad)
    body = json.loads(lock_path(repo).read_text())
    body["projects"][P]["far"]["path"] = "../../etc"
    lock_path(repo).write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="outside the repository"):
        LockFile.load(repo)
    refused = runner.invoke(app, ["datasets", "pull", "-p", P])
    assert refused.exit_code == ConfigError.exit_code
    # The console wraps long lines (a long temporary path moves the break): read it as words.
    assert "outside the repository" in " ".join(refused.output.split())


def test_data_already_tracked_by_git_is_refused_with_the_command_to_run(
    stack, db, tmp_path, monkeypatch
):
    repo = new_repo(tmp_path / "repo")
    make_tree(repo / "data", {"raw.csv": b"a\n1\n", "more/x.csv": b"a\n2\n"})
    git(repo, "add", "data")
    git(repo, "commit", "-q", "-m", "data in git")
    monkeypatch.chdir(repo)

    result = runner.invoke(app, ["datasets", "add", "raw", "data", "-p", P])
    assert result.exit_code == ValidationError.exit_code
    assert "git rm -r --cached data" in result.output
    single = runner.invoke(app, ["datasets", "add", "raw", "data/raw.csv", "-p", P])
    assert single.exit_code == ValidationError.exit_code
    assert "git rm --cached data/raw.csv" in single.output
    assert not db.document(layout.dataset(P, "raw")).get().exists  # nothing registered
    assert not (repo / ".gitignore").exists()

    git(repo, "rm", "-r", "-q", "--cached", "data")
    assert cli("add", "raw", "data")["version"] == "v1"
    assert "?? data" not in git(repo, "status", "--porcelain", "--untracked-files=all")
    assert git(repo, "check-ignore", "data/more/x.csv").strip() == "data/more/x.csv"

    # An empty placeholder that keeps a directory in git is no reason to refuse.
    make_tree(repo / "raw", {".gitkeep": b""})
    git(repo, "add", "raw/.gitkeep")
    git(repo, "commit", "-q", "-m", "keep raw/")
    make_tree(repo / "raw", {"big.bin": b"data" * 1000})
    assert cli("add", "raw2", "raw")["version"] == "v1"
    assert git(repo, "check-ignore", "raw/big.bin").strip() == "raw/big.bin"

    # The repository itself (it holds the lock file) is never ignored.
    whole = runner.invoke(app, ["datasets", "add", "everything", ".", "-p", P])
    assert whole.exit_code == ValidationError.exit_code and "lock file" in whole.output
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".aletheia/datasets.lock"], cwd=repo, check=False
    )
    assert ignored.returncode == 1


def test_gitignore_lines_match_exactly_the_path_and_say_when_a_rule_overrides_them(tmp_path):
    repo = new_repo(tmp_path / "repo")
    odd = "data/a*b [1]?.csv "  # glob characters and a trailing space, taken literally
    make_tree(repo, {odd: b"1", "data/aXb 1.csv": b"2", "data/#notes": b"3"})
    assert gitignore.ignore(repo, odd) == ["/data/a\\*b \\[1\\]\\?.csv\\ "]
    assert gitignore.ignore(repo, odd) == []  # idempotent
    assert gitignore.ignore(repo, "data/#notes") == ["/data/\\#notes"]
    ignored = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert "aXb 1.csv" in ignored and "a*b" not in ignored and "#notes" not in ignored

    # A deeper .gitignore that re-includes the path wins over the root's line: say so.
    make_tree(repo, {"data/keep.csv": b"4", "data/.gitignore": b"!keep.csv\n"})
    with pytest.raises(ConfigError, match=r"still not ignored.*!keep\.csv"):
        gitignore.ignore(repo, "data/keep.csv")
    assert (repo / ".gitignore").read_text().count("/data/keep.csv") == 1
    with pytest.raises(ConfigError):  # and a second try adds no second line
        gitignore.ignore(repo, "data/keep.csv")
    assert (repo / ".gitignore").read_text().count("/data/keep.csv") == 1


def test_pull_follows_a_local_symlink_out_of_the_repo_but_not_a_committed_one(
    stack, tmp_path, monkeypatch
):
    repo = new_repo(tmp_path / "repo")
    big = tmp_path / "bigdisk"
    big.mkdir()
    (repo / "data").symlink_to(big)  # the user's own link: data lives on another disk
    make_tree(big, {"x.csv": b"x\n1\n"})
    monkeypatch.chdir(repo)
    assert cli("add", "big", "data")["workspace_path"] == "data"
    (big / "x.csv").unlink()
    (pulled,) = cli("pull")
    assert (big / "x.csv").read_bytes() == b"x\n1\n"
    assert pulled["path"] == "data"

    # A symlink from the repository's history pointing at a directory outside it.
    victim = tmp_path / "victim"
    victim.mkdir()
    (repo / "evil").symlink_to(victim)
    git(repo, "add", "evil")
    git(repo, "commit", "-q", "-m", "a link")
    lock = LockFile.load(repo)
    lock.pin(P, "big", "v1", None, path="evil")
    lock.save()
    refused = runner.invoke(app, ["datasets", "pull", "-p", P])
    assert refused.exit_code == ValidationError.exit_code
    assert "a symlink committed to git" in refused.output
    assert list(victim.iterdir()) == []


def test_a_repository_git_refuses_to_read_is_a_clear_error_before_any_upload(
    stack, db, tmp_path, monkeypatch
):
    repo = new_repo(tmp_path / "repo")
    make_tree(repo / "data", {"a.csv": b"a\n1\n"})
    (repo / ".git" / "HEAD").write_text("not a ref\n")  # git refuses the repository
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["datasets", "add", "theirs", "data", "-p", P])
    assert result.exit_code == ConfigError.exit_code
    assert "git ls-files failed" in result.output and "--no-lock" in result.output
    assert not db.document(layout.dataset(P, "theirs")).get().exists
    assert cli("add", "theirs", "data", "--no-lock")["version"] == "v1"
