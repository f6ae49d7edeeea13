"""A pulled workspace: aletheia's own files are never data, and a version's parent is
the version the workspace came from (versions form a tree), not simply the latest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_datasets import make_tree, sha, store_for

from aletheia.cloud import layout
from aletheia.data.datasets import DatasetStore
from aletheia.data.lockfile import LockFile
from aletheia.data.workspace import PULL_STATE
from aletheia.errors import ConflictError, NotFoundError, ValidationError
from aletheia.stats import versioncheck

from helpers import wait_for


@pytest.fixture()
def store(stack, db, gcs, cache_dir, tmp_path) -> DatasetStore:
    return store_for(db, gcs, stack, cache_dir, workdir=tmp_path)


def test_pull_then_add_without_an_edit_makes_no_version(store, tmp_path):
    data = make_tree(tmp_path / "d", {"a.csv": b"x\n1\n", "sub/b.csv": b"x\n2\n"})
    store.add("ds", data)
    work = tmp_path / "work"
    store.get("ds", "v1", to=work)
    assert (work / PULL_STATE).is_file()
    # What an interrupted pull or lock update leaves behind is aletheia's too.
    (work / ".a.csv.0badcafe.tmp").write_bytes(b"half a file")
    (work / ".aletheia").mkdir()
    (work / ".aletheia" / "datasets.lock").write_text("{}\n")

    again = store.add("ds", work)
    assert (again.version, again.created) == ("v1", False)
    assert sorted(store.manifest("ds", "v1")) == ["a.csv", "sub/b.csv"]

    # The pull state of a workspace nested in the added tree is not data either.
    nested = tmp_path / "outer"
    store.get("ds", "v1", to=nested / "inner")
    make_tree(nested, {"top.csv": b"x\n3\n"})
    result = store.add("other", nested)
    assert sorted(store.manifest("other", result.version)) == [
        "inner/a.csv",
        "inner/sub/b.csv",
        "top.csv",
    ]
    with pytest.raises(ValidationError, match="aletheia's own"):
        store.add("ds", work / PULL_STATE)


def _three_versions_v3_on_another_branch(store: DatasetStore, tmp_path: Path) -> None:
    """v1, v2 (main); v3 renames a column (a branch's change)."""
    rows = "".join(f"{i},{i % 7}\n" for i in range(200))
    main = make_tree(tmp_path / "main", {"a.csv": f"x,y\n{rows}".encode()})
    store.add("tree", main)
    make_tree(main, {"b.csv": b"k\n1\n"})
    store.add("tree", main)
    feat = make_tree(tmp_path / "feat", {"a.csv": f"x,z\n{rows}".encode(), "b.csv": b"k\n1\n"})
    assert store.add("tree", feat).version == "v3"


def test_parent_is_the_pulled_version_not_the_latest(store, tmp_path, db):
    _three_versions_v3_on_another_branch(store, tmp_path)
    work = tmp_path / "work"
    store.get("tree", "v2", to=work)
    make_tree(work, {"c.csv": b"k\n2\n"})  # the edit: one new file

    v4 = store.add("tree", work)
    assert (v4.version, v4.parent, v4.parent_from) == ("v4", "v2", "pull-state")
    assert v4.changes == {"added": 1, "removed": 0, "changed": 0}
    assert store.latest_version("tree")["version"] == "v4"  # latest stays latest by number
    assert {v["version"]: v["parent"] for v in store.versions("tree")} == {
        "v1": None,
        "v2": "v1",
        "v3": "v2",
        "v4": "v2",
    }
    # files/ (the latest manifest) shows v4, not v3 patched with v2 -> v4
    assert sorted(store.manifest("tree", "v4")) == ["a.csv", "b.csv", "c.csv"]
    shown = {
        d["path"]: d["sha256"]
        for d in (s.to_dict() for s in db.collection(layout.dataset_files("p1", "tree")).stream())
    }
    assert shown == {p: e.sha256 for p, e in store.manifest("tree", "v4").items()}

    # The workspace now holds v4: the next edit descends from it.
    make_tree(work, {"c.csv": b"k\n3\n"})
    v5 = store.add("tree", work)
    assert (v5.version, v5.parent) == ("v5", "v4")

    # No false anomalies: a.csv is compared with v2's a.csv (the same bytes),
    # never with v3's renamed column.
    v4 = db.document(layout.dataset_version("p1", "tree", "v4")).get().to_dict()
    validation = wait_for(
        lambda: versioncheck.compute(db, "p1", "tree", v4, store.manifest),
        what="the storage function's profiles of the files of v2 and v4",
    )
    assert validation["parent"] == "v2" and validation["ok"], validation


def test_parent_rule_explicit_then_pull_state_then_lock_pin_then_latest(
    store, tmp_path, stack, db, gcs
):
    _three_versions_v3_on_another_branch(store, tmp_path)
    work = tmp_path / "work"
    store.get("tree", "v2", to=work)
    make_tree(work, {"c.csv": b"k\n2\n"})
    explicit = store.add("tree", work, parent="v1")
    assert (explicit.parent, explicit.parent_from) == ("v1", "explicit")
    assert explicit.changes == {"added": 2, "removed": 0, "changed": 0}  # b.csv, c.csv vs v1
    with pytest.raises(NotFoundError):
        store.add("tree", work, parent="v99")

    # No pull state: the repository's pin of the dataset.
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    lock = LockFile.load(repo.resolve())
    lock.pin("p1", "tree", "v2", None)
    lock.save()
    in_repo = store_for(db, gcs, stack, store.cache.root, workdir=repo)
    loose = make_tree(tmp_path / "loose", {"a.csv": b"x,y\n1,2\n"})
    pinned = in_repo.add("tree", loose)
    assert (pinned.parent, pinned.parent_from) == ("v2", "lock")

    # Neither: the latest version.
    loose2 = make_tree(tmp_path / "loose2", {"a.csv": b"x,y\n5,6\n"})
    latest = store.add("tree", loose2)
    assert (latest.parent, latest.parent_from) == (pinned.version, "latest")


def test_unedited_pull_of_an_older_version_is_that_version(store, tmp_path):
    _three_versions_v3_on_another_branch(store, tmp_path)
    work = tmp_path / "work"
    store.get("tree", "v2", to=work)
    same = store.add("tree", work)
    assert (same.version, same.created) == ("v2", False)
    assert [v["version"] for v in store.versions("tree")] == ["v1", "v2", "v3"]
    assert sha(b"k\n1\n") in {e.sha256 for e in store.manifest("tree", "v2").values()}


def test_pull_never_overwrites_or_removes_local_edits_unless_forced(store, tmp_path):
    data = make_tree(tmp_path / "d", {"a.csv": b"a1\n", "b.csv": b"b1\n"})
    store.add("ds", data)
    (data / "b.csv").unlink()
    make_tree(data, {"a.csv": b"a2\n", "c.csv": b"c2\n"})
    assert store.add("ds", data).version == "v2"

    work = tmp_path / "work"
    store.get("ds", "v1", to=work)
    (work / "a.csv").write_bytes(b"my unsaved edit\n")  # v2 would overwrite it
    (work / "b.csv").write_bytes(b"edited too\n")  # v2 lacks it: it would be removed
    with pytest.raises(ConflictError, match=r"2 file\(s\).*a\.csv, b\.csv") as refused:
        store.get("ds", "v2", to=work)
    assert "--force" in str(refused.value)
    assert (work / "a.csv").read_bytes() == b"my unsaved edit\n"
    assert (work / "b.csv").read_bytes() == b"edited too\n"
    assert not (work / "c.csv").exists()  # refused before anything changed

    # Once saved as a version, the same pull goes ahead.
    saved = store.add("ds", work)
    assert (saved.version, saved.parent) == ("v3", "v1")
    store.get("ds", "v2", to=work)
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith(".")) == [
        "a.csv",
        "c.csv",
    ]

    # A file of the user's in a fresh directory is not overwritten either,
    # but bytes some version holds may be (they are in the bucket).
    fresh = make_tree(tmp_path / "fresh", {"a.csv": b"mine\n", "b.csv": b"a2\n"})
    with pytest.raises(ConflictError, match=r"1 file\(s\).*: a\.csv \("):
        store.get("ds", "v1", to=fresh)
    store.get("ds", "v1", to=fresh, force=True)
    assert (fresh / "a.csv").read_bytes() == b"a1\n" and (fresh / "b.csv").read_bytes() == b"b1\n"


def test_a_pull_state_of_the_old_format_still_cleans_up_and_is_upgraded(store, tmp_path):
    data = make_tree(tmp_path / "d", {"keep": b"k", "old": b"o"})
    store.add("ds", data)
    (data / "old").unlink()
    make_tree(data, {"new": b"n"})
    store.add("ds", data)
    out = tmp_path / "out"
    store.get("ds", "v1", to=out)
    (out / PULL_STATE).write_text(json.dumps(["keep", "old"]) + "\n")  # earlier releases' format
    store.get("ds", "v2", to=out)
    assert sorted(p.name for p in out.iterdir() if p.name != PULL_STATE) == ["keep", "new"]
    state = json.loads((out / PULL_STATE).read_text())
    assert state["projects"]["p1"]["ds"]["version"] == "v2"
    assert state["projects"]["p1"]["ds"]["files"] == ["keep", "new"]
