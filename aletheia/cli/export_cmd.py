"""``aletheia export mlflow DIR``: runs as an MLflow file store (``mlflow ui`` reads it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, settings
from aletheia.integrations.mlflow.export import export_mlflow
from aletheia.tracking.compose import Backend

app = typer.Typer(help="Export runs to other tools' formats.", no_args_is_help=True)


@app.command("mlflow")
def mlflow_export(
    dest: Annotated[Path, typer.Argument(help="Directory of the MLflow file store to write.")],
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="Experiment to export (repeatable; default all)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Write runs (params, metrics, tags, artifacts) in MLflow's file-store layout."""
    resolved = settings(project=project)
    backend = Backend(resolved)
    summary = export_mlflow(backend.db, backend.blobs, backend.project, dest, experiment or None)
    if as_json:
        console.print_json(json.dumps({"dest": str(dest), **vars(summary)}))
        return
    console.print(
        f"exported {summary.runs} runs of {summary.experiments} experiments "
        f"({summary.metric_points:,} metric points, {summary.artifact_files} artifact files) "
        f"to {dest}\nview them: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {dest}"
    )
