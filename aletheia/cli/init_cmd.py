"""``aletheia init``: a new project's repository (cookiecutter-data-science layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, exit_on_error


@exit_on_error
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the project (default: here).")
    ] = Path(),
    template: Annotated[
        str, typer.Option("--template", "-t", help="Layout: ds (cookiecutter-data-science).")
    ] = "ds",
    force: Annotated[
        bool, typer.Option("--force", help="Also in a non-empty directory (existing files kept).")
    ] = False,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="aletheia project named in .aletheia/config.toml (default: from the "
            "directory's name, e.g. 'Churn Model' -> churn-model).",
        ),
    ] = None,
) -> None:
    """Create a project: data/ git-ignored, notebooks/, src/, models/, .aletheia/, git init."""
    from aletheia.data.skeleton import init_project

    result = init_project(directory, template=template, force=force, project=project)
    for rel in result.created:
        console.print(f"  [green]created[/] {rel}")
    for rel in result.kept:
        console.print(f"  kept    {rel}")
    git = "git repository initialised" if result.git_initialised else "existing git repository"
    console.print(
        f"{result.root}: package src/{result.package}, aletheia project "
        f"{result.project!r} (.aletheia/config.toml), {git}"
    )
