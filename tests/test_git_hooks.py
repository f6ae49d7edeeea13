"""``aletheia git install-hooks`` on real git repositories: checkout switches the data,
push is refused while a pinned version is not stored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.data import githooks
from aletheia.errors import ConflictError

runner = CliRunner()
P = "hooks"


@pytest.fixture(autouse=True)
def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("ALETHEIA_PROJECT", P)  # the hooks' own processes see it too


def cli(*args: str) -> dict | list:
    result = runner.invoke(app, ["datasets", *args, "--json"])
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    return json.loads(result.stdout)


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture()
def repo(stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """main pins data v1; branch exp pins v2 (one file changed, one added)."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "o.git")])
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "o.git"), str(repo)], check=True)
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("x\n1\n")
    (repo / "train.py").write_text("print(1)\n")
    monkeypatch.chdir(repo)
    cli("add", "d", "data")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "data v1")
    git(repo, "checkout", "-qb", "exp")
    (repo / "data" / "a.csv").write_text("x\n2\n")
    (repo / "data" / "b.csv").write_text("y\n3\n")
    cli("add", "d", "data")
    git(repo, "commit", "-qam", "data v2")
    result = runner.invoke(app, ["git", "install-hooks"])
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    return repo


def test_checkout_of_a_branch_switches_the_data(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    assert sorted(p.name for p in (repo / "data").glob("*.csv")) == ["a.csv"]
    assert (repo / "data" / "a.csv").read_text() == "x\n1\n"
    git(repo, "checkout", "-q", "exp")
    assert (repo / "data" / "a.csv").read_text() == "x\n2\n"
    assert (repo / "data" / "b.csv").read_text() == "y\n3\n"
    # A tag too (detached): the data of the tagged commit.
    git(repo, "tag", "v1-data", "main")
    git(repo, "checkout", "-q", "v1-data")
    assert not (repo / "data" / "b.csv").exists()
    assert all(s["clean"] for s in cli("status"))


def test_push_is_refused_while_a_pin_is_missing_remotely(repo: Path) -> None:
    assert git(repo, "push", "-q", "origin", "main").returncode == 0
    # Pin a version the catalog does not have (as a lock file from another project would).
    lock = json.loads((repo / ".aletheia" / "datasets.lock").read_text())
    lock["projects"][P]["d"]["version"] = "v9"
    (repo / ".aletheia" / "datasets.lock").write_text(json.dumps(lock, indent=2))
    git(repo, "commit", "-qam", "pin a version nobody stored")
    refused = git(repo, "push", "origin", "exp", check=False)
    assert refused.returncode != 0
    assert "push refused" in refused.stderr and f"{P}/d v9" in refused.stderr
    assert "datasets add" in refused.stderr  # the fix
    remote = git(repo, "ls-remote", "origin", "exp").stdout
    assert remote == ""  # nothing reached the remote
    git(repo, "revert", "--no-edit", "HEAD")
    assert git(repo, "push", "-q", "origin", "exp", check=False).returncode == 0


def test_foreign_hooks_are_kept_unless_forced(repo: Path) -> None:
    hook = githooks.hooks_dir(repo) / "pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(ConflictError):
        githooks.install(repo)
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"
    githooks.install(repo, force=True)
    assert githooks.MARKER in hook.read_text()
