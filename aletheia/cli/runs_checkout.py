"""``aletheia runs checkout RUN``: the run's code, data, artifacts and environment file, back.

A thin wrapper over :func:`aletheia.tracking.checkout.checkout`: it prints
what was placed where and what could not be brought back (files the run's
snapshot skipped, artifacts whose bytes were never uploaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, settings
from aletheia.cli._reading import run_view
from aletheia.errors import ValidationError


def checkout(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.", show_default=False)],
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment the run belongs to.")
    ],
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="New directory for the checkout (default: ./EXPERIMENT-run-RUN; "
            "with --data-only: the current directory).",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    code_only: Annotated[
        bool, typer.Option("--code-only", help="Only the code: no datasets, no artifacts.")
    ] = False,
    data_only: Annotated[
        bool,
        typer.Option("--data-only", help="Only datasets and artifacts, into an existing checkout."),
    ] = False,
    repo: Annotated[
        Path | None,
        typer.Option("--repo", help="A local clone holding the run's commit (default: this one)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rebuild a run: its commit, diff and untracked files, datasets, artifacts, environment."""
    from aletheia.tracking import checkout as checkout_mod
    from aletheia.tracking.compose import Backend

    if code_only and data_only:
        raise ValidationError("--code-only and --data-only exclude each other", "choose one")
    resolved = settings(project=project)
    view = run_view(resolved, experiment, run)
    target = to or (Path.cwd() if data_only else Path(f"{experiment}-run-{run}"))
    result = checkout_mod.checkout(
        Backend(resolved),
        view,
        target,
        code=not data_only,
        data=not code_only,
        source=repo,
    )
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    if result.commit:
        applied = ", diff applied" if result.diff_applied else ""
        console.print(f"code: {result.commit[:12]} from {result.source}{applied}")
        if result.untracked:
            console.print(f"untracked files restored: {len(result.untracked)}")
    for ref, where in {**result.datasets, **result.artifacts}.items():
        console.print(f"{ref} -> {where}")
    if result.env_file:
        console.print(f"environment: {result.env_file} (`aletheia env create` builds it)")
    for missing in result.missing:
        console.print(f"[yellow]not restored:[/] {missing}")
    console.print(f"[green]checked out[/] run {run} into {result.path}")
