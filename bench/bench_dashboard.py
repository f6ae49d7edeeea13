"""Benchmark 6: the web dashboard, next to ``mlflow ui``, in the same headless Chromium.

Two views, each timed from navigation to the content being on screen, with the
documents (aletheia) it read:

* the runs table of an experiment of 10,000 runs, sorted by a metric: time to
  the first page of rows;
* a run with one 100,000-point metric: time to its chart, drawn.

aletheia's runs are seeded straight into Firestore (the shape a finished run
has; chunks as ``metrics.chunk_doc`` writes them); MLflow's go through its
own client into a SQLite store that ``mlflow server`` then serves (its UI
needs the full ``mlflow`` package, not ``mlflow-skinny``). Both browsers
are the same Chromium, driven by Playwright.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.common import Context, Section, Table, fmt_s, stopwatch

EXPER = "bench-dashboard"
METRIC = "val_loss"
LONG_KEY = "loss"
PASSWORD = "bench-password"
CHROMIUM = os.environ.get("ALETHEIA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Ceiling of one view's wait (ms): a view slower than this is reported as such.
VIEW_TIMEOUT_MS = 300_000


def email_of(ctx: Context) -> str:
    """The benchmark's user: one per run of the benchmark (a reused stack keeps users)."""
    return f"{ctx.project}@example.com"


def loss_of(n: int) -> float:
    """A deterministic, unsorted metric value for run ``n``."""
    return 1.0 + math.sin(n * 12.9898) * 0.5


def seed_aletheia(ctx: Context, runs: int, points: int) -> tuple[str, str]:
    """The member, the runs and the long run; returns (uid, long run id)."""
    from aletheia.cloud import auth, clients, config, layout, members
    from aletheia.tracking.journal import Point
    from aletheia.tracking.metrics import CHUNK_POINTS
    from aletheia.tracking.runmodel import chunk_doc

    settings = config.resolve({"identity": "server"})
    uid = auth.toolkit_for(settings).sign_up(email_of(ctx), PASSWORD).uid
    db = clients.firestore_client(settings)
    # The other benchmarks may have made the project already: make the user an owner of it.
    members.ensure_project(db, ctx.project, owner=uid)
    members.add_member(db, ctx.project, uid, "owner")
    now = dt.datetime.now(dt.timezone.utc)
    db.document(layout.experiment(ctx.project, EXPER)).set({"name": EXPER, "created_at": now})
    t0 = now - dt.timedelta(days=30)
    batch, pending = db.batch(), 0
    for n in range(1, runs + 1):
        loss = loss_of(n)
        doc = {
            "project": ctx.project,
            "experiment": EXPER,
            "run": str(n),
            "status": "finished",
            "fold": n % 5,
            "started_at": t0 + dt.timedelta(minutes=n),
            "ended_at": t0 + dt.timedelta(minutes=n + 1),
            "params": {"lr": 10 ** -(n % 5), "seed": n},
            "summary": {METRIC: {"last": loss, "min": loss, "max": loss, "count": 1}},
        }
        batch.set(db.document(layout.run(ctx.project, EXPER, str(n))), doc)
        pending += 1
        if pending == 500:
            batch.commit()
            batch, pending = db.batch(), 0
    long_id = str(runs + 1)
    batch.set(
        db.document(layout.run(ctx.project, EXPER, long_id)),
        {
            "project": ctx.project,
            "experiment": EXPER,
            "run": long_id,
            "status": "finished",
            "started_at": now,
            "ended_at": now,
            "summary": {LONG_KEY: {"count": points}},
        },
    )
    batch.commit()
    base = time.time()
    batch, pending = db.batch(), 0
    for chunk in range(math.ceil(points / CHUNK_POINTS)):
        lo, hi = chunk * CHUNK_POINTS, min(points, (chunk + 1) * CHUNK_POINTS)
        pts = [
            Point(i, i, math.sin(i / 500) + (i % 97) / 97, base + i / 100) for i in range(lo, hi)
        ]
        path = layout.metric_chunk(ctx.project, EXPER, long_id, LONG_KEY, chunk)
        batch.set(db.document(path), chunk_doc(LONG_KEY, chunk, pts))
        pending += 1
        if pending == 20:  # ~30 KB each: well under a commit's size limit
            batch.commit()
            batch, pending = db.batch(), 0
    if pending:
        batch.commit()
    return uid, long_id


def time_aletheia(ctx: Context, browser: Any, runs: int, points: int, long_id: str) -> list[Any]:
    """Sign in, then time the two views; rows of the results table."""
    from aletheia.cloud import config
    from aletheia.webui import server

    httpd = server.serve(config.resolve())
    url = server.url_of(httpd)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(VIEW_TIMEOUT_MS)
    rows = []
    try:
        page.goto(url)
        page.fill("input[name=email]", email_of(ctx))
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=project-link]")
        base = f"{url}#/p/{ctx.project}/e/{EXPER}"
        shown = min(50, runs)

        t0 = time.perf_counter()
        page.goto(f"{base}?sort=metric:{METRIC}&dir=asc")
        page.wait_for_function(
            f"document.querySelectorAll('table[data-testid=runs] tr[data-run]').length == {shown}"
        )
        first_rows = time.perf_counter() - t0
        reads_rows = int(page.get_attribute("[data-testid=reads]", "data-reads") or 0)
        rows.append(
            [f"runs table, {runs:,} runs: first {shown} rows", first_rows, reads_rows, shown]
        )

        t0 = time.perf_counter()
        page.goto(f"{base}/r/{long_id}")
        page.wait_for_selector(f"[data-testid=chart][data-logged='{points}'] canvas")
        chart = time.perf_counter() - t0
        reads_chart = int(page.get_attribute("[data-testid=reads]", "data-reads") or 0)
        drawn = int(page.get_attribute("[data-testid=chart]", "data-drawn") or 0)
        rows.append([f"run page, {points:,}-point chart drawn", chart, reads_chart, drawn])
    finally:
        page.close()
        httpd.shutdown()
        httpd.server_close()
    return rows


MLFLOW_SEED = r"""
import math, sys, time
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

uri, runs, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment("bench-dashboard")
now = int(time.time() * 1000)
for n in range(1, runs + 1):
    run = client.create_run(exp, run_name=f"run-{n:05d}", start_time=now + n)
    loss = 1.0 + math.sin(n * 12.9898) * 0.5
    client.log_batch(run.info.run_id, metrics=[Metric("val_loss", loss, now, 0)],
                     params=[Param("lr", str(10 ** -(n % 5))), Param("seed", str(n))])
    client.set_terminated(run.info.run_id)
long = client.create_run(exp, run_name="long", start_time=now)
for lo in range(0, points, 1000):
    client.log_batch(long.info.run_id, metrics=[
        Metric("loss", math.sin(i / 500) + (i % 97) / 97, now + i, i)
        for i in range(lo, min(points, lo + 1000))])
client.set_terminated(long.info.run_id)
print(exp, long.info.run_id)
"""


def mlflow_executable() -> Path | None:
    """``mlflow`` of the full package: ``BENCH_MLFLOW``, else next to this Python."""
    named = os.environ.get("BENCH_MLFLOW")
    path = Path(named) if named else Path(sys.executable).with_name("mlflow")
    if not path.is_file():
        return None
    probe = subprocess.run(
        [str(path.with_name("python")), "-c", "import mlflow.server, mlflow.server.js"],
        capture_output=True,
        check=False,
    )
    return path if probe.returncode == 0 else None


def wait_healthy(url: str, timeout_s: float = 900.0) -> None:
    """Until ``mlflow server`` answers (its start-up imports take minutes on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server did not answer {url} in {timeout_s:.0f} s")


def metric_page_query(run_id: str, exp_id: str) -> str:
    """The query of MLflow's metric page, as its own links build it (JSON values)."""
    params: dict[str, Any] = {
        "runs": [run_id],
        "metric": LONG_KEY,
        "experiments": [exp_id],
        "plot_metric_keys": [LONG_KEY],
        "plot_layout": {},
        "x_axis": "step",
        "y_axis_scale": "linear",
        "line_smoothness": 1,
        "show_point": False,
        "deselected_curves": [],
        "last_linear_y_axis_range": [],
    }
    plain = ("x_axis", "y_axis_scale")  # the page reads these two as text, the rest as JSON
    return "&".join(f"{k}={v if k in plain else quote(json.dumps(v))}" for k, v in params.items())


def time_mlflow(ctx: Context, browser: Any, mlflow: Path, runs: int, points: int) -> list[Any]:
    """Seed MLflow's SQLite store, serve it with ``mlflow server``, time the same two views."""
    from aletheia.devstack.local import free_ports

    db_uri = f"sqlite:///{ctx.work / 'mlflow.db'}"
    seed = subprocess.run(
        [str(mlflow.with_name("python")), "-c", MLFLOW_SEED, db_uri, str(runs), str(points)],
        capture_output=True,
        text=True,
        check=True,
    )
    exp_id, long_id = seed.stdout.split()[-2:]
    port = free_ports()["firestore"]
    # One worker: a single user's local server (and the start-up of several is minutes here).
    cmd = [str(mlflow), "server", "--backend-store-uri", db_uri, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    cmd += ["--default-artifact-root", str(ctx.work / "mlartifacts")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(VIEW_TIMEOUT_MS)
    rows = []
    try:
        wait_healthy(f"{url}/health")
        newest = f"run-{runs:05d}"
        t0 = time.perf_counter()
        page.goto(f"{url}/#/experiments/{exp_id}/runs")
        page.get_by_text(newest, exact=True).first.wait_for()
        rows.append([f"runs table, {runs:,} runs: first rows", time.perf_counter() - t0, "-", "-"])
        t0 = time.perf_counter()
        page.goto(f"{url}/#/metric?{metric_page_query(long_id, exp_id)}")
        page.wait_for_selector(".js-plotly-plot .scatterlayer path.js-line")
        rows.append(
            [f"metric page, {points:,}-point chart drawn", time.perf_counter() - t0, "-", "-"]
        )
    finally:
        page.close()
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    return rows


def run(ctx: Context) -> Section:
    """Seed both, time both, in one browser."""
    section = Section("dashboard", "6. Dashboard: 10,000-run table and a 100,000-point chart")
    runs = ctx.sized(10_000, 120)
    points = ctx.sized(100_000, 3_000)
    if not Path(CHROMIUM).is_file():
        section.note(f"not run: no Chromium at {CHROMIUM} (`make browser`)")
        return section
    from playwright.sync_api import sync_playwright

    with stopwatch() as seeding:
        _uid, long_id = seed_aletheia(ctx, runs, points)
    table = Table(
        f"{runs:,} runs; one run with a {points:,}-point metric (same Chromium, headless)",
        ["tool", "view", "time", "documents read", "rows / points drawn"],
    )
    section.tables.append(table)
    mlflow = mlflow_executable()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for view, seconds, reads, drawn in time_aletheia(ctx, browser, runs, points, long_id):
                table.add("aletheia ui", view, fmt_s(seconds), reads, drawn)
                key = "table" if view.startswith("runs") else "chart"
                section.counts[f"{key}_reads"] = reads
                section.counts[f"{key}_drawn"] = drawn
            if mlflow is None:
                table.add("mlflow ui", "-", "peer not installed", "-", "-")
                section.note("`mlflow ui` needs the full mlflow package (make bench installs it)")
            else:
                version = subprocess.run(
                    [str(mlflow), "--version"], capture_output=True, text=True, check=False
                ).stdout.strip()
                section.note(f"`mlflow ui`: {version} ({mlflow}), `mlflow server --workers 1`")
                for view, seconds, reads, drawn in time_mlflow(ctx, browser, mlflow, runs, points):
                    table.add("mlflow ui", view, fmt_s(seconds), reads, drawn)
        finally:
            browser.close()
    section.note(f"seeding aletheia's documents (not measured above) took {fmt_s(seeding['s'])}")
    section.note(
        "time is from navigation to the rows / the chart's canvas being in the page; "
        "aletheia reads Firestore from the browser, MLflow its server's REST API"
    )
    shutil.rmtree(ctx.work / "mlartifacts", ignore_errors=True)
    return section
