"""The dashboard's dataset page shows the statistics of whichever version is chosen, not
only the latest: a real browser against the local stack, files profiled by the storage
function.
"""

from __future__ import annotations

from pathlib import Path

from google.cloud import firestore, storage
from playwright.sync_api import Page, expect
from test_webui import _csv, reads, sign_in, sign_up

from aletheia.cloud import config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore

from helpers import wait_for_document

# The fixtures of the dashboard's browser tests (pytest finds them in this module's namespace).
from test_webui import browser, page, ui_url, web  # noqa: F401  isort: skip


def _js_number(value: float) -> str:
    """How the page prints a mean: four significant digits (ui.ts fmt)."""
    return repr(float(f"{value:.4g}")).removesuffix(".0")


def test_every_dataset_version_shows_its_own_statistics(
    web: config.Settings,  # noqa: F811
    db: firestore.Client,
    gcs: storage.Client,
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    uid = sign_up(web, "ana@example.com")
    members.create_project(db, "vision", uid)
    store = DatasetStore(db, BlobStore(gcs, web.bucket, "vision"), LocalCache(cache_dir), "vision")
    old = store.add("clicks", _csv(tmp_path / "v1", seed=1)).version
    new = store.add("clicks", _csv(tmp_path / "v2", seed=3, shift=6.0, extra=True)).version
    shas = {}
    for version in (old, new):
        doc = db.document(layout.dataset_version("vision", "clicks", version)).get().to_dict()
        assert doc is not None
        (listed,) = doc["files_listed"]
        assert listed["path"] == "train.csv"
        shas[version] = listed["sha256"]
    assert shas[old] != shas[new]
    profiles = {
        v: wait_for_document(
            db,
            layout.file("vision", sha),
            lambda d: d.get("status") == "done",
            what=f"the profile of {v}'s train.csv",
        )
        for v, sha in shas.items()
    }
    old_mean = next(c["mean"] for c in profiles[old]["stats"]["columns"] if c["name"] == "age")
    sign_in(page, ui_url, "ana@example.com")

    # The older version: its own file (by content), its own columns and mean.
    page.goto(f"{ui_url}#/p/vision/d/clicks?v={old}")
    stats = page.locator("[data-testid=file-stats][data-path='train.csv']")
    expect(stats).to_have_attribute("data-sha", shas[old])
    age = stats.locator("tr[data-column=age]")
    expect(age.locator("svg.histogram rect").first).to_be_attached()
    expect(age.locator("td").nth(7)).to_have_text(_js_number(old_mean))
    expect(stats.locator("tr[data-column=score]")).to_have_count(0)  # added in the next one
    # dataset + 2 versions + no lineage run + no model (an empty query is one read each)
    # + the Files document of its one file
    assert reads(page) == 1 + 2 + 1 + 1 + 1

    # The latest: its own file and the column it added.
    page.goto(f"{ui_url}#/p/vision/d/clicks?v={new}")
    expect(stats).to_have_attribute("data-sha", shas[new])
    expect(stats.locator("tr[data-column=score]")).to_have_count(1)
