"""``aletheia env create RUN --venv DIR``: build a run's environment, then say what differs.

Thin: the run's recorded environment comes from :mod:`aletheia.tracking.envfile`,
detecting and building from :mod:`aletheia.tracking.envcreate`, the
differences table from :mod:`aletheia.tracking.reproduce`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, settings
from aletheia.cli._reading import run_view

app = typer.Typer(help="Build the environment a run used.", no_args_is_help=True)


@app.command("create")
def create(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.", show_default=False)],
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment the run belongs to.")
    ],
    venv: Annotated[Path, typer.Option("--venv", help="Directory of the new environment.")],
    path: Annotated[
        Path,
        typer.Option(
            "--path",
            help="The run's code (a `runs checkout`): its requirements.txt, Pipfile, "
            "pyproject.toml or environment.yml is used, else the run's recorded packages.",
        ),
    ] = Path(),
    python: Annotated[
        str | None,
        typer.Option("--python", help="Interpreter the venv is made from (default: this one)."),
    ] = None,
    pip_arg: Annotated[
        list[str] | None,
        typer.Option("--pip-arg", help="Passed to pip install, e.g. --pip-arg=--no-index."),
    ] = None,
    imported: Annotated[
        bool,
        typer.Option("--imported", help="From the run's record: only the packages it imported."),
    ] = False,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Build a run's environment in a new venv (or conda env) and show what still differs."""
    from aletheia.tracking import envcreate, envfile, reproduce
    from aletheia.tracking.compose import Backend

    resolved = settings(project=project)
    view = run_view(resolved, experiment, run)
    blobs = Backend(resolved).blobs
    dists, text = envfile.recorded(blobs, view)
    recorded_packages = reproduce.parse_requirements(text or "")
    if dists is not None:
        recorded_packages = {d.name: d.version for d in dists if d.imported or not imported}
    source = envcreate.detect(path)
    installable = envfile.render_recorded(view, dists, text, "requirements", imported_only=imported)
    if not json_output:
        console.print(f"building {venv} from {source.file or 'the run record'}")
    created = envcreate.create(
        venv,
        path,
        source,
        installable,
        recorded_packages,
        envfile.python_of(view),
        python=python,
        pip_args=pip_arg or [],
    )
    if json_output:
        typer.echo(json.dumps(created.to_dict(), indent=2, sort_keys=True))
        return
    for note in created.notes:
        console.print(f"[yellow]note:[/] {note}")
    if created.diff.matches:
        console.print(f"[green]{venv} matches the run[/] ({len(created.diff.extra)} extra)")
    else:
        console.print(reproduce.render_table(created.diff))
