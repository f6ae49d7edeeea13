"""The web dashboard in a real browser: Debian's Chromium driven by Playwright, against the
session's local stack (Firestore emulator enforcing firestore.rules, the Firebase Auth
emulator, the storage function), served by ``aletheia ui``'s server.

Every wait is on the page's content (Playwright's auto-waiting assertions and
``wait_for_function``) with a generous ceiling; none is a fixed sleep. Each test saves a
screenshot of what it looked at under tests/screenshots/ (ignored by git).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import requests
from google.cloud import firestore, storage
from playwright.sync_api import Browser, Page, expect, sync_playwright
from test_rules import RULES_FILE, load_rules

from aletheia.cloud import auth, config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.tracking.metastore import Metastore
from aletheia.webui import server

from helpers import GENEROUS_S, wait_for_document

CHROMIUM = os.environ.get("ALETHEIA_CHROMIUM", "/usr/bin/chromium")
# Background networking and friends reach for Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery"
WAIT_MS = 60_000  # within pytest-timeout, so a failure shows what the page lacked
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser(stack_state: Any) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_url(settings: config.Settings) -> Iterator[str]:
    httpd: ThreadingHTTPServer = server.serve(settings)
    yield server.url_of(httpd)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def web(stack: config.Settings) -> config.Settings:
    """A wiped stack enforcing the repository's rules, with no users in the Auth emulator."""
    url = f"http://{stack.auth_emulator_host}/emulator/v1/projects/{stack.cloud_project}/accounts"
    requests.delete(url, timeout=30).raise_for_status()
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    return stack


@pytest.fixture()
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (nobody signed in); a screenshot of the last view is kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    SCREENSHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def sign_up(settings: config.Settings, email: str) -> str:
    """A user in the Auth emulator (as `aletheia auth login --create` makes one); its uid."""
    return auth.toolkit_for(settings).sign_up(email, PASSWORD).uid


def as_owner(settings: config.Settings, uid: str) -> config.Settings:
    """Server-credential settings whose new projects are owned by ``uid``."""
    return config.resolve({"identity": "server", "owner": uid})


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("[data-testid=user]")).to_have_text(email)


def reads(page: Page) -> int:
    return int(page.get_attribute("[data-testid=reads]", "data-reads") or "0")


def shown_runs(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "table[data-testid=runs] tr[data-run]", "rows => rows.map(r => r.dataset.run)"
    )


def column(page: Page, col: str) -> list[str]:
    return page.eval_on_selector_all(
        f"table[data-testid=runs] td[data-col='{col}']", "cells => cells.map(c => c.textContent)"
    )


# --------------------------------------------------------------------------- sign-in, membership


def test_register_sign_in_and_an_outsider_sees_no_project_of_others(
    web: config.Settings, page: Page, ui_url: str
) -> None:
    bo = sign_up(web, "bo@example.com")
    exper = Metastore("vision", settings=as_owner(web, bo)).exper("resnet", git_policy="off")
    with exper.start_run() as run:
        run.add_metric("loss", 0.5)

    # Ana registers in the browser: she is a member of nothing, so she sees nothing.
    page.goto(ui_url)
    page.fill("input[name=email]", "ana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("text=Register")
    expect(page.locator("[data-testid=no-projects]")).to_be_visible()
    assert reads(page) == 1  # an empty query is billed as one read
    # She starts a project of her own (the rules let her, as its only owner).
    page.fill("[data-testid=new-project]", "ana-lab")
    page.click("text=Create project")
    expect(page.locator("h1")).to_have_text("ana-lab")
    page.goto(ui_url + "#/")
    expect(page.locator("[data-testid=project-link]")).to_have_text(["ana-lab"])

    # Opening Bo's project, experiment or run by URL is refused by the rules.
    for route in ("#/p/vision", "#/p/vision/e/resnet", f"#/p/vision/e/resnet/r/{run.id}"):
        page.goto(ui_url + route)
        expect(page.locator("[data-testid=error]").first).to_contain_text("not a member")
    expect(page.locator("body")).not_to_contain_text("loss")

    # Bo signs in (a new session) and sees his project, not Ana's.
    page.click("text=Sign out")
    expect(page.locator("[data-testid=login]")).to_be_visible()
    page.fill("input[name=email]", "bo@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(ui_url + "#/")
    expect(page.locator("[data-testid=project-link]")).to_have_text(["vision"])


def switch_user(page: Page, url: str, email: str) -> None:
    page.click("text=Sign out")
    expect(page.locator("[data-testid=login]")).to_be_visible()
    sign_in(page, url, email)


def test_an_owner_manages_members_from_the_project_page(
    web: config.Settings, db: firestore.Client, page: Page, ui_url: str
) -> None:
    ana = sign_up(web, "ana@example.com")
    bo = sign_up(web, "bo@example.com")
    sign_up(web, "cy@example.com")
    Metastore("vision", settings=as_owner(web, ana)).exper("resnet", git_policy="off")
    members_table = "table[data-testid=members]"

    # Ana (owner) adds Bo as a viewer from the page.
    sign_in(page, ui_url, "ana@example.com")
    page.goto(ui_url + "#/p/vision")
    page.fill('input[placeholder="member\'s Firebase uid"]', bo)
    page.select_option(f"{members_table} ~ form select", "viewer")
    page.click("text=Add / change")
    expect(page.locator(members_table)).to_contain_text(bo)
    assert members.list_members(db, "vision").get(bo) == "viewer"

    # Bo now lists the project and opens it; a viewer gets no form to change members
    # (the rules refuse such a write anyway: tests/test_rules.py).
    switch_user(page, ui_url, "bo@example.com")
    page.goto(ui_url + "#/")
    expect(page.locator("[data-testid=project-link]")).to_have_text(["vision"])
    page.goto(ui_url + "#/p/vision")
    expect(page.locator(members_table)).to_contain_text(f"{bo} (you)")
    expect(page.locator("text=Add / change")).to_have_count(0)
    assert members.list_members(db, "vision").get(bo) == "viewer"

    # Cy, who is no member, still sees nothing; then Ana removes Bo, who loses the project.
    switch_user(page, ui_url, "cy@example.com")
    expect(page.locator("[data-testid=no-projects]")).to_be_visible()
    switch_user(page, ui_url, "ana@example.com")
    page.goto(ui_url + "#/p/vision")
    page.locator(f"{members_table} tr", has_text=bo).locator("text=remove").click()
    expect(page.locator(members_table)).not_to_contain_text(bo)
    assert bo not in members.list_members(db, "vision")
    switch_user(page, ui_url, "bo@example.com")
    expect(page.locator("[data-testid=no-projects]")).to_be_visible()


# --------------------------------------------------------------------------- runs table


def test_runs_table_sorts_filters_and_pages_in_firestore_order(
    web: config.Settings, page: Page, ui_url: str
) -> None:
    uid = sign_up(web, "ana@example.com")
    exper = Metastore("vision", settings=as_owner(web, uid)).exper("grid", git_policy="off")
    accs = [0.71, 0.93, 0.55, 0.88, 0.62, 0.97, 0.80]
    lrs = [0.1, 0.01, 0.1, 0.01, 0.1, 0.01, 0.1]
    ids = []
    for fold, (acc, lr) in enumerate(zip(accs, lrs, strict=True)):
        with exper.start_run(fold=fold) as run:
            run.set_hyper_params({"lr": lr})
            run.add_metric("val/acc", acc)
        ids.append(run.id)
    by_acc = [i for _, i in sorted(zip(accs, ids, strict=True))]
    sign_in(page, ui_url, "ana@example.com")

    base = f"{ui_url}#/p/vision/e/grid"
    page.goto(f"{base}?sort=metric:val/acc&dir=asc")
    expect(page.locator("table[data-testid=runs] tr[data-run]")).to_have_count(len(ids))
    assert shown_runs(page) == by_acc
    assert reads(page) == len(ids)  # one document read per shown run

    page.click("th[data-col='metric:val/acc']")  # the same column again: descending
    expect(page.locator("th[data-col='metric:val/acc']")).to_contain_text("▼")
    expect(page.locator("table[data-testid=runs] tr[data-run]").first).to_have_attribute(
        "data-run", by_acc[-1]
    )
    assert shown_runs(page) == by_acc[::-1]

    # Filter from the form: lr == 0.01, still sorted by accuracy, descending.
    page.select_option("[data-testid=filter-column]", "hp:lr")
    page.select_option("[data-testid=filter-op]", "==")
    page.fill("[data-testid=filter-value]", "0.01")
    page.click("[data-testid=filter-apply]")
    expect(page.locator("table[data-testid=runs] tr[data-run]")).to_have_count(3)
    expected = [
        i for a, i in sorted(zip(accs, ids, strict=True), reverse=True) if lrs[ids.index(i)] == 0.01
    ]
    assert shown_runs(page) == expected
    assert column(page, "hp:lr") == ["0.01"] * 3

    # Cursor paging: pages of 3, in order, each page reading only its rows.
    page.goto(f"{base}?sort=metric:val/acc&dir=asc&n=3")
    expect(page.locator("table[data-testid=runs] tr[data-run]")).to_have_count(3)
    assert shown_runs(page) == by_acc[:3] and reads(page) == 3
    page.click("[data-testid=next-page]")
    expect(page.locator("table[data-testid=runs] tr[data-run]").first).to_have_attribute(
        "data-run", by_acc[3]
    )
    assert shown_runs(page) == by_acc[3:6] and reads(page) == 6


# --------------------------------------------------------------------------- charts


def test_a_chart_shows_the_number_of_points_logged_and_reads_only_its_chunks(
    web: config.Settings, page: Page, ui_url: str, db: firestore.Client
) -> None:
    uid = sign_up(web, "ana@example.com")
    exper = Metastore("vision", settings=as_owner(web, uid)).exper("long", git_policy="off")
    n = 2500  # three chunk documents of at most 1,000 points
    values = np.sin(np.arange(n) / 50.0)
    values[1234] = 25.0  # a spike the downsampling must keep
    with exper.start_run() as run:
        for step, v in enumerate(values):
            run.add_metric("loss", float(v), step=step)
    chunks = list(db.collection(layout.metrics("vision", "long", run.id)).stream())
    assert len(chunks) == 3
    sign_in(page, ui_url, "ana@example.com")

    page.goto(f"{ui_url}#/p/vision/e/long/r/{run.id}")
    chart = page.locator("[data-testid=chart][data-key=loss]")
    expect(chart.locator("[data-testid=points]")).to_contain_text("2,500 points logged")
    assert int(chart.get_attribute("data-logged") or 0) == n
    drawn = int(chart.get_attribute("data-drawn") or 0)
    assert 0 < drawn <= n
    expect(page.locator("[data-testid=run-status]")).to_have_text("finished")
    assert reads(page) == 1 + len(chunks)  # the run document and the chunks drawn
    # The spike survives the downsampling: the highest point drawn is the spike.
    assert float(chart.get_attribute("data-ymax") or 0) == 25.0
    # Time axis and log scale redraw the same points (values <= 0 cannot be drawn on a log axis).
    page.select_option("[data-testid=axis]", "time")
    page.check("[data-testid=log]")
    expect(chart.locator("[data-testid=points]")).to_contain_text("2,500 points logged")
    assert int(chart.get_attribute("data-logged") or 0) == n
    assert reads(page) == 1 + len(chunks)  # redrawing reads nothing


# --------------------------------------------------------------------------- live updates

# The test's signals arrive on stdin, read unbuffered so that one read never swallows the
# next signal: the blocking read wakes on each at once; the ceiling only ends a process
# whose test is gone.
LIVE_SCRIPT = """
import select, sys
from aletheia import Metastore

def wait(name):
    ready = select.select([sys.stdin], [], [], float(sys.argv[1]))[0]
    line = sys.stdin.buffer.raw.readline().decode() if ready else ""
    if line != name + "\\n":
        sys.exit(f"expected {name!r} from the test, got {line!r}")

exper = Metastore("live").exper("train", git_policy="off")
with exper.start_run() as run:
    run.set_hyper_params({"lr": 0.1})
    for step in range(10):
        run.add_metric("loss", 1.0 / (step + 1), step=step)
    run.flush()
    wait("more")
    for step in range(10, 30):
        run.add_metric("loss", 1.0 / (step + 1), step=step)
    run.flush()
    wait("finish")
"""


def test_a_run_logging_in_a_background_process_appears_and_updates_without_reload(
    web: config.Settings, db: firestore.Client, page: Page, ui_url: str, tmp_path: Path
) -> None:
    uid = sign_up(web, "ana@example.com")
    members.create_project(db, "live", uid)
    sign_in(page, ui_url, "ana@example.com")
    page.goto(f"{ui_url}#/p/live/e/train")
    expect(page.locator("[data-testid=table-status]")).to_contain_text("0 run(s)")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "ALETHEIA_OWNER": uid, "ALETHEIA_IDENTITY": "server"}
    command = [sys.executable, str(script), str(GENEROUS_S)]
    child = subprocess.Popen(command, env=env, stdin=subprocess.PIPE)
    assert child.stdin is not None

    def send(name: str) -> None:
        assert child.stdin is not None
        child.stdin.write(f"{name}\n".encode())
        child.stdin.flush()

    try:
        row = page.locator("table[data-testid=runs] tr[data-run]")
        expect(row).to_have_count(1)
        expect(row.locator("td[data-col=status]")).to_have_text("running")
        row.locator("a").first.click()  # in-app navigation, not a reload
        points = page.locator("[data-testid=chart][data-key=loss] [data-testid=points]")
        expect(points).to_contain_text("10 points logged")
        send("more")
        expect(points).to_contain_text("30 points logged")
        expect(page.locator("[data-testid=run-status]")).to_have_text("running")
        send("finish")
        expect(page.locator("[data-testid=run-status]")).to_have_text("finished")
        assert child.wait(timeout=GENEROUS_S) == 0
    finally:
        child.stdin.close()  # a test that failed early: its end of input ends the script
        child.wait(timeout=GENEROUS_S)
    assert page.evaluate("() => window.__sameDocument === true")


# --------------------------------------------------------------------------- compare


def test_compare_shows_differing_params_metrics_and_the_fold_aggregate(
    web: config.Settings, page: Page, ui_url: str
) -> None:
    uid = sign_up(web, "ana@example.com")
    exper = Metastore("vision", settings=as_owner(web, uid)).exper("cv", git_policy="off")
    accs = {(0.1, 0): 0.80, (0.1, 1): 0.90, (0.01, 0): 0.60, (0.01, 1): 0.70}
    ids = []
    for (lr, fold), acc in accs.items():
        with exper.start_run(fold=fold) as run:
            run.set_hyper_params({"lr": lr, "seed": 7})
            run.log_metrics({"acc": acc}, step=0)
        ids.append(run.id)
    sign_in(page, ui_url, "ana@example.com")
    page.goto(f"{ui_url}#/p/vision/e/cv")
    expect(page.locator("table[data-testid=runs] tr[data-run]")).to_have_count(4)
    for run_id in ids:
        page.check(f"input[data-run='{run_id}']")
    page.click("[data-testid=compare]")

    params = page.locator("[data-testid=compare-params]")
    expect(params.locator("tr[data-key]")).to_have_count(2)
    differing = params.locator("tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert sorted(differing) == ["fold", "hyper lr"]  # seed is the same everywhere
    aggregate = page.locator("[data-testid=fold-aggregate]")
    expect(aggregate).to_contain_text("0.85 ± 0.07071 (n=2)")
    expect(aggregate).to_contain_text("0.65 ± 0.07071 (n=2)")
    expect(page.locator("[data-testid=chart][data-key=acc]")).to_have_count(1)
    expect(page.locator("[data-testid=points]")).to_contain_text("4 points logged")
    assert reads(page) == 4 + 4  # four run documents, one chunk each


# --------------------------------------------------------------------------- datasets


def _csv(directory: Path, seed: int, shift: float = 0.0, extra: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.normal(40 + shift, 8, 2000),
        "country": np.array(["fr", "de", "it"])[rng.integers(0, 3, 2000)],
    }
    if extra:
        columns["score"] = rng.random(2000)
    directory.mkdir(parents=True)
    pa_csv.write_csv(pa.table(columns), directory / "train.csv")
    return directory


def test_dataset_page_shows_histograms_and_the_anomalies_of_a_drifting_version(
    web: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    page: Page,
    ui_url: str,
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    uid = sign_up(web, "ana@example.com")
    members.create_project(db, "vision", uid)
    store = DatasetStore(db, BlobStore(gcs, web.bucket, "vision"), LocalCache(cache_dir), "vision")
    store.add("clicks", _csv(tmp_path / "v1", seed=1))
    drifted = store.add("clicks", _csv(tmp_path / "v2", seed=3, shift=6.0, extra=True)).version
    wait_for_document(
        db,
        layout.dataset_version("vision", "clicks", drifted),
        lambda doc: doc.get("validation") is not None,
        what="the validation of the drifted version",
    )
    exper = Metastore("vision", settings=as_owner(web, uid)).exper("train", git_policy="off")
    with exper.start_run() as run:
        run.record_dataset("clicks", drifted)
    sign_in(page, ui_url, "ana@example.com")

    page.goto(f"{ui_url}#/p/vision/d/clicks")
    stats = page.locator("[data-testid=file-stats][data-path='train.csv']")
    expect(stats.locator("tr[data-column=age] svg.histogram rect").first).to_be_attached()
    expect(stats.locator("tr[data-column=age]")).to_have_class("anomaly")
    expect(stats.locator("tr[data-column=score]")).to_have_class("anomaly")
    expect(stats.locator("tr[data-column=country]")).not_to_have_class("anomaly")
    expect(stats.locator("tr[data-column=country] svg.bars")).to_be_attached()
    anomalies = page.locator("[data-testid=anomalies]")
    expect(anomalies).to_contain_text("drift age")
    expect(anomalies).to_contain_text("new_column score")
    expect(page.locator("[data-testid=lineage]")).to_contain_text(f"train / run {run.id}")
    expect(page.locator("[data-testid=trained-models]")).to_have_text("none")
    # dataset + 2 versions + 1 lineage run + no model (an empty query is one read)
    # + the Files document of the one file the version lists
    assert reads(page) == 1 + 2 + 1 + 1 + 1
