"""``aletheia experiments list``: the experiments of a project, through the read interface."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from aletheia.cli._common import console, exit_on_error
from aletheia.cli._reading import reader

app = typer.Typer(help="The experiments of a project.", no_args_is_help=True)


@app.command("list")
@exit_on_error
def list_experiments(
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the experiments of the project, by name."""
    found = reader(project).experiments()
    if as_json:
        rows = [
            {
                "name": e.name,
                "desc": e.desc,
                "created_at": e.created_at,
                "lifecycle_stage": e.lifecycle_stage,
            }
            for e in found
        ]
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("experiment", "description", "created", "stage")
    for e in found:
        created = e.created_at.strftime("%Y-%m-%d %H:%M:%S") if e.created_at else "-"
        table.add_row(e.name, e.desc or "-", created, e.lifecycle_stage)
    table.caption = f"{len(found)} experiment(s)"
    console.print(table)


__all__ = ["app"]
