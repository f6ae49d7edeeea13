"""The dashboard's model registry pages in a real browser (Chromium + Playwright, the local
stack with the Auth emulator, firestore.rules enforced): a project's models with their
aliases and latest version, a model's versions, a version's lineage (run, dataset versions,
commit, params, metrics) and, from a dataset version, the models trained on it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from google.cloud import firestore, storage
from playwright.sync_api import Page, expect
from test_webui import _csv, as_owner, reads, sign_in, sign_up

from aletheia.cloud import config, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.tracking.metastore import Metastore

# The fixtures of the dashboard's browser tests (pytest finds them in this module's namespace).
from test_webui import browser, page, ui_url, web  # noqa: F401  isort: skip

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def _repo(path: Path) -> tuple[Path, str]:
    """A real git repository with one commit; its path and commit id."""
    path.mkdir()
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "train"]):
        if args[0] == "add":
            (path / "train.py").write_text("print('train')\n", encoding="utf-8")
        subprocess.run(["git", "-C", str(path), *args], check=True, env=GIT_ENV)
    commit = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
        env=GIT_ENV,
    ).stdout.strip()
    return path, commit


def test_models_pages_show_versions_aliases_and_lineage_both_ways(
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
    v1 = store.add("clicks", _csv(tmp_path / "d1", seed=1)).version
    v2 = store.add("clicks", _csv(tmp_path / "d2", seed=2, shift=1.0)).version
    repo, commit = _repo(tmp_path / "code")
    ms = Metastore("vision", settings=as_owner(web, uid))
    exper = ms.exper("train", git_policy="warn")
    with exper.start_run(repo_path=repo) as first:
        first.record_dataset("clicks", v1)
        first.set_params({"depth": 3})
        first.set_hyper_params({"lr": 0.1})
        first.add_metric("acc", 0.81)
        first.log_model("clf", {"weights": [1, 2]})
    with exper.start_run(repo_path=repo) as second:
        second.record_dataset("clicks", v2)
        second.set_params({"depth": 5})
        second.set_hyper_params({"lr": 0.01})
        second.add_metric("acc", 0.93)
        second.log_model("clf", {"weights": [3, 4]})
    ms.model("clf").set_alias("champion", 2)
    ms.model("clf").set_alias("baseline", 1)
    sign_in(page, ui_url, "ana@example.com")

    # The project lists the model with its aliases and latest version.
    page.goto(f"{ui_url}#/p/vision")
    row = page.locator("table[data-testid=models] tr[data-model=clf]")
    expect(row.locator("td[data-col=latest]")).to_have_text("v2")
    expect(row.locator("td[data-col=aliases]")).to_have_text("baseline → v1, champion → v2")

    # The model page: its versions, newest first, each with its aliases and run.
    row.locator("[data-testid=model-link]").click()
    versions = page.locator("table[data-testid=model-versions] tr[data-version]")
    expect(versions).to_have_count(2)
    assert versions.evaluate_all("rows => rows.map(r => r.dataset.version)") == ["2", "1"]
    expect(versions.nth(0).locator("td[data-col=aliases]")).to_have_text("champion")
    expect(versions.nth(1).locator("td[data-col=aliases]")).to_have_text("baseline")
    assert reads(page) == 1 + 2  # the model document and its two versions

    # A version: its run (a link to the run page), its data (links), commit, params, metrics.
    versions.nth(1).locator("[data-testid=version-link]").click()
    expect(page.locator("h1")).to_have_text("clf v1")
    expect(page.locator("[data-testid=version-git]")).to_contain_text(commit)
    expect(page.locator("[data-testid=version-params]")).to_contain_text("depth")
    expect(page.locator("[data-testid=version-params] td")).to_have_text(["3"])
    expect(page.locator("[data-testid=version-hyper-params] td")).to_have_text(["0.1"])
    expect(page.locator("[data-testid=version-metrics] td")).to_have_text(["0.81"])
    expect(page.locator("[data-testid=version-datasets] a")).to_have_text([f"clicks@{v1}"])
    assert reads(page) == 2  # the model (its aliases) and the version
    run_link = page.locator("[data-testid=version-run] a")
    expect(run_link).to_have_text(f"train / run {first.id}")
    run_link.click()
    expect(page.locator("[data-testid=run-status]")).to_have_text("finished")
    expect(page.locator("h1")).to_have_text(f"Run {first.id}")

    # From the data side: the dataset version v1 lists the model version trained on it.
    page.go_back()
    page.locator("[data-testid=version-datasets] a").click()
    trained = page.locator("[data-testid=trained-models]")
    expect(trained).to_contain_text(f"clf v1 from train / run {first.id}")
    expect(trained).not_to_contain_text("clf v2")
    trained.locator("a").first.click()
    expect(page.locator("h1")).to_have_text("clf v1")
    page.goto(f"{ui_url}#/p/vision/d/clicks?v={v2}")
    expect(page.locator("[data-testid=trained-models]")).to_contain_text(
        f"clf v2 from train / run {second.id}"
    )


def test_an_outsider_cannot_open_a_model_by_url(
    web: config.Settings,  # noqa: F811
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
) -> None:
    bo = sign_up(web, "bo@example.com")
    sign_up(web, "ana@example.com")
    ms = Metastore("secret", settings=as_owner(web, bo))
    with ms.exper("train", git_policy="off").start_run() as run:
        run.log_model("clf", {"w": 1})
    sign_in(page, ui_url, "ana@example.com")
    for route in ("#/p/secret/m/clf", "#/p/secret/m/clf/v/1"):
        page.goto(ui_url + route)
        expect(page.locator("[data-testid=error]").first).to_contain_text("not a member")
    expect(page.locator("body")).not_to_contain_text("weights")
