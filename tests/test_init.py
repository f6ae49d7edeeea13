"""``aletheia init``: a cookiecutter-data-science skeleton in a real git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.data import gitignore
from aletheia.data.lockfile import LockFile, find_repo_root

runner = CliRunner()


def _ignored(repo: Path, rel: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", rel], cwd=repo, check=False)
    return done.returncode == 0


def test_init_writes_the_layout_ignores_data_and_inits_git(tmp_path: Path) -> None:
    root = tmp_path / "Churn Model"
    out = runner.invoke(app, ["init", str(root)])
    assert out.exit_code == 0, out.output

    for rel in ("data/raw", "data/processed", "notebooks", "models", "reports/figures"):
        assert (root / rel).is_dir(), rel
    assert (root / "src/churn_model/__init__.py").is_file()
    assert find_repo_root(root) == root.resolve()  # a git repository
    (root / "data/raw/train.csv").write_text("a\n1\n", encoding="utf-8")
    assert _ignored(root, "data/raw/train.csv") and gitignore.is_ignored(root, "data/raw")
    assert not _ignored(root, "notebooks/explore.ipynb")
    assert not _ignored(root, "src/churn_model/__init__.py")
    assert LockFile.load(root).projects() == []  # a valid, empty lock file
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".aletheia/datasets.lock" in status and "data/" not in status
    assert 'name = "churn-model"' in (root / "pyproject.toml").read_text(encoding="utf-8")


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "README.md").write_text("mine\n", encoding="utf-8")
    (root / ".gitignore").write_text("*.log", encoding="utf-8")

    refused = runner.invoke(app, ["init", str(root)])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert sorted(p.name for p in root.iterdir()) == [".gitignore", "README.md"]  # untouched

    forced = runner.invoke(app, ["init", str(root), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (root / "README.md").read_text(encoding="utf-8") == "mine\n"  # kept
    lines = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "*.log" and "/data/" in lines  # completed, not replaced
    assert (root / "notebooks").is_dir() and (root / ".git").is_dir()

    unknown = runner.invoke(app, ["init", str(tmp_path / "other"), "--template", "web"])
    assert unknown.exit_code == 2 and "unknown template" in unknown.output
    assert not (tmp_path / "other").exists()


def test_init_writes_the_repository_config_with_the_project_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Churn Model"
    out = runner.invoke(app, ["init", str(root)])
    assert out.exit_code == 0, out.output
    assert "churn-model" in out.output
    text = (root / ".aletheia/config.toml").read_text(encoding="utf-8")
    assert 'project = "churn-model"' in text
    assert "bucket" in text and "~/.config/aletheia/config.toml" in text  # says what it may not set
    assert ".aletheia/config.toml" in (root / "README.md").read_text(encoding="utf-8")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".aletheia/config.toml" in status  # committed with the code, not ignored

    monkeypatch.chdir(root / "notebooks")  # anywhere in the repository
    env = {"ALETHEIA_STACK_DIR": str(tmp_path / "no-stack")}
    resolved = config.resolve(env=env, config_file=tmp_path / "none.toml")
    assert resolved.project == "churn-model"
    assert resolved.sources["project"] == f"repo {root / '.aletheia/config.toml'}"

    named = tmp_path / "other"
    out = runner.invoke(app, ["init", str(named), "--project", "Vision Team"])
    assert out.exit_code == 0, out.output
    monkeypatch.chdir(named)
    assert config.resolve(env=env, config_file=tmp_path / "none.toml").project == "Vision Team"

    bad = runner.invoke(app, ["init", str(tmp_path / "bad"), "--project", "a/b"])
    assert bad.exit_code != 0 and "project name" in bad.output
    assert not (tmp_path / "bad").exists()  # refused before anything is written
