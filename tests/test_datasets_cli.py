"""The ``aletheia datasets`` commands, a git branch workflow and concurrent adders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_datasets import make_tree, sha
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import layout
from aletheia.errors import ValidationError

from helpers import wait_for_document

runner = CliRunner()
P = "cli"


def cli(*args: str) -> dict | list:
    result = runner.invoke(app, ["datasets", *args, "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_add_list_versions_show_diff_pull_rm(stack, db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git repo: nothing is pinned
    data = make_tree(tmp_path / "d", {"a.csv": b"x,y\n1,2\n", "b.csv": b"x,y\n3,4\n"})
    added = cli("add", "iris", str(data), "--desc", "flowers", "--source", "uci")
    assert added["version"] == "v1" and added["created"] and added["lock_file"] is None
    phases = {"scan", "transfer", "hash", "upload", "documents", "total"}  # no HEAD: small files
    assert set(added["seconds"]) == phases
    unchanged = cli("add", "iris", str(data))
    assert unchanged["created"] is False and set(unchanged["seconds"]) == {"scan", "total"}

    make_tree(data, {"b.csv": b"x,y\n3,5\n", "c.csv": b"x,y\n"})
    assert cli("add", "iris", str(data))["version"] == "v2"

    (listed,) = cli("list")
    assert (listed["name"], listed["latest_version"], listed["desc"]) == ("iris", "v2", "flowers")
    assert [v["version"] for v in cli("versions", "iris")] == ["v1", "v2"]

    # schema/stats written by the real storage function show up
    digest = sha(b"x,y\n1,2\n")
    wait_for_document(
        db,
        layout.file(P, digest),
        lambda doc: doc.get("status") == "done",
        what="the storage function's analysis of a.csv",
    )
    shown = cli("show", "iris", "--version", "v1")
    by_path = {f["path"]: f for f in shown["files"]}
    assert by_path["a.csv"]["status"] == "done"
    assert by_path["a.csv"]["schema"] == "2 columns, 1 rows"
    assert shown["version"] == "v1" and shown["source"] == "uci"

    d = cli("diff", "iris", "v1", "v2")
    assert [e["path"] for e in d["added"]] == ["c.csv"]
    assert [c["path"] for c in d["changed"]] == ["b.csv"] and d["removed"] == []
    text = runner.invoke(app, ["datasets", "diff", "iris", "v1", "v2", "-p", P])
    assert "+ c.csv" in text.stdout and "~ b.csv" in text.stdout

    pulled = cli("pull", "iris", "--version", "v1", "--to", str(tmp_path / "out"))
    assert (tmp_path / "out" / "b.csv").read_bytes() == b"x,y\n3,4\n"
    assert pulled["version"] == "v1"

    removed = cli("rm", "iris", "--version", "v2")
    assert removed["latest_version"] == "v1" and removed["blobs_deleted"] >= 2
    assert [v["version"] for v in cli("versions", "iris")] == ["v1"]


def test_errors_exit_with_code_and_hint(stack, tmp_path):
    bad = runner.invoke(app, ["datasets", "add", "a/b", str(tmp_path), "-p", P])
    assert bad.exit_code == 2 and "invalid dataset name" in bad.output
    missing = runner.invoke(app, ["datasets", "add", "ok", str(tmp_path / "nope"), "-p", P])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unknown = runner.invoke(app, ["datasets", "pull", "ghost", "-p", P])
    assert unknown.exit_code == 5 and "hint" in unknown.output


def test_an_error_keeps_a_long_path_on_one_line(stack, tmp_path, monkeypatch):
    # Output that is not a terminal (a log, a pipe, CI) was broken at the width rich
    # assumes for it, inside the path the user needs to copy.
    monkeypatch.setenv("COLUMNS", "80")
    missing = tmp_path.joinpath("a-directory-with-a-long-name", "and-another-one", "nope")
    done = runner.invoke(app, ["datasets", "add", "ok", str(missing), "-p", P])
    assert done.exit_code == 2
    assert f"error: {missing} does not exist" in done.output.splitlines()


def test_branches_pin_their_own_versions(stack, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    monkeypatch.chdir(repo)
    data = make_tree(tmp_path / "data", {"labels.csv": b"main labels\n"})

    assert cli("add", "labels", str(data))["version"] == "v1"
    lock = repo / ".aletheia" / "datasets.lock"
    assert json.loads(lock.read_text())["projects"][P]["labels"]["version"] == "v1"
    git(repo, "add", ".aletheia/datasets.lock")
    git(repo, "commit", "-q", "-m", "pin labels v1")

    git(repo, "checkout", "-q", "-b", "relabel")
    make_tree(data, {"labels.csv": b"relabelled\n"})
    assert cli("add", "labels", str(data))["version"] == "v2"
    git(repo, "commit", "-q", "-am", "pin labels v2")

    out = tmp_path / "work"
    git(repo, "checkout", "-q", "main")
    assert cli("pull", "labels", "--to", str(out))["version"] == "v1"
    assert (out / "labels.csv").read_bytes() == b"main labels\n"
    git(repo, "checkout", "-q", "relabel")
    assert cli("pull", "labels", "--to", str(out))["version"] == "v2"
    assert (out / "labels.csv").read_bytes() == b"relabelled\n"
    # outside any pin the latest version wins
    with_no_lock = cli("add", "labels", str(data), "--no-lock")
    assert with_no_lock["lock_file"] is None


def test_two_processes_adding_the_same_data_make_one_version(stack, gcs, tmp_path):
    files = {f"f{i}.bin": os.urandom(50_000) for i in range(40)}
    data = make_tree(tmp_path / "data", files)
    procs = []
    for k in range(2):
        env = {**os.environ, "ALETHEIA_CACHE_DIR": str(tmp_path / f"cache{k}")}
        procs.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "aletheia"),
                    "datasets",
                    "add",
                    "same",
                    str(data),
                    "-p",
                    P,
                    "--json",
                    "--no-lock",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=tmp_path,
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert {r["version"] for r in results} == {"v1"}
    assert sorted(r["created"] for r in results) == [False, True]
    names = [b.name for b in gcs.bucket(stack.bucket).list_blobs(prefix=f"{P}/")]
    assert len(names) == len(set(names)) == 41  # 40 files + 1 manifest
    assert sum(r["files_uploaded"] for r in results) >= 40


@pytest.fixture(autouse=True)
def _no_colour(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def test_unreadable_file_is_a_clear_error_and_registers_nothing(stack, db):
    # Root reads everything, so as root the add runs as an unprivileged user (nobody, through
    # util-linux's setpriv); any other user already cannot read a 0o000 file.
    base = Path(tempfile.mkdtemp(prefix="aletheia-unreadable-"))
    try:
        base.chmod(0o777)
        data = make_tree(base / "d", {"a.csv": b"x\n1\n", "secret.csv": b"x\n2\n"})
        for path in (base / "d", data / "a.csv"):
            path.chmod(0o755)
        (data / "secret.csv").chmod(0o000)
        env = {
            **os.environ,
            "HOME": str(base),
            "ALETHEIA_CACHE_DIR": str(base / "cache"),
            "ALETHEIA_CONFIG": str(base / "config.toml"),
            "ALETHEIA_STACK_DIR": str(base / "stack"),  # hosts come from the environment
        }
        aletheia = str(Path(sys.executable).parent / "aletheia")
        as_root = os.geteuid() == 0
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_root else []
        result = subprocess.run(
            [*nobody, aletheia, "datasets", "add", "locked", str(data), "-p", P, "--no-lock"],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == ValidationError.exit_code, result.stderr
        assert "secret.csv: permission denied" in result.stderr
        assert "hint:" in result.stderr
        assert not db.document(layout.dataset(P, "locked")).get().exists
        assert list(db.collection(layout.dataset_versions(P, "locked")).stream()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_unchanged_readd_loads_no_data_library(stack, tmp_path, monkeypatch):
    """An unchanged re-add is a stat per file and two reads: the start-up of the CLI is most
    of it, so it must not load the profiler's or the statistics' libraries."""
    from test_startup import _heavy_loaded

    monkeypatch.chdir(tmp_path)
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n", "b.bin": b"\x00\x01"})
    assert cli("add", "light", str(data))["created"]
    code = (
        f"sys.argv = ['aletheia', 'datasets', 'add', 'light', {str(data)!r}, '-p', {P!r}, "
        "'--no-lock', '--json']\n"
        "from aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert _heavy_loaded(code, ("pyarrow", "numpy", "duckdb", "pandas")) == []


def test_verbose_add_says_where_the_time_went(stack, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n", "big.bin": os.urandom(1 << 20)})
    args = ["datasets", "add", "timed", str(data), "-p", P, "--no-lock"]
    quiet = runner.invoke(app, args)
    assert quiet.exit_code == 0, quiet.output
    assert "hash" not in quiet.output  # the phases only when asked for
    make_tree(data, {"a.csv": b"x\n2\n"})
    loud = runner.invoke(app, [*args, "--verbose"])
    assert loud.exit_code == 0, loud.output
    text = " ".join(loud.output.split())
    for phase in ("scan", "hash+upload", "hash", "upload", "documents", "total"):
        assert f"{phase} " in text, phase
