"""``aletheia runs list | show | compare | history | env``: browse, filter, sort and compare runs.

Thin: every read goes through the read interface
(:mod:`aletheia.tracking.readapi`), which decides what Firestore orders and
limits and what is filtered in memory. Statuses shown are *effective*: a
``running`` run whose heartbeat went stale is shown as ``crashed``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from aletheia.cli import runs_env
from aletheia.cli._common import console
from aletheia.cli._reading import reader
from aletheia.errors import NotFoundError
from aletheia.tracking.readapi import RunView
from aletheia.tracking.runmodel import STATUSES, Point
from aletheia.tracking.runsearch import last_metric, text

app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
app.command("env")(runs_env.env)

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ExperimentOption = Annotated[str, typer.Option("--experiment", "-e", help="Its experiment.")]
#: Without --sort, runs are listed by experiment, then run number (runs without one after
#: the numbered ones, by start): served by the number's index, so -n reads little.
_LIST_ORDER = ("attributes.experiment", "attributes.number", "attributes.start_time")


def _param_filter(spec: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{spec!r}: use KEY=VALUE, e.g. --param lr=0.1")
    return key, value


@app.command("list")
def list_runs(
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Only this experiment (default: every one)."),
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help=f"One of {', '.join(STATUSES)}.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="KEY=VALUE on params or hyper-params (repeatable)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only runs of this model.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only runs that used NAME or NAME@VERSION.")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", help="Sort by this metric's last value.")
    ] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="Smallest first (e.g. losses).")] = False,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Include debug runs.")] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs of one experiment or all, filtered by status, params, model and dataset,
    sorted by a metric (the top -n are read in Firestore's order when it can)."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(
            f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status"
        )
    filters = dict(_param_filter(p) for p in param or [])
    order = [f"metrics.{sort} {'ASC' if ascending else 'DESC'}"] if sort else list(_LIST_ORDER)
    runs = reader(project).search_runs(
        None if experiment is None else [experiment],
        status=status,
        params=filters,
        model=model,
        dataset=dataset,
        debug=None if debug else False,
        order_by=order,
        limit=limit,
    )
    if as_json:
        console.print_json(json.dumps([_row_json(r) for r in runs], default=str))
        return
    console.print(_runs_table(runs, sort, list(filters)))


def _row_json(run: RunView) -> dict[str, Any]:
    doc = run.to_dict()
    keys = ("experiment", "run", "status", "fold", "model", "params", "hyper_params", "summary")
    return {k: doc.get(k) for k in (*keys, "started_at", "ended_at")}


def _runs_table(runs: Sequence[RunView], sort: str | None, param_keys: list[str]) -> Table:
    metrics = [sort] if sort else _common_metrics(runs)
    table = Table("experiment", "run", "status", "fold", "model", *param_keys, *metrics, "started")
    colours = {"finished": "green", "failed": "red", "crashed": "red", "running": "yellow"}
    for r in runs:
        colour = colours.get(r.status, "white")
        table.add_row(
            r.experiment,
            r.id,
            f"[{colour}]{r.status}[/]",
            text(r.fold),
            text(r.model),
            *(text(r.param(k)) for k in param_keys),
            *(text(r.metrics.get(m)) for m in metrics),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "-",
        )
    table.caption = f"{len(runs)} run(s)"
    return table


def _common_metrics(runs: Iterable[RunView], at_most: int = 4) -> list[str]:
    names: dict[str, int] = {}
    for r in runs:
        for name in r.summary:
            names[name] = names.get(name, 0) + 1
    return sorted(names, key=lambda n: (-names[n], n))[:at_most]


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.")],
    experiment: ExperimentOption,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: fields, params, git, env, datasets, metric summaries."""
    view = reader(project).get_run(experiment, run)
    doc = view.to_dict()
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    fields = Table("field", "value", title=f"run {run} of {experiment}")
    for name in ("status", "fold", "started_at", "ended_at", "heartbeat_at", "log_dir"):
        fields.add_row(name, text(doc.get(name)))
    fields.add_row("saved_model", text(doc.get("saved_model")))
    fields.add_row("model", text(doc.get("model")))
    fields.add_row("datasets", ", ".join(d.ref for d in view.datasets()) or "-")
    for group in ("git", "env"):
        for key, value in sorted((doc.get(group) or {}).items()):
            if value not in (None, [], {}):
                fields.add_row(f"{group}.{key}", text(value))
    console.print(fields)
    params = Table("param", "value", title="params and hyper-params")
    for group in ("params", "hyper_params"):
        for key, value in sorted((doc.get(group) or {}).items()):
            params.add_row(f"{group}.{key}", text(value))
    console.print(params)
    metrics = Table("metric", "last", "min", "max", "count", "last step", title="metrics")
    for name, s in sorted(view.summary.items()):
        metrics.add_row(
            name, *(text(s.get(k)) for k in ("last", "min", "max", "count", "last_step"))
        )
    console.print(metrics)
    if doc.get("error"):
        console.print(f"[red]error:[/]\n{doc['error']}", highlight=False)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="Their experiment.")],
    show_all: Annotated[bool, typer.Option("--all", help="Also params that are equal.")] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs side by side: the params that differ, and final metric values."""
    if len(runs) < 2:
        raise typer.BadParameter("give at least two run ids")
    read = reader(project)
    views = [read.get_run(experiment, r) for r in runs]
    params = _flat_params(views)
    differing = {k: v for k, v in params.items() if show_all or len({text(x) for x in v}) > 1}
    metric_names = sorted({m for v in views for m in v.summary})
    metrics = {m: [last_metric(v.doc, m) for v in views] for m in metric_names}
    if as_json:
        payload = {"runs": runs, "params": differing, "metrics": metrics}
        console.print_json(json.dumps(payload, default=str))
        return
    table = Table("", *(f"run {r}" for r in runs), title=f"{experiment}: runs compared")
    table.add_row("status", *(v.status for v in views))
    for key, values in differing.items():
        table.add_row(f"[cyan]{key}[/]", *(text(v) for v in values))
    if not differing:
        table.add_row("[dim]params[/]", *("[dim]all equal[/]" for _ in views))
    for name, values in metrics.items():
        table.add_row(f"[magenta]{name}[/]", *(text(v) for v in values))
    console.print(table)


def _flat_params(views: list[RunView]) -> dict[str, list[Any]]:
    keys: list[str] = []
    for v in views:
        for group in ("params", "hyper_params"):
            for k in v.doc.get(group) or {}:
                if f"{group}.{k}" not in keys:
                    keys.append(f"{group}.{k}")
    keys += ["fold", "model", "git.commit", "git.dirty"]
    return {key: [_dotted(v, key) for v in views] for key in keys}


def _dotted(view: RunView, key: str) -> Any:
    if key == "model":
        return view.model
    group, _, name = key.partition(".")
    if not name:
        return view.doc.get(group)
    return (view.doc.get(group) or {}).get(name)


# --------------------------------------------------------------------------- history

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """``values`` as one line of bars, averaged into at most ``width`` buckets."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    buckets = min(width, len(values))
    line = []
    for b in range(buckets):
        chunk = values[b * len(values) // buckets : (b + 1) * len(values) // buckets]
        part = [v for v in chunk if math.isfinite(v)]
        if not part:
            line.append(" ")
            continue
        mean = sum(part) / len(part)
        level = 0 if hi == lo else round((mean - lo) / (hi - lo) * (len(_BARS) - 1))
        line.append(_BARS[level])
    return "".join(line)


def _sample(points: Sequence[Point], rows: int) -> list[Point]:
    """At most ``rows`` points, evenly spaced, the first and the last included."""
    if len(points) <= rows:
        return list(points)
    picks = {round(i * (len(points) - 1) / (rows - 1)) for i in range(rows)}
    return [points[i] for i in sorted(picks)]


@app.command()
def history(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.")],
    key: Annotated[str, typer.Argument(help="Metric name, e.g. val/loss.")],
    experiment: ExperimentOption,
    rows: Annotated[
        int, typer.Option("--rows", min=2, help="Points shown in the table (evenly spaced).")
    ] = 20,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every logged value of one metric of a run: a chart and a table (--json: every point)."""
    view = reader(project).get_run(experiment, run)
    points = view.metric_history(key)
    if not points:
        logged = ", ".join(sorted(view.summary)) or "none"
        raise NotFoundError(
            f"run {run} of {experiment} has no metric {key!r}", f"its metrics: {logged}"
        )
    if as_json:
        payload = [{"step": p.step, "value": p.value, "timestamp": p.ts} for p in points]
        console.print_json(json.dumps(payload))
        return
    values = [p.value for p in points]
    console.print(f"[bold]{key}[/] of run {run} ({experiment}): {len(points)} point(s)")
    console.print(f"{text(min(values))} {sparkline(values)} {text(max(values))}")
    table = Table("step", "value")
    for p in _sample(points, rows):
        table.add_row(str(p.step), text(p.value))
    console.print(table)


@app.command()
def folds(
    experiment: ExperimentOption,
    status: Annotated[
        str, typer.Option("--status", "-s", help="Runs counted (default: finished ones).")
    ] = "finished",
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The cross-validation table: mean ± std of final metrics per hyper-parameter set."""
    from aletheia.tracking import frames

    if status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}")
    runs = reader(project).search_runs([experiment], status=status, debug=False)
    table = frames.fold_table(frames.runs_frame(runs))
    if as_json:
        console.print_json(table.to_json(orient="records"))
        return
    metrics = [c[: -len(".mean")] for c in table.columns if c.endswith(".mean")]
    keys = [c for c in table.columns if c == "model" or c.startswith(("params.", "hyper_params."))]
    out = Table(*keys, "folds", *(m.removeprefix("metrics.") for m in metrics))
    for row in table.to_dict(orient="records"):
        out.add_row(
            *(text(_present(row[k])) for k in keys),
            str(row["folds"]),
            *(f"{text(row[m + '.mean'])} ± {text(row[m + '.std'])}" for m in metrics),
        )
    out.caption = f"{len(runs)} {status} run(s) of {experiment}"
    console.print(out)


def _present(value: Any) -> Any:
    """None for pandas' NaN of a run without that param (a group key, not a number)."""
    return None if isinstance(value, float) and math.isnan(value) else value


__all__ = ["app", "sparkline"]
