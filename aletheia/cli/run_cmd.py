"""``aletheia run NB.ipynb -p lr=0.1``: execute a notebook headless, saved with its runs.

Thin: executing and saving is :mod:`aletheia.tracking.nbrun`'s (papermill,
imported only when this command runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, err_console, settings
from aletheia.errors import NotebookFailedError


def run(
    notebook: Annotated[
        Path, typer.Argument(help="The notebook, e.g. train.ipynb.", show_default=False)
    ],
    parameter: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter",
            "-p",
            help="NAME=VALUE, injected after the cell tagged `parameters` (papermill's -p: "
            "True/False/None, int, float, else text). Repeat for more.",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", "-e", help="Experiment for `Metastore(...).exper()` without a name."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the executed notebook here."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Execute a notebook headless with parameters; the executed notebook is saved with its runs."""
    from aletheia.tracking import nbrun

    resolved = settings(project=project)
    done = nbrun.execute(
        resolved,
        notebook,
        nbrun.parse_parameters(parameter or []),
        experiment=experiment,
        output=output,
    )
    runs = [f"{ref.experiment}/{ref.run}" for ref in done.runs]
    if json_output:
        console.print_json(
            json.dumps(
                {
                    "runs": [{"experiment": ref.experiment, "run": ref.run} for ref in done.runs],
                    "executed_ref": done.executed_ref,
                    "output": str(output) if output else None,
                    "error": done.error.describe(notebook.name) if done.error else None,
                }
            )
        )
    elif runs:
        console.print(f"executed {notebook.name}; saved with run(s) {', '.join(runs)}")
    else:
        err_console.print(
            f"[yellow]warning:[/] {notebook.name} started no run: the executed notebook is "
            + (f"only at {output}" if output else "not kept (pass --output)")
        )
    if done.error is not None:
        saved = f"with run(s) {', '.join(runs)}" if runs else (f"at {output}" if output else "")
        raise NotebookFailedError(
            done.error.describe(notebook.name),
            f"the partially executed notebook is saved {saved}".rstrip()
            if saved
            else "pass --output to keep the partially executed notebook",
        )
