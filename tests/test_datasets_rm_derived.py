"""``datasets rm`` deletes the row samples and profiles derived from the bytes it deletes.

The storage function (the real one, fed by the real event path) writes a
row sample and a full profile next to every data file it profiles; they
hold real rows and values. When ``rm`` deletes a data blob nothing else
references, they go with it, and the result counts them; while another
version still holds the bytes, they stay.
"""

from __future__ import annotations

import json

from test_datasets import make_tree, sha, store_for
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import layout

from helpers import wait_for_document

P = "p1"
runner = CliRunner()


def _profiled(db, digest: str) -> None:
    wait_for_document(
        db,
        layout.file(P, digest),
        lambda doc: doc.get("status") == "done",
        what=f"the function to profile {digest[:8]}",
    )


def test_rm_deletes_the_samples_and_profiles_of_deleted_data(
    stack, db, gcs, cache_dir, tmp_path, monkeypatch
):
    store = store_for(db, gcs, stack, cache_dir, workdir=tmp_path)
    shared = b"name,salary\nalice,100\nbob,200\n"
    only_v1 = b"name,salary\ncarol,300\n"
    store.add("people", make_tree(tmp_path / "v1", {"a.csv": shared, "b.csv": only_v1}))
    store.add("people", make_tree(tmp_path / "v2", {"a.csv": shared}))
    for digest in (sha(shared), sha(only_v1)):
        _profiled(db, digest)
    bucket = gcs.bucket(stack.bucket)

    def derived(digest: str) -> list[bool]:
        names = (layout.sample_blob_name(P, digest), layout.profile_blob_name(P, digest))
        return [bucket.blob(name).exists() for name in names]

    assert derived(sha(shared)) == derived(sha(only_v1)) == [True, True]

    first = store.remove_version("people", "v1")
    assert first.derived_deleted == 2  # b.csv's sample and profile, with b.csv
    assert derived(sha(only_v1)) == [False, False]
    assert derived(sha(shared)) == [True, True]  # v2 still holds a.csv

    monkeypatch.chdir(tmp_path)
    cli = runner.invoke(app, ["datasets", "rm", "people", "--version", "v2", "-p", P, "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["derived_deleted"] == 2
    assert derived(sha(shared)) == [False, False]
    leftovers = [b.name for b in bucket.list_blobs(prefix=f"{P}/")]
    assert leftovers == [], leftovers  # no orphan rows of removed data
