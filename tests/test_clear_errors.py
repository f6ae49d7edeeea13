"""Damaged or wrong input gets an AletheiaError saying what to do, never a traceback.

Each case is driven as a user meets it: the CLI in a subprocess (what a
shell shows: exit code, stderr) and the library from a real script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_datasets import PROJECT, make_tree, sha, store_for

from aletheia.cloud import config, layout
from aletheia.data.datasets import DatasetStore
from aletheia.errors import ConfigError, IntegrityError

CLI = [str(Path(sys.executable).parent / "aletheia")]


def aletheia(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, with extra environment variables."""
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clear(result: subprocess.CompletedProcess, exit_code: int, *words: str) -> None:
    """An error line and a hint, the error's exit code, and no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == exit_code, output
    assert "error:" in result.stderr and "hint:" in result.stderr, output
    flat = " ".join(result.stderr.split())
    for word in words:
        assert word in flat, output


@pytest.fixture()
def store(stack, db, gcs, cache_dir, tmp_path) -> DatasetStore:
    return store_for(db, gcs, stack, cache_dir, workdir=tmp_path)


# --------------------------------------------------------------------------- lock file


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([{"version": "v1"}], "unknown lock file format"),
        ({"format": 1, "projects": ["p1"]}, "'projects' must be an object"),
        ({"format": 1, "projects": {PROJECT: ["ds"]}}, f"project '{PROJECT}' must be"),
        ({"format": 1, "projects": {PROJECT: "ds"}}, f"project '{PROJECT}' must be"),
        ({"format": 1, "projects": {PROJECT: {"ds": "v1"}}}, f"bad pin for {PROJECT}/ds"),
        (
            {"format": 1, "projects": {PROJECT: {"ds": {"version": "v1", "path": ["a"]}}}},
            f"{PROJECT}/ds path must be a string",
        ),
        (
            {"format": 1, "projects": {PROJECT: {"ds": {"version": "v1", "manifest_sha256": 5}}}},
            f"{PROJECT}/ds manifest_sha256 must be a string",
        ),
    ],
)
def test_a_lock_file_of_the_wrong_shape_is_named_not_a_traceback(stack, tmp_path, body, named):
    repo = tmp_path / "repo"
    (repo / ".aletheia").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    lock = repo / ".aletheia" / "datasets.lock"
    lock.write_text(json.dumps(body))

    result = aletheia("datasets", "pull", "-p", PROJECT, cwd=repo)

    assert_clear(result, ConfigError.exit_code, "datasets.lock", named)
    assert json.loads(lock.read_text()) == body  # nothing rewritten


# --------------------------------------------------------------------------- config file


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('stack_dir = ["a"]', "stack_dir"),
        ("project = 5", "project"),
        ("cache_dir = { path = '/tmp' }", "cache_dir"),
        ("git_policy = true", "git_policy"),
    ],
)
def test_a_wrongly_typed_setting_names_the_file_and_key(stack, tmp_path, line, key):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[aletheia]\n{line}\n")

    result = aletheia("config", ALETHEIA_CONFIG=str(cfg))
    assert_clear(result, ConfigError.exit_code, str(cfg), f"'{key}'", "must be a string")

    with pytest.raises(ConfigError, match=f"'{key}' in .*config.toml must be a string"):
        config.resolve(config_file=cfg)


# --------------------------------------------------------------------------- bucket


def test_a_missing_bucket_is_named_before_any_document_is_written(stack, db, tmp_path):
    data = make_tree(tmp_path / "data", {"a.csv": b"x\n1\n"})

    result = aletheia("datasets", "add", "ds", str(data), "-p", PROJECT, ALETHEIA_BUCKET="nope")

    assert_clear(
        result, ConfigError.exit_code, "bucket 'nope'", "from env ALETHEIA_BUCKET", "terraform"
    )
    assert not db.document(layout.project(PROJECT)).get().exists
    assert list(db.document(layout.project(PROJECT)).collections()) == []

    script = tmp_path / "train.py"
    script.write_text(
        "from aletheia import Metastore\n"
        f"ms = Metastore({PROJECT!r})\n"
        "with ms.exper('e', git_policy='off').start_run() as run:\n"
        "    run.log_metrics({'loss': 1.0})\n"
    )
    trained = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "ALETHEIA_BUCKET": "nope"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode != 0
    assert "aletheia.errors.ConfigError: Cloud Storage bucket 'nope' does not exist" in (
        trained.stderr
    )
    assert list(db.collection_group("Runs").stream()) == []
    assert list(db.document(layout.project(PROJECT)).collections()) == []


# --------------------------------------------------------------------------- project id


def test_a_stray_google_cloud_project_does_not_move_local_writes(stack, db, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "from aletheia import Metastore\n"
        f"ms = Metastore({PROJECT!r})\n"
        "for _ in range(2):  # every client resolves settings; the warning comes once\n"
        "    with ms.exper('e', git_policy='off').start_run() as run:\n"
        "        run.log_metrics({'loss': 1.0})\n"
        "    Metastore(" + repr(PROJECT) + ").settings\n"
    )
    trained = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "GOOGLE_CLOUD_PROJECT": "my-real-proj"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    runs = list(db.collection_group("Runs").stream())  # the stack's project
    assert len(runs) == 2
    assert trained.stderr.count("'my-real-proj'") == 1, trained.stderr
    assert f"'{stack.cloud_project}'" in trained.stderr

    shown = aletheia("config", GOOGLE_CLOUD_PROJECT="my-real-proj")
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert "warning:" in flat and "'my-real-proj'" in flat and stack.cloud_project in flat


# --------------------------------------------------------------------------- manifests

DAMAGED = {
    "files as a string": (b'{"format":1,"files":"a.csv"}', "'files' is a str"),
    "not JSON": (b"\x89PNG\r\n\x1a\n not a manifest", "not JSON"),
    "a file and a directory": (
        json.dumps(
            {"format": 1, "files": [["a", sha(b"1"), 1], ["a/b", sha(b"2"), 1]]},
            separators=(",", ":"),
        ).encode(),
        "'a' is a file and also the directory of 'a/b'",
    ),
    "a path leaving the root": (
        json.dumps({"format": 1, "files": [["../x", sha(b"1"), 1]]}).encode(),
        "escapes its root",
    ),
}


def _damage(store: DatasetStore, db, version: str, body: bytes) -> None:
    """Point a version at a stored blob that is not a manifest aletheia would write."""
    info = store.blobs.put_bytes(body)
    db.document(layout.dataset_version(PROJECT, "ds", version)).update(
        {"manifest_sha256": info.sha256}
    )


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_manifest_is_named_and_rm_still_works(store, db, tmp_path, case):
    body, problem = DAMAGED[case]
    data = make_tree(tmp_path / "data", {"a.csv": b"x\n1\n"})
    store.add("ds", data)  # v1
    make_tree(data, {"b.csv": b"y\n2\n"})
    store.add("ds", data)  # v2
    make_tree(data, {"c.csv": b"z\n3\n"})
    store.add("ds", data)  # v3
    _damage(store, db, "v1", body)

    # Reading the damaged version names it.
    pull = ["pull", "ds", "--version", "v1", "--to", str(tmp_path / "out")]
    for args in (["diff", "ds", "v1", "v2"], pull):
        result = aletheia("datasets", *args, "-p", PROJECT)
        assert_clear(result, IntegrityError.exit_code, "ds v1", problem)
    with pytest.raises(IntegrityError, match="ds v1 is damaged"):
        store.manifest("ds", "v1")

    # Removing another version still works, and keeps every blob v1 may list.
    result = aletheia("datasets", "rm", "ds", "--version", "v3", "-p", PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "damaged manifest(s): ds v1" in " ".join(result.stdout.split())
    assert store.blobs.exists(sha(b"z\n3\n"))  # v1 might list it: kept
    assert [v["version"] for v in store.versions("ds")] == ["v1", "v2"]
    assert store.info("ds")["latest_version"] == "v2"
    assert {d.id for d in db.collection(layout.dataset_files(PROJECT, "ds")).stream()} == {
        "a.csv",
        "b.csv",
    }

    # The damaged version itself: refused with the way out, removed with --force.
    refused = aletheia("datasets", "rm", "ds", "--version", "v1", "-p", PROJECT)
    assert_clear(refused, IntegrityError.exit_code, "ds v1", problem, "--force")
    assert [v["version"] for v in store.versions("ds")] == ["v1", "v2"]
    forced = aletheia("datasets", "rm", "ds", "--version", "v1", "--force", "-p", PROJECT)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert [v["version"] for v in store.versions("ds")] == ["v2"]
    assert store.blobs.exists(sha(b"x\n1\n")) and store.blobs.exists(sha(b"y\n2\n"))
    out = tmp_path / "pulled"
    handle = store.get("ds", "v2", to=out)
    assert sorted(e.path for e in handle.files) == ["a.csv", "b.csv"]
    assert (out / "a.csv").read_bytes() == b"x\n1\n"


def test_a_damaged_latest_version_can_be_removed_and_files_follow(store, db, tmp_path):
    data = make_tree(tmp_path / "data", {"a.csv": b"x\n1\n"})
    store.add("ds", data)  # v1
    make_tree(data, {"b.csv": b"y\n2\n"})
    store.add("ds", data)  # v2, latest: files/ shows a.csv and b.csv
    _damage(store, db, "v2", b'{"format":1,"files":"oops"}')

    with pytest.raises(IntegrityError, match="--force"):
        store.remove_version("ds", "v2")
    result = store.remove_version("ds", "v2", force=True)

    assert result.damaged == ["v2"] and result.latest_version == "v1"
    assert {d.id for d in db.collection(layout.dataset_files(PROJECT, "ds")).stream()} == {"a.csv"}
    assert store.blobs.exists(sha(b"y\n2\n"))  # which blobs only v2 held is unknown: kept
    assert sorted(store.manifest("ds", "v1")) == ["a.csv"]


# --------------------------------------------------------------------------- other state files


@pytest.mark.parametrize(
    "body",
    [
        {"format": 2, "projects": ["p1"]},
        {"format": 2, "projects": {PROJECT: ["ds"]}},
        {"format": 2, "projects": {PROJECT: {"ds": {"version": "v1", "files": "a.csv"}}}},
    ],
)
def test_a_damaged_pull_state_is_treated_as_absent(store, tmp_path, body):
    data = make_tree(tmp_path / "data", {"a.csv": b"x\n1\n"})
    store.add("ds", data)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".aletheia-pull.json").write_text(json.dumps(body))

    result = aletheia("datasets", "pull", "ds", "--to", str(out), "-p", PROJECT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "a.csv").read_bytes() == b"x\n1\n"


def test_a_damaged_stack_state_says_how_to_recover(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"parts": ["firestore"], "env": "x"}))

    result = aletheia("local", "status", "--stack-dir", str(tmp_path))

    assert_clear(result, ConfigError.exit_code, "state.json is damaged", "aletheia local up")
