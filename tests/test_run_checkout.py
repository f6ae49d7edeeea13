"""``aletheia runs checkout``: a run's code (commit + diff + untracked files), data, artifacts
and environment file come back, on real git repositories and the local stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.tracking import gitinfo
from aletheia.tracking.gitinfo import GitPolicyWarning
from aletheia.tracking.metastore import Metastore

pytestmark = pytest.mark.filterwarnings(f"ignore::{GitPolicyWarning.__module__}.GitPolicyWarning")

runner = CliRunner()
P = "checkout"


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def cli(*args: str) -> dict:
    result = runner.invoke(app, [*args, "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def files_of(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``root`` but git's own, by relative path."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        own = rel == ".git" or rel.startswith(".git/") or any(rel.startswith(s) for s in skip)
        if path.is_file() and not own:
            found[rel] = path.read_bytes()
    return found


@pytest.fixture()
def trained(stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A run in a dirty repo (edited, staged-new, deleted and binary files, an untracked
    helper), on a pinned dataset, saving a model into an ignored directory."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(origin), str(repo)], check=True)
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("import helpers\nprint(helpers.LR)\n")
    (repo / "old.py").write_text("gone = True\n")
    (repo / "logo.bin").write_bytes(bytes(range(256)))
    (repo / "run.sh").write_text("#!/bin/sh\npython train.py\n")
    (repo / "run.sh").chmod(0o755)
    (repo / ".gitignore").write_text("out/\n")
    (repo / "data" / "mnist").mkdir(parents=True)
    (repo / "data" / "mnist" / "train.csv").write_text("x,y\n1,2\n")
    (repo / "data" / "mnist" / "sub").mkdir()
    (repo / "data" / "mnist" / "sub" / "test.csv").write_text("x,y\n3,4\n")
    monkeypatch.chdir(repo)
    cli("datasets", "add", "mnist", "data/mnist")  # pins it and ignores data/mnist
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "code and data pin")
    git(repo, "push", "-q", "origin", "main")
    # The dirty state the run starts from.
    (repo / "train.py").write_text("import helpers\nprint(helpers.LR * 2)\n")
    (repo / "logo.bin").write_bytes(bytes(range(255, -1, -1)))
    (repo / "old.py").unlink()
    (repo / "staged.py").write_text("STAGED = 1\n")
    git(repo, "add", "staged.py")
    (repo / "helpers.py").write_text("LR = 0.1\n")
    (repo / "tools").mkdir()
    (repo / "tools" / "plot.sh").write_text("#!/bin/sh\necho plot\n")
    (repo / "tools" / "plot.sh").chmod(0o755)
    ms = Metastore(P, flush_interval_s=0.2)
    with ms.exper("ck").start_run(repo_path=repo) as run:
        run.get_dataset("mnist")
        (repo / "out").mkdir()
        (repo / "out" / "model.bin").write_bytes(b"weights" * 100)
        run.add_artifact("model", repo / "out" / "model.bin")
        run.add_metric("loss", 0.5)
    return {"repo": repo, "run": run.id, "git": dict(run.fields["git"]), "tmp": tmp_path}


def test_checkout_rebuilds_code_data_and_artifacts_byte_for_byte(
    trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, recorded, tmp = trained["repo"], trained["git"], trained["tmp"]
    target = tmp / "again"
    out = cli("runs", "checkout", trained["run"], "-e", "ck", "--to", str(target))
    assert out["commit"] == recorded["commit"] and out["diff_applied"] is True
    assert sorted(out["untracked"]) == ["helpers.py", "tools/plot.sh"]
    assert out["datasets"] == {"mnist@v1": "data/mnist"}
    assert out["artifacts"] == {"model@v1": "out"}
    assert out["missing"] == []
    # git status there says what it said when the run started.
    there = gitinfo.capture(target, policy="off")
    assert there.commit == recorded["commit"] and there.changed == recorded["changed"] == 4
    assert list(there.untracked) == recorded["untracked"] == ["helpers.py", "tools/"]
    # Every file is back, byte for byte (the model and the data included), modes too.
    ours = (".aletheia/run/", "data/mnist/.aletheia-pull.json")
    assert files_of(target, ours) == files_of(repo, ours)
    assert (target / "tools" / "plot.sh").stat().st_mode & 0o111
    assert (target / "run.sh").stat().st_mode & 0o111
    env_file = (target / ".aletheia" / "run" / "requirements.txt").read_text()
    assert "aletheia==" not in env_file  # this checkout of aletheia is no PyPI package


def test_without_a_local_clone_the_commit_comes_from_the_remote(
    trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = trained["tmp"] / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved = trained["repo"].rename(trained["tmp"] / "moved")  # the run's own clone is gone
    out = cli("runs", "checkout", trained["run"], "-e", "ck", "--to", "co", "--code-only")
    assert out["source"].endswith("origin.git")
    assert out["datasets"] == {} and out["artifacts"] == {}
    there = gitinfo.capture(elsewhere / "co", policy="off")
    assert there.changed == trained["git"]["changed"]
    assert (elsewhere / "co" / "helpers.py").read_text() == (moved / "helpers.py").read_text()
    # --data-only then fills that checkout with the data and the model (from a subdirectory
    # too: workspaces are relative to the repository root).
    monkeypatch.chdir(elsewhere / "co" / "tools")
    out = cli("runs", "checkout", trained["run"], "-e", "ck", "--data-only")
    assert out["datasets"] == {"mnist@v1": "data/mnist"}
    assert (elsewhere / "co" / "out" / "model.bin").read_bytes() == b"weights" * 100


def test_refusals_come_before_anything_is_written(
    trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = trained["tmp"] / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    result = runner.invoke(
        app, ["runs", "checkout", trained["run"], "-e", "ck", "-p", P, "--to", str(busy)]
    )
    assert result.exit_code != 0 and "not empty" in str(result.exception)
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    result = runner.invoke(app, ["runs", "checkout", "99", "-e", "ck", "-p", P])
    assert result.exit_code != 0 and "no run '99'" in str(result.exception)
