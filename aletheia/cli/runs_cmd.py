"""``aletheia runs list | show | compare | env``: browse, filter, sort and compare runs.

Statuses shown are *effective*: a ``running`` run whose heartbeat went stale
is shown as ``crashed`` (see :func:`aletheia.tracking.runmodel.effective_status`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer
from google.cloud import firestore
from rich.table import Table

from aletheia.cli import runs_env
from aletheia.cli._common import console, settings
from aletheia.cloud import clients, layout, queries
from aletheia.errors import NotFoundError
from aletheia.tracking.runmodel import STATUSES, effective_status

app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
app.command("env")(runs_env.env)

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _context(project: str | None) -> tuple[firestore.Client, str]:
    resolved = settings(project=project)
    return clients.firestore_client(resolved), layout.validate_id(resolved.project, "project name")


def _experiments(db: firestore.Client, p: str, experiment: str | None) -> list[str]:
    if experiment is not None:
        return [layout.validate_id(experiment, "experiment name")]
    return [snap.id for snap in db.collection(layout.experiments(p)).stream()]


def load_runs(db: firestore.Client, p: str, experiment: str | None) -> list[dict[str, Any]]:
    """Every run (of one experiment, or all), with ``experiment`` and effective ``status``."""
    return [
        _run_doc(snap, exp)
        for exp in _experiments(db, p, experiment)
        for snap in db.collection(layout.runs(p, exp)).stream()
    ]


def _run_doc(snap: Any, experiment: str) -> dict[str, Any]:
    doc = snap.to_dict() or {}
    doc.update(run=snap.id, experiment=experiment, stored_status=doc.get("status"))
    doc["status"] = effective_status(doc)
    return doc


def _leaderboard(
    db: firestore.Client,
    p: str,
    experiment: str,
    metric: str,
    *,
    descending: bool,
    limit: int,
    keep: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]] | None:
    """The top ``limit`` runs by ``metric``, read in the server's order and no further.

    ``None`` when fewer than ``limit`` runs have a number for the metric: the
    rest of the list (runs without it) needs the full scan.
    """
    top: list[dict[str, Any]] = []
    for snap in queries.runs_by_metric(db, p, experiment, metric, descending=descending).stream():
        doc = _run_doc(snap, experiment)
        value = _metric(doc, metric)
        if value is None or math.isnan(value) or not keep(doc):
            continue  # NaN sorts first in Firestore, last here; non-numbers count as missing
        top.append(doc)
        if len(top) == limit:
            return top
    return None


def _param_filter(spec: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{spec!r}: use KEY=VALUE, e.g. --param lr=0.1")
    return key, value


def _param_value(doc: dict[str, Any], key: str) -> Any:
    for group in ("params", "hyper_params"):
        values = doc.get(group) or {}
        if key in values:
            return values[key]
    return None


def _matches(doc: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    return all(_text(_param_value(doc, k)) == v for k, v in filters)


def _metric(doc: dict[str, Any], name: str) -> float | None:
    value = ((doc.get("summary") or {}).get(name) or {}).get("last")
    return value if isinstance(value, int | float) else None


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _sort_key(name: str, descending: bool) -> Any:
    def key(doc: dict[str, Any]) -> tuple[int, float]:
        value = _metric(doc, name)
        if value is None or math.isnan(value):
            return (1, 0.0)  # runs without the metric go last either way
        return (0, -value if descending else value)

    return key


@app.command("list")
def list_runs(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help=f"One of {', '.join(STATUSES)}.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="KEY=VALUE on params or hyper-params (repeatable)."),
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
    """List runs, filtered by experiment, status and params, sorted by a metric."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(
            f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status"
        )
    filters = [_param_filter(p) for p in param or []]
    db, p = _context(project)

    def keep(run: dict[str, Any]) -> bool:
        return (
            (debug or not run.get("debug"))
            and (status is None or run["status"] == status)
            and _matches(run, filters)
        )

    top = None
    if sort and limit and experiment:
        top = _leaderboard(
            db, p, experiment, sort, descending=not ascending, limit=limit, keep=keep
        )
    if top is not None:
        runs = top
    else:
        runs = [r for r in load_runs(db, p, experiment) if keep(r)]
        if sort:
            runs.sort(key=_sort_key(sort, descending=not ascending))
        else:
            runs.sort(
                key=lambda r: (r["experiment"], r.get("number") or 0, str(r.get("started_at")))
            )
        runs = runs[:limit] if limit else runs
    if as_json:
        console.print_json(json.dumps([_row_json(r) for r in runs], default=str))
        return
    console.print(_runs_table(runs, sort, [k for k, _ in filters]))


def _row_json(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("experiment", "run", "status", "fold", "model", "params", "hyper_params", "summary")
    return {k: doc.get(k) for k in (*keys, "started_at", "ended_at")}


def _runs_table(runs: list[dict[str, Any]], sort: str | None, param_keys: list[str]) -> Table:
    metrics = [sort] if sort else _common_metrics(runs)
    table = Table("experiment", "run", "status", "fold", "model", *param_keys, *metrics, "started")
    colours = {"finished": "green", "failed": "red", "crashed": "red", "running": "yellow"}
    for r in runs:
        colour = colours.get(r["status"], "white")
        started = r.get("started_at")
        table.add_row(
            r["experiment"],
            r["run"],
            f"[{colour}]{r['status']}[/]",
            _text(r.get("fold")),
            _text((r.get("model") or {}).get("name")),
            *(_text(_param_value(r, k)) for k in param_keys),
            *(_text(_metric(r, m)) for m in metrics),
            started.strftime("%Y-%m-%d %H:%M:%S") if started else "-",
        )
    table.caption = f"{len(runs)} run(s)"
    return table


def _common_metrics(runs: Iterable[dict[str, Any]], at_most: int = 4) -> list[str]:
    names: dict[str, int] = {}
    for r in runs:
        for name in r.get("summary") or {}:
            names[name] = names.get(name, 0) + 1
    return sorted(names, key=lambda n: (-names[n], n))[:at_most]


def _load_run(db: firestore.Client, p: str, experiment: str, run: str) -> dict[str, Any]:
    snap = db.document(layout.run(p, experiment, run)).get()
    if not snap.exists:
        raise NotFoundError(
            f"no run {run!r} in experiment {experiment!r} of project {p!r}",
            "list runs with `aletheia runs list -e EXPERIMENT`",
        )
    doc = snap.to_dict() or {}
    doc.update(run=run, experiment=experiment, stored_status=doc.get("status"))
    doc["status"] = effective_status(doc)
    return doc


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.")],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="Its experiment.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: fields, params, git, env, datasets, metric summaries."""
    db, p = _context(project)
    doc = _load_run(db, p, experiment, run)
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    fields = Table("field", "value", title=f"run {run} of {experiment}")
    for name in (
        "status",
        "fold",
        "started_at",
        "ended_at",
        "heartbeat_at",
        "log_dir",
        "saved_model",
    ):
        fields.add_row(name, _text(doc.get(name)))
    fields.add_row("model", _text(doc.get("model")))
    fields.add_row("datasets", ", ".join(doc.get("dataset_refs") or []) or "-")
    for group in ("git", "env"):
        for key, value in sorted((doc.get(group) or {}).items()):
            if value not in (None, [], {}):
                fields.add_row(f"{group}.{key}", _text(value))
    console.print(fields)
    params = Table("param", "value", title="params and hyper-params")
    for group in ("params", "hyper_params"):
        for key, value in sorted((doc.get(group) or {}).items()):
            params.add_row(f"{group}.{key}", _text(value))
    console.print(params)
    metrics = Table("metric", "last", "min", "max", "count", "last step", title="metrics")
    for name, s in sorted((doc.get("summary") or {}).items()):
        metrics.add_row(
            name, *(_text(s.get(k)) for k in ("last", "min", "max", "count", "last_step"))
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
    db, p = _context(project)
    docs = [_load_run(db, p, experiment, r) for r in runs]
    params = _flat_params(docs)
    differing = {k: v for k, v in params.items() if show_all or len({_text(x) for x in v}) > 1}
    metric_names = sorted({m for d in docs for m in d.get("summary") or {}})
    metrics = {m: [_metric(d, m) for d in docs] for m in metric_names}
    if as_json:
        payload = {"runs": runs, "params": differing, "metrics": metrics}
        console.print_json(json.dumps(payload, default=str))
        return
    table = Table("", *(f"run {r}" for r in runs), title=f"{experiment}: runs compared")
    table.add_row("status", *(d["status"] for d in docs))
    for key, values in differing.items():
        table.add_row(f"[cyan]{key}[/]", *(_text(v) for v in values))
    if not differing:
        table.add_row("[dim]params[/]", *("[dim]all equal[/]" for _ in docs))
    for name, values in metrics.items():
        table.add_row(f"[magenta]{name}[/]", *(_text(v) for v in values))
    console.print(table)


def _flat_params(docs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys: list[str] = []
    for d in docs:
        for group in ("params", "hyper_params"):
            for k in d.get(group) or {}:
                if f"{group}.{k}" not in keys:
                    keys.append(f"{group}.{k}")
    for extra in ("fold", "model", "git.commit", "git.dirty"):
        keys.append(extra)
    out = {}
    for key in keys:
        out[key] = [_dotted(d, key) for d in docs]
    return out


def _dotted(doc: dict[str, Any], key: str) -> Any:
    if key == "model":
        return (doc.get("model") or {}).get("name")
    group, _, name = key.partition(".")
    if not name:
        return doc.get(group)
    return (doc.get(group) or {}).get(name)


__all__ = ["app", "load_runs"]
