"""``aletheia datasets status``: pinned workspaces against their pinned versions (git status)."""

from __future__ import annotations

from typing import Annotated

import typer

from aletheia.cli._common import console
from aletheia.cli._datasets_common import dataset_store, emit_json


def status(
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Only this project's pins (default: every one)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare each pinned workspace with its pinned version: modified, missing, extra."""
    from aletheia.data import status as status_mod

    found = status_mod.status(lambda p: dataset_store(p, quiet=True), project)
    if as_json:
        emit_json([s.to_dict() for s in found])
        return
    for s in found:
        where = s.path or "(no workspace in this repository)"
        head = f"{s.project}/{s.name} {s.version} at {where}"
        if s.clean:
            console.print(f"{head}: [green]clean[/]")
            continue
        console.print(f"{head}:")
        for label, colour, paths in (
            ("modified", "yellow", s.modified),
            ("missing", "red", s.missing),
            ("extra", "cyan", s.extra),
        ):
            for path in paths:
                console.print(f"  [{colour}]{label}:[/] {path}")
    if not found:
        console.print("the lock file pins no dataset")
