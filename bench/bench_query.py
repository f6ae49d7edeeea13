"""Benchmark 5: list and sort 10,000 runs of an experiment by a metric.

The runs are seeded straight into Firestore in batches of 500, shaped as a
finished run's document (status, started_at, ``summary.<metric>``); the
benchmark measures reading them back, not creating them. Three figures:
the query itself in a warm process (``queries.runs_by_metric``), a cold
``aletheia --help`` (interpreter and import start-up), and the cold
``aletheia runs list`` CLI doing the whole job.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess

from bench.bench_datasets import aletheia_cli
from bench.common import Context, Section, Table, check, fmt_s, run_measured, stopwatch

EXPER = "bench-query"
METRIC = "val_loss"


def seed_runs(ctx: Context, count: int) -> None:
    """Write ``count`` finished runs with a ``summary.val_loss`` each."""
    from aletheia.cloud import clients, config, layout

    db = clients.firestore_client(config.resolve())
    db.document(layout.experiment(ctx.project, EXPER)).set(
        {"name": EXPER, "next_run_id": count + 1, "created_at": dt.datetime.now(dt.timezone.utc)}
    )
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    batch = db.batch()
    for n in range(1, count + 1):
        loss = 1.0 + math.sin(n * 12.9898) * 0.5
        doc = {
            "status": "finished",
            "started_at": t0 + dt.timedelta(minutes=n),
            "ended_at": t0 + dt.timedelta(minutes=n + 1),
            "params": {"lr": 10 ** -(n % 5), "seed": n},
            "summary": {METRIC: {"last": loss, "min": loss, "max": loss, "count": 1}},
        }
        batch.set(db.document(layout.run(ctx.project, EXPER, str(n))), doc)
        if n % 500 == 0:
            batch.commit()
            batch = db.batch()
    if count % 500:
        batch.commit()


def runs_list_available() -> str | None:
    """None when ``aletheia runs list`` exists, else why not."""
    probe = subprocess.run(
        [*aletheia_cli(), "runs", "list", "--help"], capture_output=True, text=True, check=False
    )
    return None if probe.returncode == 0 else "the `aletheia runs list` command does not exist yet"


def run(ctx: Context) -> Section:
    """Seed, then time each way of listing."""
    from aletheia.cloud import clients, config, queries

    section = Section("query", "5. Query: list 10,000 runs sorted by a metric")
    count = ctx.sized(10_000, 200)
    with stopwatch() as seeding:
        seed_runs(ctx, count)
    table = Table(f"{count:,} runs, sorted by summary.{METRIC}", ["how", "time", "runs returned"])
    section.tables.append(table)

    db = clients.firestore_client(config.resolve())
    with stopwatch() as warm:
        got = [s.id for s in queries.runs_by_metric(db, ctx.project, EXPER, METRIC).stream()]
    table.add("query, warm process (runs_by_metric)", fmt_s(warm["s"]), f"{len(got):,}")
    section.counts["query_runs"] = len(got)

    env = ctx.subprocess_env()
    start = check(run_measured([*aletheia_cli(), "--help"], env=env), "aletheia --help")
    table.add("`aletheia --help`, cold (start-up only)", fmt_s(start.seconds), "-")

    missing = runs_list_available()
    if missing:
        table.add("`aletheia runs list`, cold", "not available", "-")
        section.note(f"CLI side not available: {missing}")
    else:
        base = [*aletheia_cli(), "runs", "list", "-e", EXPER, "--sort", METRIC, "--asc"]
        top = check(run_measured([*base, "--limit", "20"], env=env), "aletheia runs list")
        shown = sum(1 for line in top.stdout.splitlines() if "finished" in line)
        table.add("`aletheia runs list --sort ... --limit 20`, cold", fmt_s(top.seconds), shown)
        every = check(run_measured([*base, "--json"], env=env), "aletheia runs list --json")
        listed = len(json.loads(every.stdout))
        table.add(
            "`aletheia runs list --sort ... --json` (all), cold",
            fmt_s(every.seconds),
            f"{listed:,}",
        )
        section.counts.update(cli_top_rows=shown, cli_json_runs=listed)
    section.note(f"seeding {count:,} run documents (not measured above) took {fmt_s(seeding['s'])}")
    section.note(
        "no peer figure: seeding 10,000 MLflow runs through its API takes minutes; "
        "MLflow's `search_runs` was not compared"
    )
    return section
