"""An unchanged re-add answered on this machine: no cloud client imported, nothing asked.

Each re-add runs the real CLI in a fresh interpreter against the real stack
and reports which client modules it loaded: a process that never imported
the Firestore, Cloud Storage, gRPC or HTTP client cannot have sent a request.
Whatever would write (a change, ``--verify``, a lock pin to add, a removed
version) must take the full add, which loads them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from test_datasets import make_tree, store_for
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.data.addrecords import ADDS_FILE, Added, AddRecords, target_of

from helpers import count_documents_read, git

runner = CliRunner()
P = "quick"
#: Modules (and everything under them) a process talking to the cloud loads.
CLIENTS = (
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.api_core",
    "google.auth",
    "grpc",
    "requests",
)


def cli(*args: str) -> dict:
    result = runner.invoke(app, ["datasets", *args, "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def add_in_new_process(cwd: Path, *args: str) -> tuple[dict, list[str]]:
    """``aletheia datasets add ARGS -p P --json`` in a fresh interpreter: (its output, the client
    modules it loaded)."""
    probe = (
        "import atexit, json, sys\n"
        f"clients = {CLIENTS!r}\n"
        "atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules if m in clients "
        "or m.startswith(tuple(c + '.' for c in clients))))))\n"
        f"sys.argv = ['aletheia', 'datasets', 'add', *{list(args)!r}, '-p', {P!r}, '--json']\n"
        "from aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads("\n".join(lines[:-1])), json.loads(lines[-1])


def test_unchanged_readd_loads_no_client_and_says_it_checked_locally(stack, tmp_path):
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n", "sub/b.bin": b"\x00\x01"})
    first, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert first["created"] and first["checked"] == "server"
    assert "google.cloud.firestore" in loaded  # the probe sees a client when there is one

    again, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert loaded == []
    assert (again["version"], again["created"], again["checked"]) == ("v1", False, "local")
    assert (again["file_count"], again["total_bytes"]) == (2, 6)
    assert again["files_uploaded"] == 0 and again["bytes_hashed"] == 0

    human = runner.invoke(app, ["datasets", "add", "q", str(data), "-p", P, "--no-lock"])
    assert human.exit_code == 0, human.output
    text = " ".join(human.output.split())
    assert "unchanged: v1" in text and "not re-checked with the server; --verify" in text


def test_verify_and_any_change_ask_the_server(stack, tmp_path):
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n", "b.csv": b"x\n2\n"})
    assert cli("add", "q", str(data), "--no-lock")["created"]

    verified, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock", "--verify")
    assert "google.cloud.firestore" in loaded
    assert (verified["version"], verified["created"]) == ("v1", False)
    assert verified["checked"] == "server"

    make_tree(data, {"b.csv": b"x\n3\n"})  # same size, dated in the past: only the memo can tell
    changed, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert "google.cloud.firestore" in loaded
    assert (changed["version"], changed["created"]) == ("v2", True)

    make_tree(data, {"c.csv": b"x\n"})  # a file more
    more, _ = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert (more["version"], more["created"]) == ("v3", True)

    # An option that writes takes the full add even on unchanged data.
    described, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock", "--desc", "d")
    assert "google.cloud.firestore" in loaded and described["checked"] == "server"


def test_a_file_written_just_now_is_never_answered_locally(stack, tmp_path):
    """The stat memo's racy-timestamp rule holds: a fresh file is hashed, so the server is asked."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.csv").write_bytes(b"x\n1\n")  # mtime now: not memoised
    assert cli("add", "q", str(data), "--no-lock")["created"]
    again, loaded = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert again["checked"] == "server" and "google.cloud.firestore" in loaded


def test_removing_the_version_drops_the_local_answer(stack, tmp_path):
    """After ``datasets rm`` of the version a path was added as, re-adding it makes a version
    again instead of naming the removed one."""
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n"})
    assert cli("add", "q", str(data), "--no-lock")["version"] == "v1"
    other = make_tree(tmp_path / "e", {"a.csv": b"x\n2\n"})
    assert cli("add", "q", str(other), "--no-lock")["version"] == "v2"
    cli("rm", "q", "--version", "v1")

    again, _ = add_in_new_process(tmp_path, "q", str(data), "--no-lock")
    assert (again["created"], again["checked"]) == (True, "server")
    assert again["version"] == "v3"  # a removed number is never reused
    still, loaded = add_in_new_process(tmp_path, "q", str(other), "--no-lock")
    assert (still["version"], still["checked"], loaded) == ("v2", "local", [])


def test_in_a_repository_only_an_unchanged_pin_is_answered_locally(stack, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    data = make_tree(repo / "data", {"a.csv": b"x\n1\n"})
    first, _ = add_in_new_process(repo, "q", "data")
    assert first["created"] and first["lock_file"]
    again, loaded = add_in_new_process(repo, "q", "data")
    assert (again["version"], again["checked"], loaded) == ("v1", "local", [])

    lock = Path(first["lock_file"])
    lock.unlink()  # the pin is gone: the add must write it again
    repinned, loaded = add_in_new_process(repo, "q", "data")
    assert repinned["checked"] == "server" and "google.cloud.firestore" in loaded
    assert json.loads(lock.read_text())["projects"][P]["q"]["version"] == "v1"
    assert data.is_dir()


def test_a_record_answers_only_for_its_own_target_project_and_dataset(tmp_path):
    records = AddRecords(tmp_path / ADDS_FILE)
    assert records.get("t", P, "q", tmp_path) is None  # no file yet
    records.record("t", P, "q", tmp_path, Added("v1", "d" * 64, None, 1, 2))
    assert records.get("t", P, "q", tmp_path) == Added("v1", "d" * 64, None, 1, 2)
    for target, project, name in (("u", P, "q"), ("t", "other", "q"), ("t", P, "r")):
        assert records.get(target, project, name, tmp_path) is None
    records.forget_version("t", P, "q", "v1")
    assert records.get("t", P, "q", tmp_path) is None


def test_the_target_names_the_stack_and_the_bucket(settings):
    assert target_of(settings) == target_of(replace(settings, project="another"))
    for other in (
        replace(settings, bucket=settings.bucket + "-2"),
        replace(settings, firestore_emulator_host="127.0.0.1:1"),
        replace(settings, cloud_project="elsewhere"),
    ):
        assert target_of(other) != target_of(settings)


def test_the_full_unchanged_readd_reads_the_same_few_documents_whatever_the_file_count(
    stack, db, gcs, cache_dir, tmp_path
):
    """``--verify`` (or a re-add from another machine's memo) asks the server: per file it is
    one stat and a memo row, never a document, a request to the bucket or a hash."""
    store = store_for(db, gcs, stack, cache_dir, workdir=tmp_path)
    counts = {}
    for n in (3, 300):
        data = make_tree(tmp_path / f"d{n}", {f"p{i % 7}/f{i}.bin": b"%d" % i for i in range(n)})
        assert store.add(f"n{n}", data).created
        before = store.blobs.stats.snapshot()
        with count_documents_read(db) as reads:
            again = store.add(f"n{n}", data)
        assert (again.created, again.checked, again.bytes_hashed) == (False, "server", 0)
        assert store.blobs.stats.snapshot() == before  # no HEAD, no upload
        counts[n] = reads["run_query"] + reads["batch_get_documents"] + reads["get_document"]
    assert counts[300] == counts[3] <= 3, counts
