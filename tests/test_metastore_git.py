"""Runs record their git state under each policy, on real temporary repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.errors import GitPolicyError
from aletheia.tracking.gitinfo import GitPolicyWarning
from aletheia.tracking.metastore import Metastore

from helpers import GIT_ENV, git

PROJECT = "git"


@pytest.fixture()
def pushed_repo(tmp_path: Path) -> Path:
    """A clone whose one commit is pushed to its bare origin."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    repo = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(origin), str(repo)], check=True, env=GIT_ENV)
    (repo / "train.py").write_text("print(1)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    git(repo, "push", "-q", "-u", "origin", "main")
    return repo


def start(repo: Path, policy: str) -> dict:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    with ms.exper(f"policy-{policy}", git_policy=policy).start_run(repo_path=repo) as run:
        pass
    db = ms.db
    return db.document(layout.run(PROJECT, f"policy-{policy}", run.id)).get().to_dict()


def test_clean_pushed_repo_passes_strict(stack: config.Settings, pushed_repo: Path) -> None:
    doc = start(pushed_repo, "strict")
    assert doc["git"]["pushed"] is True and doc["git"]["dirty"] is False
    assert doc["git"]["commit"] == git(pushed_repo, "rev-parse", "HEAD")
    assert doc["git"]["diff_ref"] is None


def test_strict_refuses_dirty_or_unpushed_and_writes_nothing(
    stack: config.Settings, db: firestore.Client, pushed_repo: Path, tmp_path: Path
) -> None:
    (pushed_repo / "train.py").write_text("print(2)\n")
    exper = Metastore(PROJECT).exper("strict", git_policy="strict")
    with pytest.raises(GitPolicyError, match="dirty"):
        exper.start_run(repo_path=pushed_repo)
    git(pushed_repo, "commit", "-qam", "two")  # clean, but not pushed
    with pytest.raises(GitPolicyError):
        exper.start_run(repo_path=pushed_repo)
    outside = tmp_path / "no-repo"
    outside.mkdir()
    with pytest.raises(GitPolicyError):
        exper.start_run(repo_path=outside)
    assert list(db.collection(layout.runs(PROJECT, "strict")).stream()) == []


def test_warn_records_problems_and_runs(stack: config.Settings, pushed_repo: Path) -> None:
    git(pushed_repo, "commit", "--allow-empty", "-qm", "unpushed")
    (pushed_repo / "new.py").write_text("x = 1\n")  # untracked counts as dirty
    with pytest.warns(GitPolicyWarning):
        doc = start(pushed_repo, "warn")
    assert doc["git"]["pushed"] is False and doc["git"]["dirty"] is True
    assert doc["git"]["untracked"] == ["new.py"]
    assert doc["status"] == "finished"


def test_off_no_repo_and_detached_head(
    stack: config.Settings, pushed_repo: Path, tmp_path: Path
) -> None:
    (pushed_repo / "train.py").write_text("print(3)\n")
    doc = start(pushed_repo, "off")
    assert doc["git"]["dirty"] is True and doc["git"]["diff_ref"] is None  # off: no diff
    outside = tmp_path / "plain"
    outside.mkdir()
    assert start(outside, "off")["git"]["in_repo"] is False
    git(pushed_repo, "checkout", "-q", "--", "train.py")
    git(pushed_repo, "checkout", "-q", "--detach", "HEAD")
    doc = start(pushed_repo, "warn")
    assert doc["git"]["detached"] is True and doc["git"]["branch"] is None
