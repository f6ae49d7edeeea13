"""``aletheia datasets backfill-refs``: register holders recorded before the blob registry."""

from __future__ import annotations

import json

import typer

from aletheia.cli._common import console, exit_on_error
from aletheia.cli._datasets_common import JsonOption, ProjectOption, dataset_store


@exit_on_error
def backfill_refs(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Register every holder of every blob this project recorded before aletheia kept a blob
    reference registry (dataset and artifact versions, runs' diffs and package lists, MLflow
    files), so that `rm` knows them all. Reads the whole project once; safe to repeat."""
    # Imported here: the datasets group loads this module for every sub-command (``add``).
    from aletheia.data.backfill import backfill

    store = dataset_store(project, quiet=True)
    result = backfill(store.db, store.blobs, store.cache, store.project)
    if as_json:
        typer.echo(json.dumps(result.__dict__, indent=2, sort_keys=True))
        return
    console.print(
        f"registered {result.references} references ({result.writes} writes): "
        f"{result.datasets} datasets, {result.artifacts} artifacts, {result.runs} runs, "
        f"{result.mlflow_files} MLflow files"
    )
