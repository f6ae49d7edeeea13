"""A dataset version's profile renders as HTML in a notebook (``_repr_html_``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from google.cloud import firestore
from test_datasets import make_tree, store_for

from aletheia.cloud import layout

from helpers import wait_for_document

CSV = b"id,<b>label</b>,score\n1,cat,0.5\n2,dog,1.5\n3,cat,\n"


def test_profile_shows_rows_and_column_stats_escaped(
    stack, db: firestore.Client, gcs, cache_dir: Path, tmp_path: Path
) -> None:
    store = store_for(db, gcs, stack, cache_dir, workdir=tmp_path)
    make_tree(tmp_path / "d", {"t.csv": CSV, "notes.bin": b"\x00\x01"})
    store.add("prof", tmp_path / "d")
    digest = hashlib.sha256(CSV).hexdigest()
    wait_for_document(
        db, layout.file(store.project, digest), lambda doc: doc.get("status") == "done"
    )
    profile = store.profile("prof")
    page = profile._repr_html_()
    assert "<h4>prof v1</h4>" in page
    assert "<b>t.csv</b> (" in page and "3 rows" in page
    assert "&lt;b&gt;label&lt;/b&gt;" in page and "<b>label</b>" not in page  # data is escaped
    files = {f["path"]: f for f in profile.to_dict()["files"]}
    score = next(c for c in files["t.csv"]["columns"] if c["name"] == "score")
    assert score["missing"] == 1 and score["mean"] == 1.0
    assert f"<td>{score['type']}</td><td>1</td>" in page
    assert files["notes.bin"]["columns"] is None  # not tabular: listed without stats
